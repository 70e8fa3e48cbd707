"""Finding and running the user's settings file, and keeping secrets out of what it reports.

The file is Python: it runs in a fresh module namespace. Whatever it raises --
SystemExit and KeyboardInterrupt included -- becomes a ``SettingsError`` naming
the file and line. A path that is no regular file (a directory, a FIFO, a
device) is reported as what it is, and is never opened in a way that blocks.
"""
from __future__ import annotations

import os
import stat
import sys
import types
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

# never echoed in a message: the key is no secret, but a value given for it may well be a mis-pasted one
SECRET_NAMES = frozenset({"API_KEY", "API_SECRET"})
ENV_OVERRIDES = {"GTE_API_KEY": "API_KEY", "GTE_API_SECRET": "API_SECRET"}
ENV_SECRET = "GTE_API_SECRET"
HIDDEN = "<hidden>"
REDACT_MIN_LENGTH = 4  # shorter values would blank out ordinary words of a message


class SettingsError(Exception):
    """A settings file that cannot be used; the message says which setting and why."""


def redact(text: str, secrets: Iterable[Any]) -> str:
    """``text`` with every known secret value replaced by <hidden>."""
    for secret in secrets:
        if isinstance(secret, int) and not isinstance(secret, bool) and secret.bit_length() < 10_000:
            secret = str(secret)  # (an int of more than 4300 digits has no str())
        if isinstance(secret, str) and len(secret) >= REDACT_MIN_LENGTH:
            text = text.replace(secret, HIDDEN)
    return text


def masked(name: str, value: Any) -> Any:
    """``value`` as it may be shown: <hidden> for a set API_KEY / API_SECRET."""
    if name in SECRET_NAMES and value:
        return HIDDEN
    return value


def secret_values(*sources: Mapping[str, Any]) -> List[Any]:
    """The values of API_KEY / API_SECRET (and their environment variables) found in ``sources``."""
    names = SECRET_NAMES | set(ENV_OVERRIDES)
    return [source.get(name) for source in sources for name in names if source.get(name)]


def settings_path(explicit: Optional[str] = None, cwd: Optional[Path] = None) -> Optional[Path]:
    """The user's settings file to load, or None when there is none (defaults apply)."""
    if explicit:
        return _settings_file(Path(explicit), explicit)
    from_env = os.environ.get("MM_SETTINGS")
    if from_env:
        return _settings_file(Path(from_env), f"{from_env} (from MM_SETTINGS)")
    path = (cwd or Path.cwd()) / "settings.py"
    return _settings_file(path, str(path)) if os.path.lexists(path) else None


_NOT_A_FILE = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _kind_of(mode: int) -> Optional[str]:
    """What a non-regular file is ("a directory", ...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _NOT_A_FILE if test(mode)), "not a regular file")


def _settings_file(path: Path, shown: str) -> Path:
    """``path`` resolved, when it is a regular file (stat only: opening a FIFO would block)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SettingsError(f"settings file {shown} does not exist") from None
    except OSError as exc:
        raise SettingsError(f"settings file {shown} cannot be read: {exc.strerror or exc}") from None
    kind = _kind_of(mode)
    if kind:
        raise SettingsError(f"{shown} is {kind}, not a settings file")
    return path.resolve()


def _read_source(path: Path) -> bytes:
    """The bytes of a regular file; opened without blocking and checked again (it may have been swapped)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        kind = _kind_of(os.fstat(fd).st_mode)
        if kind:
            raise SettingsError(f"{path} is {kind}, not a settings file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


def read_settings_file(path: Path, secrets: Iterable[Any] = ()) -> Dict[str, Any]:
    """Run a settings file and return its upper-case names; a broken file becomes a SettingsError.

    Whatever the file raises -- SystemExit and KeyboardInterrupt included -- is a SettingsError naming
    the file and line, with every secret value it defined (and ``secrets``) hidden from the message.
    """
    secrets = list(secrets)
    module = types.ModuleType("settings")
    module.__file__ = str(path)
    namespace = module.__dict__
    saved = sys.modules.get("settings")
    try:
        code = compile(_read_source(path), str(path), "exec", dont_inherit=True)
        sys.modules["settings"] = module  # as runpy does: code that looks its module up finds it
        try:
            exec(code, namespace)
        finally:
            if saved is None:
                sys.modules.pop("settings", None)
            else:
                sys.modules["settings"] = saved
    except SettingsError:
        raise
    except SyntaxError as exc:
        message = f"{exc.filename or path}, line {exc.lineno}: syntax error: {exc.msg}"
        raise SettingsError(redact(message, secrets)) from None
    except BaseException as exc:  # anything the user's file raises, sys.exit() and Ctrl-C included
        line = _user_line(exc, path)
        where = f"{path}, line {line}" if line else str(path)
        hidden = secrets + secret_values(namespace)
        raise SettingsError(redact(f"{where}: {_describe(exc)}", hidden)) from None
    return {k: v for k, v in namespace.items() if k.isupper() and not isinstance(v, types.ModuleType)}


def _user_line(exc: BaseException, path: Path) -> Optional[int]:
    """The line of the user's file where ``exc`` passed last (None when it did not pass there)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the file called sys.exit({'' if exc.code is None else repr(exc.code)})"
    if isinstance(exc, KeyboardInterrupt):
        return "the file raised KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
