"""Load, validate and freeze the settings.

Order: the defaults of ``settings_base.py`` -> the user's ``settings.py`` (the
current directory, ``--settings PATH`` or env ``MM_SETTINGS``) -> environment
overrides for the secrets (``GTE_API_KEY``, ``GTE_API_SECRET``). The result is
one immutable :class:`Settings` passed to whoever needs it.

What each setting may be is in ``settings_rules``; the reference page in
``settings_reference`` (``python3 -m market_maker.settings`` prints it).
"""
from __future__ import annotations

import difflib
import os
import types
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, MutableMapping, Optional

import settings_base

from .settings_file import (ENV_OVERRIDES, ENV_SECRET, SettingsError, masked, read_settings_file, redact,
                            secret_values, settings_path)
from .settings_reference import reference_page
from .settings_rules import LOG_LEVELS, RULES, validate

__all__ = ["LOG_LEVELS", "RULES", "Settings", "SettingsError", "defaults", "load_settings", "pop_env_secret",
           "read_settings_file", "redact", "reference_page", "validate"]


def defaults() -> Dict[str, Any]:
    return {name: getattr(settings_base, name) for name in dir(settings_base) if name.isupper()}


class Settings(Mapping[str, Any]):
    """Immutable, validated settings. Read them as attributes: ``settings.ORDER_PAIRS``."""

    __slots__ = ("_values", "source", "__dict__")

    def __init__(self, values: Mapping[str, Any], source: Optional[Path] = None):
        frozen = types.MappingProxyType(dict(values))
        object.__setattr__(self, "_values", frozen)
        object.__setattr__(self, "source", source)
        # Each setting is also an instance attribute: read without a failed lookup and a call of
        # ``__getattr__`` (~0.4 us, and a decision reads a dozen). A name the class itself uses
        # (a method, ``source``) is left to ``self[name]``.
        vars(self).update((name, value) for name, value in frozen.items() if not hasattr(Settings, name))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are immutable; use settings.replace(NAME=value)")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes: Any) -> "Settings":
        """A validated copy with some settings changed."""
        values = dict(self._values)
        unknown = [name for name in changes if name not in values]
        if unknown:
            raise SettingsError(_unknown_message(unknown[0], values, "replace()"))
        values.update(changes)
        return Settings(validate(values), self.source)

    @property
    def use_simulator(self) -> bool:
        return not self.BASE_URL

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={masked(k, v)!r}" for k, v in sorted(self._values.items()))
        return f"Settings({shown})"

    __str__ = __repr__


def pop_env_secret(environ: MutableMapping[str, str]) -> Dict[str, str]:
    """Take GTE_API_SECRET out of ``environ`` (the process environment): a strategy or a child process
    must not read it. Returns it (``{}`` when unset), to be given to ``load_settings`` on every load.

    GTE_API_KEY stays: a key names the account, it signs nothing.
    """
    secret = environ.pop(ENV_SECRET, None)
    return {ENV_SECRET: secret} if secret else {}


# ----------------------------------------------------------------------------------------------------------------------
# Loading


def load_settings(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                  environ: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> Settings:
    """Defaults, then the settings file, then env secrets, then explicit overrides (command-line flags)."""
    environ = os.environ if environ is None else environ
    values = defaults()
    hidden = secret_values(environ, overrides or {})
    try:
        source = settings_path(path, cwd)
        if source is not None:
            user = read_settings_file(source, hidden)
            hidden += secret_values(user)
            for name in user:
                if name not in values:
                    raise SettingsError(_unknown_message(name, values, str(source)))
            values.update(user)
        for env_name, name in ENV_OVERRIDES.items():
            if environ.get(env_name):
                values[name] = environ[env_name]
        values.update(overrides or {})
        if values.get("DRY_RUN"):
            values["API_SECRET"] = None  # structural: a dry run never holds the secret
        return Settings(validate(values), source)
    except SettingsError as exc:  # a secret given as the value of another setting, say
        raise SettingsError(redact(str(exc), hidden)) from None


def _unknown_message(name: str, known: Mapping[str, Any], where: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{where}: unknown setting {name}{hint}"


if __name__ == "__main__":
    print(reference_page(), end="")
