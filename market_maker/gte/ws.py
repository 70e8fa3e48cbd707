"""Threaded GTE WebSocket client: live book and tables, seq checks, resync, keep-alive.

``GteWebSocket`` is built in layers, one job per module:

* ``ws_stream.WsStream``: every message goes through ``handle_raw`` -- the same
  entry point the benchmark and the tests feed raw strings to. It checks seqs,
  applies the tables and book, and marks stale tables for resync (its docstring
  tells how nothing is lost while blind).
* ``ws_session.WsSession``: one I/O thread owns the socket; it receives, pings,
  watches for silence, resubscribes stale tables and reconnects with exponential
  backoff + jitter.
* ``readback``: after a resync rebuilt the ``order`` table, the orders that went
  by while we were blind are read back over REST.
* this module: the public client -- consistent reads of all that.

Tables are mutated only under ``_lock``; ``snapshot()`` copies a consistent
``MarketSnapshot`` under that lock.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..models import Book, MarketSnapshot
from .readback import FINISHED_STATUSES, RECONCILE_LOOKBACK_MS, RECONCILE_PAGES
from .signing import Credentials
from .ws_session import AUTH_EXPIRES_MS, PARTIAL_GRACE, PING, RESUBSCRIBE_BACKOFF, WsSession
from .ws_stream import (ALL_TABLES, CROSSED_RESYNC, MARKET_SAMPLE_S, MARKET_TABLES, PRIVATE_TABLES, PUBLIC_TABLES,
                        WsStream)

if TYPE_CHECKING:
    from .rest import GteRest

__all__ = ["GteWebSocket", "WsSession", "WsStream", "PUBLIC_TABLES", "MARKET_TABLES", "PRIVATE_TABLES",
           "ALL_TABLES", "ERROR_KINDS", "PING", "FINISHED_STATUSES", "PARTIAL_GRACE", "RESUBSCRIBE_BACKOFF",
           "RECONCILE_PAGES", "RECONCILE_LOOKBACK_MS", "MARKET_SAMPLE_S", "CROSSED_RESYNC", "AUTH_EXPIRES_MS"]

ERROR_KINDS = ("invalid_json", "unknown_table", "unknown_key", "book_inconsistent", "book_crossed", "malformed",
               "seq_gap", "seq_backwards", "ack_error", "internal")


class GteWebSocket(WsSession):
    """Live GTE market + account state for one symbol; see the module docstring."""

    def __init__(self, ws_url: str, symbol: str, settle_currency: str,
                 credentials: Credentials | None, *, rest: GteRest | None = None,
                 ping_interval: float = 20, silence_timeout: float = 30, partial_timeout: float = 10,
                 crossed_resync: float = CROSSED_RESYNC,
                 reconnect_backoff: tuple[float, float] = (0.5, 30),
                 on_event: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 websocket_factory: Callable[..., Any] | None = None,
                 max_trades: int = 500, max_executions: int = 500) -> None:
        super().__init__(ws_url, symbol, settle_currency, credentials, rest=rest, ping_interval=ping_interval,
                         silence_timeout=silence_timeout, partial_timeout=partial_timeout,
                         crossed_resync=crossed_resync, reconnect_backoff=reconnect_backoff,
                         on_event=on_event, clock=clock, websocket_factory=websocket_factory,
                         max_trades=max_trades, max_executions=max_executions)

    def __repr__(self) -> str:
        return (f"GteWebSocket(url={self.ws_url!r}, symbol={self.symbol!r}, "
                f"credentials={self._creds!r}, connected={self._connected}, synced={self._synced})")

    def __enter__(self) -> GteWebSocket:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------- events
    def wait_for_event(self, timeout: float | None = None) -> set[str]:
        """Event kinds since the last call; waits up to ``timeout`` s (empty set on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._event.wait(remaining)
            with self._lock:
                kinds, self._pending_kinds = self._pending_kinds, set()
                self._event.clear()
            if kinds or (remaining is not None and remaining <= 0):
                return kinds

    # -------------------------------------------------------------------- reads
    def snapshot(self, depth: int = 50, watch: Iterable[str] = ()) -> MarketSnapshot:
        """A consistent copy of everything, taken under the lock.

        ``echoed`` holds those of the ``watch`` order ids the order table has heard of (open or
        recently closed), read together with ``orders``."""
        with self._lock:
            t = self._tables
            echoed = self._known_order_ids(watch) if watch else frozenset()
            return MarketSnapshot(
                instrument=t.instrument(),
                book=self._book.top(depth) if self._book is not None else Book(),
                orders=t.open_orders(), positions=t.position_view(), margin=t.margin(),
                last_update_ms=int(self.last_market_data_time * 1000),
                connected=self._connected, synced=self._synced,
                contracts_traded=t.fills.contracts, fill_count=t.fill_count, fees_paid=t.fees_paid,
                maker_fill_count=t.maker_fill_count,
                recent_trades=t.recent_trades(), echoed=echoed,
                unsynced_since_ms=int(self._unsynced_since * 1000))

    def top_of_book(self, depth: int = 1) -> Book:
        """The book's best ``depth`` levels now (a snapshot's book, without the rest of the copy)."""
        with self._lock:
            return self._book.top(depth) if self._book is not None else Book()

    def resync(self, table: str, reason: str) -> None:
        """Treat ``table`` as stale (the caller has evidence our copy is wrong): resubscribe it."""
        with self._lock:
            self._fail(table, "audit_mismatch", reason)
        self._emit("resync")

    def known_order_ids(self, order_ids: Iterable[str]) -> frozenset[str]:
        """Those of ``order_ids`` the order table has heard of, open or recently closed."""
        with self._lock:
            return self._known_order_ids(order_ids)

    def _known_order_ids(self, order_ids: Iterable[str]) -> frozenset[str]:
        orders = self._tables.orders
        return frozenset(i for i in order_ids if (i,) in orders.rows or (i,) in orders.closed)

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def stats(self) -> dict[str, int]:
        """Counters by kind (errors, resyncs, reconnects, duplicates, ...)."""
        with self._lock:
            return dict(self._stats)

    @property
    def error_count(self) -> int:
        with self._lock:
            return sum(self._stats[k] for k in ERROR_KINDS)

    @property
    def fatal_error(self) -> BaseException | None:
        """Why the I/O thread gave up (authentication refused), if it did."""
        return self._fatal

    def book_depth(self) -> tuple[int, int]:
        with self._lock:
            return self._book.depth if self._book is not None else (0, 0)

    # ---------------------------------------------------------- offline replay
    def prime_for_replay(self, tick_size: Decimal = Decimal("0.5"), symbol_id: int = 1) -> None:
        """Benchmark/replay only (no socket): accept a recorded stream lacking some partials.

        The instrument is set from ``tick_size``/``symbol_id``; every table's seq
        starts at its first message (a partial still resets it), and tables with
        no partial in the stream count as having received an empty one. Live
        clients never call this, so their checks are unchanged.
        """
        with self._lock:
            self._expected = PUBLIC_TABLES + PRIVATE_TABLES
            self._tables.instruments.partial([{
                "symbol": self.symbol, "settle_currency": self.settle_currency,
                "tick_size": str(tick_size), "symbol_id": str(symbol_id),
                "price_precision": str(max(0, -tick_size.as_tuple().exponent))}])  # type: ignore[operator]
            self._set_instrument(self._tables.instrument())
            self._replay = set(self._expected)
            self._seq.clear()
            self._had_partial = set(self._expected)
            self._awaiting.clear()
            self._resync_due.clear()
            self._set_synced(True)

