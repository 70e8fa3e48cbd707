"""Load, validate and freeze the settings.

Order: the defaults of ``settings_base.py`` -> the user's ``settings.py`` (the
current directory, ``--settings PATH`` or env ``MM_SETTINGS``) -> environment
overrides for the secrets (``GTE_API_KEY``, ``GTE_API_SECRET``). The result is
one immutable :class:`Settings` passed to whoever needs it.
"""
from __future__ import annotations

import difflib
import os
import re
import runpy
import types
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import settings_base

SECRET_NAMES = frozenset({"API_SECRET"})
ENV_OVERRIDES = {"GTE_API_KEY": "API_KEY", "GTE_API_SECRET": "API_SECRET"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """A settings file that cannot be used; the message says which setting and why."""


def defaults() -> Dict[str, Any]:
    return {name: getattr(settings_base, name) for name in dir(settings_base) if name.isupper()}


class Settings(Mapping[str, Any]):
    """Immutable, validated settings. Read them as attributes: ``settings.ORDER_PAIRS``."""

    __slots__ = ("_values", "source")

    def __init__(self, values: Mapping[str, Any], source: Optional[Path] = None):
        object.__setattr__(self, "_values", types.MappingProxyType(dict(values)))
        object.__setattr__(self, "source", source)

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
        shown = ", ".join(f"{k}={_masked(k, v)!r}" for k, v in sorted(self._values.items()))
        return f"Settings({shown})"

    __str__ = __repr__


def _masked(name: str, value: Any) -> Any:
    if name in SECRET_NAMES and value:
        return "<hidden>"
    return value


# ----------------------------------------------------------------------------------------------------------------------
# Loading


def settings_path(explicit: Optional[str] = None, cwd: Optional[Path] = None) -> Optional[Path]:
    """The user's settings file to load, or None when there is none (defaults apply)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise SettingsError(f"settings file {explicit} does not exist")
        return path.resolve()
    from_env = os.environ.get("MM_SETTINGS")
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise SettingsError(f"settings file {from_env} (from MM_SETTINGS) does not exist")
        return path.resolve()
    path = (cwd or Path.cwd()) / "settings.py"
    return path.resolve() if path.is_file() else None


def read_settings_file(path: Path) -> Dict[str, Any]:
    """Run a settings file and return its upper-case names; a broken file becomes a SettingsError."""
    try:
        namespace = runpy.run_path(str(path), run_name="settings")
    except SyntaxError as exc:
        raise SettingsError(f"{exc.filename or path}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # any error raised while the user's file runs
        line = _user_line(exc, path)
        where = f"{path}, line {line}" if line else str(path)
        raise SettingsError(f"{where}: {type(exc).__name__}: {exc}") from None
    return {k: v for k, v in namespace.items() if k.isupper() and not isinstance(v, types.ModuleType)}


def _user_line(exc: BaseException, path: Path) -> Optional[int]:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load_settings(path: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                  environ: Optional[Mapping[str, str]] = None, cwd: Optional[Path] = None) -> Settings:
    """Defaults, then the settings file, then env secrets, then explicit overrides (command-line flags)."""
    environ = os.environ if environ is None else environ
    values = defaults()
    source = settings_path(path, cwd)
    if source is not None:
        user = read_settings_file(source)
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


def _unknown_message(name: str, known: Mapping[str, Any], where: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{where}: unknown setting {name}{hint}"


# ----------------------------------------------------------------------------------------------------------------------
# Validation


@dataclass(frozen=True)
class Rule:
    convert: Callable[[str, Any], Any]
    allowed: str
    check: Callable[[Any], bool] = lambda value: True


def _bad(name: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"{name} = {_masked(name, value)!r} is not allowed: {allowed}")


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def _number(name: str, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, Decimal)):
        result = Decimal(value)
    elif isinstance(value, (str, float)):
        result = Decimal(str(value))  # str() of a float is its shortest exact-looking form: 0.005 -> "0.005"
    else:
        raise TypeError
    if not result.is_finite():
        raise TypeError
    return result


def _seconds(name: str, value: Any) -> float:
    return float(_number(name, value))  # a duration, not money: float is what time.sleep and Event.wait take


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


def _optional_str(name: str, value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TypeError
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _files(name: str, value: Any) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return (os.fspath(value),)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, os.PathLike)) for v in value):
        return tuple(os.fspath(v) for v in value)
    raise TypeError


def _ms_range(name: str, value: Any) -> Tuple[int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError
    return _int(name, value[0]), _int(name, value[1])


def _between(low: Decimal, high: Decimal, low_open: bool = False, high_open: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        return above and below
    return check


_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,13}")
_SYMBOL = re.compile(r"[A-Z0-9]+_[A-Z0-9]+")
_STRATEGY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
_FRACTION = Rule(_number, "a number from 0 to 1", _between(Decimal(0), Decimal(1)))
_POSITIVE = Rule(_number, "a number greater than 0", lambda v: v > 0)
_NON_NEGATIVE = Rule(_number, "a number of 0 or more", lambda v: v >= 0)
_SECONDS = Rule(_seconds, "a number of seconds greater than 0", lambda v: v > 0)
_SECONDS_OR_ZERO = Rule(_seconds, "a number of seconds, 0 or more", lambda v: v >= 0)

RULES: Dict[str, Rule] = {
    "BASE_URL": Rule(_optional_str, 'None or a URL starting with "http://" or "https://"',
                     lambda v: v is None or v.startswith(("http://", "https://"))),
    "WS_URL": Rule(_optional_str, 'None or a URL starting with "ws://" or "wss://"',
                   lambda v: v is None or v.startswith(("ws://", "wss://"))),
    "API_KEY": Rule(_optional_str, "None or a string"),
    "API_SECRET": Rule(_optional_str, "None or a string"),
    "TIMEOUT": _SECONDS,
    "WS_PING_INTERVAL": _SECONDS,
    "WS_SILENCE_TIMEOUT": _SECONDS,
    "INSTRUMENTTYPE": Rule(_str, '"pc" (perpetual contracts)', lambda v: v == "pc"),
    "SETTLECURRENCY": Rule(_str, 'an upper-case currency code such as "BTC"', lambda v: v.isalnum() and v.isupper()),
    "SYMBOL": Rule(_str, 'a symbol such as "BTC_USD"', lambda v: bool(_SYMBOL.fullmatch(v))),
    "LEVERAGE": Rule(_number, "a number from 1 to 100 with at most 2 decimals",
                     lambda v: 1 <= v <= 100 and v == v.quantize(Decimal("0.01"))),
    "MARGIN_MODE": Rule(_str, '"cross" or "isolated"', lambda v: v in ("cross", "isolated")),
    "ORDER_PAIRS": Rule(_int, "a whole number from 1 to 50", lambda v: 1 <= v <= 50),
    "ORDER_START_SIZE": Rule(_int, "a whole number of contracts, 1 or more", lambda v: v >= 1),
    "ORDER_STEP_SIZE": Rule(_int, "a whole number of contracts, 0 or more", lambda v: v >= 0),
    "RANDOM_ORDER_SIZE": Rule(_bool, "True or False"),
    "MIN_ORDER_SIZE": Rule(_int, "a whole number of contracts, 1 or more", lambda v: v >= 1),
    "MAX_ORDER_SIZE": Rule(_int, "a whole number of contracts, 1 or more", lambda v: v >= 1),
    "INTERVAL": Rule(_number, "a number strictly between 0 and 1", _between(Decimal(0), Decimal(1), True, True)),
    "MIN_SPREAD": Rule(_number, "a number from 0 up to (not including) 1", _between(Decimal(0), Decimal(1), False, True)),
    "MAINTAIN_SPREADS": Rule(_bool, "True or False"),
    "RELIST_INTERVAL": Rule(_number, "a number from 0 up to (not including) 1",
                            _between(Decimal(0), Decimal(1), False, True)),
    "POST_ONLY": Rule(_bool, "True or False"),
    "CHECK_POSITION_LIMITS": Rule(_bool, "True or False"),
    "MIN_POSITION": Rule(_int, "a whole number of contracts"),
    "MAX_POSITION": Rule(_int, "a whole number of contracts"),
    "MAX_DRAWDOWN": _NON_NEGATIVE,
    "STALE_DATA_SECONDS": _SECONDS,
    "DRY_RUN": Rule(_bool, "True or False"),
    "DRY_BTC": _POSITIVE,
    "LOOP_INTERVAL": _SECONDS,
    "REQUOTE_DEBOUNCE_MS": Rule(_int, "a whole number of milliseconds, 0 or more", lambda v: v >= 0),
    "API_REST_INTERVAL": _SECONDS_OR_ZERO,
    "API_ERROR_INTERVAL": _SECONDS_OR_ZERO,
    "ORDERID_PREFIX": Rule(_str, "1 to 13 characters of A-Z a-z 0-9 _ -", lambda v: bool(_PREFIX.fullmatch(v))),
    "WATCHED_FILES": Rule(_files, "None, a path, or a list of paths"),
    "STRATEGY": Rule(_optional_str, '"" or "module:Class"', lambda v: v is None or bool(_STRATEGY.fullmatch(v))),
    "LOG_LEVEL": Rule(_str, " ".join(LOG_LEVELS), lambda v: v in LOG_LEVELS),
    "SIM_SEED": Rule(_int, "a whole number"),
    "SIM_START_PRICE": _POSITIVE,
    "SIM_TICK_SIZE": _POSITIVE,
    "SIM_BALANCE": _POSITIVE,
    "SIM_FLOW": Rule(_bool, "True or False"),
    "SIM_SPEED": _POSITIVE,
    "SIM_VOLATILITY": _NON_NEGATIVE,
    "SIM_TAKER_RATE": _NON_NEGATIVE,
    "SIM_TAKER_MEAN_QTY": _POSITIVE,
    "SIM_DEPTH_LEVELS": Rule(_int, "a whole number from 1 to 500", lambda v: 1 <= v <= 500),
    "SIM_LEVEL_STEP_TICKS": Rule(_int, "a whole number of ticks, 1 or more", lambda v: v >= 1),
    "SIM_FUNDING_INTERVAL": _SECONDS,
    "SIM_FAULT_WS_DISCONNECT_EVERY_S": _SECONDS_OR_ZERO,
    "SIM_FAULT_DROP_RATE": _FRACTION,
    "SIM_FAULT_DUP_RATE": _FRACTION,
    "SIM_FAULT_5XX_RATE": _FRACTION,
    "SIM_FAULT_LOST_RESPONSE_RATE": _FRACTION,
    "SIM_FAULT_LATE_CREATE_RATE": _FRACTION,
    "SIM_FAULT_LATE_CREATE_MS": Rule(_ms_range, "(min, max) whole milliseconds with 0 <= min <= max",
                                     lambda v: 0 <= v[0] <= v[1]),
}


def validate(values: Mapping[str, Any]) -> Dict[str, Any]:
    """Convert and check every setting; the first problem raises a SettingsError naming it."""
    result = dict(values)
    for name, rule in RULES.items():
        value = values.get(name)
        try:
            converted = rule.convert(name, value)
        except (TypeError, ValueError, InvalidOperation):
            raise _bad(name, value, rule.allowed) from None
        if not rule.check(converted):
            raise _bad(name, value, rule.allowed)
        result[name] = converted
    _check_together(result)
    return result


def _check_together(v: Mapping[str, Any]) -> None:
    if v["MIN_POSITION"] >= v["MAX_POSITION"]:
        raise SettingsError(f"MIN_POSITION ({v['MIN_POSITION']}) must be less than MAX_POSITION ({v['MAX_POSITION']})")
    if v["MIN_ORDER_SIZE"] > v["MAX_ORDER_SIZE"]:
        raise SettingsError(f"MIN_ORDER_SIZE ({v['MIN_ORDER_SIZE']}) must not exceed MAX_ORDER_SIZE "
                            f"({v['MAX_ORDER_SIZE']})")
    if v["BASE_URL"]:
        if not v["WS_URL"]:
            raise SettingsError("WS_URL must be set when BASE_URL is set (e.g. \"wss://td.gte.io/ws\")")
        if not v["DRY_RUN"] and not (v["API_KEY"] and v["API_SECRET"]):
            raise SettingsError("API_KEY and API_SECRET (or env GTE_API_KEY and GTE_API_SECRET) must be set "
                                "when BASE_URL is set and DRY_RUN is False")


# ----------------------------------------------------------------------------------------------------------------------
# Reference


def reference_rows() -> List[Tuple[str, str, str]]:
    """(name, default as written, comment) for every setting of settings_base.py, in file order."""
    rows, comment = [], []
    for line in Path(settings_base.__file__).read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            comment.append(line[2:].strip())
        elif re.match(r"[A-Z0-9_]+ = ", line):
            name, default = line.split(" = ", 1)
            rows.append((name, default, " ".join(comment)))
            comment = []
        elif not line.startswith("#"):
            comment = []
    return rows


def reference_markdown() -> str:
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{default}` | {comment} |" for name, default, comment in reference_rows()]
    return "\n".join(lines) + "\n"


def reference_page() -> str:
    """docs/settings.md: every setting, its default and its meaning."""
    return ("# Settings reference\n\n"
            "Every setting, its default and its meaning. Set them in your `settings.py` (see\n"
            "`settings.example.py`); a bad value stops the bot at start with exit status 2 and a\n"
            "message naming the setting and what is allowed.\n\n"
            "This page is generated from `settings_base.py`: `python3 -m market_maker.settings > docs/settings.md`.\n\n"
            + reference_markdown())


if __name__ == "__main__":
    print(reference_page(), end="")
