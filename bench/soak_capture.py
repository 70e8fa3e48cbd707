"""The chaos soak's evidence (bench/soak.py): every log record into a temp file, every signature the client
computes, and the process's memory."""
from __future__ import annotations

import gc
import logging
import os
import tempfile
import threading
from typing import Any, Callable, List, Set, Tuple

import psutil

from market_maker.gte import signing
from market_maker.gte import ws_session as ws_module


def mb(n: float) -> float:
    return n / (1 << 20)


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


# ----------------------------------------------------------------------------------------------------------------------
# Capture: logs into a file buffer, exceptions, signatures


class Capture(logging.Handler):
    """Every log record of the process, formatted at DEBUG into a temp file; flags tracebacks."""

    def __init__(self, report: Callable[[str, str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", prefix="soak-log-")
        self.lock_ = threading.Lock()
        self.report = report
        self.records = 0
        self.errors = 0
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # includes the formatted traceback of exc_info
        except Exception:
            text = f"<unformattable record {record.name}>"
        with self.lock_:
            self.records += 1
            self.file.write(text + "\n")
        if record.levelno >= logging.ERROR:
            self.errors += 1
            if record.exc_info or "Traceback" in text:
                self.report("unhandled_exception", f"{record.name}: {record.getMessage()[:200]}")

    def lines(self):
        with self.lock_:
            self.file.flush()
            self.file.seek(0)
            for line in self.file:
                yield line
            self.file.seek(0, os.SEEK_END)


class Signatures:
    """Records every signature the client computes (wrapping the signing functions)."""

    def __init__(self) -> None:
        self.seen: Set[bytes] = set()
        self.count = 0
        self._lock = threading.Lock()
        self._undo: List[Tuple[Any, str, Any]] = []

    def _wrap(self, fn: Callable[..., str]) -> Callable[..., str]:
        def wrapped(*args: Any, **kwargs: Any) -> str:
            sig = fn(*args, **kwargs)
            with self._lock:
                self.count += 1
                self.seen.add(bytes.fromhex(sig))
            return sig
        return wrapped

    def install(self) -> None:
        for module, name in ((signing, "rest_signature"), (signing, "ws_signature"), (ws_module, "ws_signature")):
            original = getattr(module, name)
            self._undo.append((module, name, original))
            setattr(module, name, self._wrap(original))

    def uninstall(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()

    def __contains__(self, hex_text: str) -> bool:
        return bytes.fromhex(hex_text) in self.seen

