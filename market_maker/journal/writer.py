"""The journal's writer: items in, rows in SQLite out, never blocking whoever puts them.

``JournalWriter(db, apply)`` calls ``apply(db, item)`` for every item put, in order, in
one thread: its own (``threaded=True``: ``put`` appends to a queue and returns at once;
the thread drains it in batches and commits at least every ``COMMIT_S`` seconds, so a
``kill -9`` loses at most the last second) or the caller's (``threaded=False``, for the
backtester, which uses no threads: ``put`` applies at once, commits every ``BATCH`` items).

A write that fails (disk full, I/O error) is logged once; the items of the failed
transaction and every later one that cannot be written are counted in ``lost``. The
writer keeps trying, and says so when writing works again. Nothing is ever raised to
the caller of ``put``: the journal never stops the bot.
"""
from __future__ import annotations

import collections
import logging
import sqlite3
import threading
import time
from typing import Any, Callable, Deque, Optional

log = logging.getLogger("market_maker.journal")

COMMIT_S = 0.25          # the writer thread commits this often when it has written something
BATCH = 2000             # synchronous mode commits every this many items (and the thread at most this many at once)
MAX_QUEUED = 1_000_000   # beyond this backlog new items are dropped (counted lost) rather than eating memory

Apply = Callable[[sqlite3.Connection, Any], None]


def connect(path: str) -> sqlite3.Connection:
    """A connection tuned for the journal: WAL, synchronous=NORMAL (a crash of the process loses
    nothing committed; a power cut at most the last commits), usable from the writer thread."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class JournalWriter:
    """Applies items to ``db`` in one thread, in order; see the module docstring."""

    def __init__(self, db: sqlite3.Connection, apply: Apply, *, threaded: bool = True,
                 commit_s: float = COMMIT_S, batch: int = BATCH, max_queued: int = MAX_QUEUED) -> None:
        self.db = db
        self.apply = apply
        self.threaded = threaded
        self.commit_s = commit_s
        self.batch = batch
        self.max_queued = max_queued
        self.lost = 0              # items that could not be written
        self.written = 0           # items committed
        self.failing = False       # the last write failed
        self._errors_logged = False  # the first failure is logged as an error, later ones quietly
        self._pending = 0          # items applied since the last commit
        self._queue: Deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
            self._thread.start()

    # -- the producer side
    def put(self, item: Any) -> None:
        """Take ``item``; returns at once in threaded mode. Never raises."""
        if self._closed:
            self.lost += 1
            return
        if not self.threaded:
            self._write_one(item)
            if self._pending >= self.batch:
                self._commit()
            return
        if len(self._queue) >= self.max_queued:
            self.lost += 1
            return
        self._queue.append(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything put so far is committed (threaded), or commit now; True when done."""
        if not self.threaded:
            self._commit()
            return True
        deadline = time.monotonic() + timeout
        while self._queue or self._pending:
            self._wake.set()
            if time.monotonic() > deadline or self._thread is None or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, commit, stop the thread and close the connection."""
        if self._closed:
            return
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("Journal writer did not finish within %.0fs; %d records not written", timeout,
                          len(self._queue))
                self.lost += len(self._queue)
                self._closed = True
                return
        self._commit()
        self._closed = True
        try:
            self.db.close()
        except sqlite3.Error as exc:
            log.error("Closing the journal failed: %s", exc)

    # -- the writer side
    def _run(self) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self.commit_s)
            self._wake.clear()
            while queue:
                n = 0
                while queue and n < self.batch:
                    self._write_one(queue.popleft())
                    n += 1
                self._commit()
            if self._stop and not queue:
                return

    def _write_one(self, item: Any) -> None:
        db = self.db
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
            self.apply(db, item)
            self._pending += 1
        except sqlite3.Error as exc:
            self._failed(exc, self._pending + 1)
        except Exception:  # a bug in turning an item into rows: that item is lost, not the journal
            log.exception("Journal: could not record %r", item)
            self.lost += 1

    def _commit(self) -> None:
        db = self.db
        if not db.in_transaction:
            self._pending = 0
            return
        try:
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed(exc, self._pending)
            return
        self.written += self._pending
        if self.failing and self._pending:
            self.failing = False
            log.warning("Journal: writing works again (%d records lost so far)", self.lost)
        self._pending = 0

    def _failed(self, exc: sqlite3.Error, items: int) -> None:
        """The transaction is gone: its items are lost. Logged once (later failures at debug level)."""
        self.lost += items
        self._pending = 0
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        if self.failing:
            return
        self.failing = True
        if self._errors_logged:
            log.debug("Journal: cannot write again (%s); %d records lost so far", exc, self.lost)
        else:
            self._errors_logged = True
            log.error("Journal: cannot write (%s); the bot keeps trading, records that cannot be written are "
                      "counted as lost", exc)
