"""One configured logger for the whole bot, with a last-resort secret filter."""
from __future__ import annotations

import logging
import sys
from typing import Iterable, Optional, Set, TextIO

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ROOT = "market_maker"

_secrets: Set[str] = set()


class RedactSecrets(logging.Filter):
    """Replaces any registered secret in a record's final message by <hidden>.

    The code never logs secrets on purpose; this catches an accident such as a
    library echoing a header.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in _secrets:
            redacted = redacted.replace(secret, "<hidden>")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def register_secret(secret: Optional[str]) -> None:
    if secret and len(secret) >= 6:
        _secrets.add(secret)


class _StdStreamHandler(logging.StreamHandler):
    """Writes to ``sys.stdout`` or ``sys.stderr`` as it is at each record, not as it was when the
    logging was set up (a command run in-process under a capture that is closed later)."""

    def __init__(self, which: str):
        super().__init__(getattr(sys, which))
        self._which: Optional[str] = which

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return getattr(sys, self._which) if self._which else self._fixed

    @stream.setter
    def stream(self, value: TextIO) -> None:  # setStream(): from then on that stream
        self._which, self._fixed = None, value


def setup_logging(level: str = "INFO", stream: Optional[TextIO] = None,
                  secrets: Iterable[Optional[str]] = ()) -> logging.Logger:
    """Configure the ``market_maker`` logger once; calling again only changes the level."""
    for secret in secrets:
        register_secret(secret)
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    if not any(getattr(h, "_mm_handler", False) for h in logger.handlers):
        if stream is None or stream is sys.stdout:
            handler: logging.StreamHandler = _StdStreamHandler("stdout")
        elif stream is sys.stderr:
            handler = _StdStreamHandler("stderr")
        else:
            handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(RedactSecrets())
        handler._mm_handler = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    return logger
