"""Threaded GTE WebSocket client: live book and tables, seq checks, resync, keep-alive.

One I/O thread owns the socket (``websocket-client``'s ``create_connection``):
it receives, pings, watches for silence, resubscribes stale tables and
reconnects with exponential backoff + jitter. Every message goes through
``handle_raw`` -- the same entry point the benchmark and the tests feed raw
strings to. Tables are mutated only under ``_lock``; ``snapshot()`` copies a
consistent ``MarketSnapshot`` under that lock.

Resync and fills (how nothing is lost while blind):

* A seq gap / backwards seq / inconsistent or malformed message on table T
  marks T stale (its messages are ignored until a new partial) and the I/O
  thread sends ``unsub`` + ``sub`` for T. Invalid JSON, an unknown table or a
  lost connection mean everything is stale: the client reconnects and every
  table is rebuilt from fresh partials.
* When the ``order`` table is rebuilt after a resync, each order's
  ``filled_qty`` in the new partial -- and then in ``rest.open_orders()``, which
  is newer -- is compared with what was already counted for that order
  (``FillCounter.credited``); the difference is added to ``contracts_traded``.
  Executions in a resync partial are counted too (deduplicated by ``exec_id``
  and capped by ``cum_qty``), so a fill is never counted twice. Orders created
  and finished entirely while we were blind appear in no partial: the REST
  reconciliation also reads the most recent final orders (created since this
  client started) and credits their ``filled_qty`` the same way. Positions come
  straight from the new position partial.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any

import websocket

from ..models import Book, Instrument, MarketSnapshot
from .book import BookInconsistent, MalformedMessage, OrderBook, StreamError
from .errors import AuthenticationError, GteError, error_from_code
from .parse import MalformedRow
from .signing import Credentials, ws_signature
from .tables import LiveTables, UnknownKey

if TYPE_CHECKING:
    from .rest import GteRest

log = logging.getLogger(__name__)

PUBLIC_TABLES = ("instrument", "trade", "order_book")
# What counts as fresh market data (``MarketSnapshot.last_update_ms``): the book and the trades. Not the
# instrument table: the exchange re-pushes it on a timer whatever the book does, so it would hide a
# frozen book feed; nor pongs, acks or private tables.
MARKET_TABLES = frozenset(("order_book", "trade"))
PRIVATE_TABLES = ("order", "execution", "position", "margin")
ALL_TABLES = "*"  # a resync of everything: reconnect
ERROR_KINDS = ("invalid_json", "unknown_table", "unknown_key", "book_inconsistent", "book_crossed", "malformed",
               "seq_gap", "seq_backwards", "ack_error", "internal")
PING = '{"op":"ping"}'
FINISHED_STATUSES = (8, 32)
PARTIAL_GRACE = 1.5  # seconds between a sub's ack and its partial before we call the partial lost
# Resubscribing a table whose partial does not come: at once, then after 0.5, 1, 2, 4, 4 ... s (until the
# episode's partial_timeout forces a reconnect). A server that keeps sending updates without the partial
# must not get a resubscription per message.
RESUBSCRIBE_BACKOFF = (0.5, 4.0)
RECONCILE_PAGES = 10  # pages of 100 final orders read back after a resync, at most
RECONCILE_LOOKBACK_MS = 5000  # ... back to this long before the tables went out of sync
MARKET_SAMPLE_S = 1.0  # a market sample is recorded at most this often (and before each of our fills)
CROSSED_RESYNC = 3.0  # seconds a book may stay crossed (a sweep in flight) before it is resubscribed
AUTH_EXPIRES_MS = 5000

_loads = json.loads
_raw_decode = json.JSONDecoder().raw_decode  # public API; skips loads()' wrapper layers


def _decode_slow(message: Any) -> Any:
    """``json.loads`` (surrounding whitespace, bytes); None if it is not JSON."""
    try:
        return _loads(message)
    except (ValueError, TypeError):
        return None


_APPLY_ERRORS = (StreamError, MalformedRow, KeyError, TypeError, ValueError, ArithmeticError,
                 AttributeError)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, UnknownKey):
        return "unknown_key"
    if isinstance(exc, BookInconsistent):
        return "book_inconsistent"
    return "malformed"


def _mask(key: str) -> str:
    return key[:2] + "…"


class GteWebSocket:
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
        self.ws_url = ws_url
        self.symbol = symbol
        self.settle_currency = settle_currency
        self._creds = credentials
        self._rest = rest
        self.ping_interval = ping_interval
        self.silence_timeout = silence_timeout
        self.partial_timeout = partial_timeout
        self.crossed_resync = crossed_resync
        self.reconnect_backoff = reconnect_backoff
        self._on_event = on_event
        self._clock = clock
        self._factory = websocket_factory or websocket.create_connection
        self._tick = max(0.01, min(0.2, ping_interval / 4, silence_timeout / 4))

        self._lock = threading.Lock()
        self._tables = LiveTables(symbol, settle_currency, max_trades=max_trades,
                                  max_executions=max_executions, started_ms=int(clock() * 1000))
        self._book: OrderBook | None = None
        self._expected: tuple[str, ...] = PUBLIC_TABLES + (PRIVATE_TABLES if credentials else ())
        self._seq: dict[str, Any] = {}  # last applied seq; absent = waiting for a partial
        self._awaiting: set[str] = set(self._expected)  # tables without a current partial
        self._had_partial: set[str] = set()
        self._replay: set[str] = set()  # offline replay: first message starts the seq
        self._resync_due: set[str] = set()  # for the I/O thread: tables to resubscribe
        self._resync_deadline = 0.0
        self._resub_tries: dict[str, int] = {}  # resubscriptions of a table since its last partial
        self._resub_at: dict[str, float] = {}  # monotonic time its next resubscription may go
        self._reconcile_pending = False  # the order table was rebuilt after a resync
        self._reconcile_due = False  # ... and the REST reconciliation is now due
        self._acks: dict[tuple[Any, Any], int] = {}
        self._sub_acked: set[str] = set()  # tables whose latest "sub" was acknowledged (partial due next)
        self._acked_at: dict[str, float] = {}  # when that ack came (monotonic)
        self._stats: Counter[str] = Counter()
        self._connected = False
        self._synced = False
        self._unsynced_since = 0.0  # clock() when the tables last went out of sync (0 while synced)
        self._open_before_blind_ms: int | None = None  # ctime of the oldest order open when they did
        self.last_message_time = 0.0  # clock() when the I/O thread last received a message (any: silence check)
        self.last_market_data_time = 0.0  # clock() when an order_book or trade message was last applied
        self._crossed_since: float | None = None  # clock() when the book became crossed
        self._record: Callable[..., None] | None = None  # set_recorder: facts for the journal and other sinks
        self._sampled_at = 0.0  # clock() of the last market sample recorded

        # table -> handler(rows, action) -> event kind; the book's is its own ``apply``
        self._handlers: dict[str, Callable[[Any, Any], str | None]] = {
            name: partial(self._on_table, name) for name in ("trade",) + PRIVATE_TABLES}
        self._handlers["instrument"] = self._on_instrument
        self._handlers["order_book"] = self._no_book
        self._pending_kinds: set[str] = set()
        self._deferred: list[str] = []
        self._event = threading.Event()

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    def __repr__(self) -> str:
        return (f"GteWebSocket(url={self.ws_url!r}, symbol={self.symbol!r}, "
                f"credentials={self._creds!r}, connected={self._connected}, synced={self._synced})")

    # ================================================================ the hot path
    def handle_raw(self, message: str) -> None:
        """Parse and apply one raw message; never raises (problems are counted + resynced).

        Kept lean for throughput: one ``json.loads``, a handler lookup, the seq
        check and the handler under the lock; events are raised after the lock.
        """
        try:
            msg, end = _raw_decode(message)
            if end != len(message):
                raise ValueError("trailing data")
        except (ValueError, TypeError):
            msg = _decode_slow(message)
        try:
            table = msg["table"]
        except KeyError:
            self._control(msg)
            return
        except TypeError:  # not a JSON object (or not JSON at all)
            self._problem("invalid_json", ALL_TABLES, f"invalid JSON message ({len(message)} chars)")
            return
        wake = False
        lock = self._lock
        try:
            try:
                handler = self._handlers.get(table)
            except TypeError:  # an unhashable "table"
                handler = None
            if handler is None:
                self._problem("unknown_table", ALL_TABLES, f"unknown table {str(table)[:40]!r}")
                return
            seq = msg.get("seq")
            action = msg.get("action")
            lock.acquire()
            try:
                last = self._seq.get(table)
                if last is not None and seq == last + 1 and action != "partial":
                    try:
                        kind = handler(msg["data"], action)
                        self._seq[table] = seq
                    except _APPLY_ERRORS as exc:
                        kind = self._fail(table, _error_kind(exc), str(exc))
                    else:
                        if table in MARKET_TABLES:
                            kind = self._market_data(table, kind)
                elif action == "partial":
                    kind = self._apply_partial(handler, table, msg, seq)
                else:
                    kind = self._out_of_sequence(handler, table, msg, seq, last, action)
                if kind is not None and kind not in self._pending_kinds:
                    self._pending_kinds.add(kind)
                    wake = True
            finally:
                lock.release()
        except Exception as exc:  # a bug must not kill the I/O thread
            log.debug("unexpected error applying a message", exc_info=True)
            self._problem("internal", ALL_TABLES, f"{type(exc).__name__} while applying a message")
            return
        if wake:
            self._event.set()
        if kind is not None and self._on_event is not None:
            self._call_back(kind)
        if self._deferred:
            self._flush_deferred()

    def _out_of_sequence(self, handler: Callable[..., str | None], table: str,
                         msg: dict[str, Any], seq: Any, last: Any, action: Any) -> str | None:
        """Lock held: a message whose seq is not last + 1 (or the table awaits a partial)."""
        if last is None:
            if table not in self._replay:
                if table in self._sub_acked and seq.__class__ is int and seq > 1:
                    # the server numbers a subscription from 1 (its partial) and acks before the partial:
                    # seq > 1 after our ack means the partial was lost -- resubscribe now, don't wait
                    return self._fail(table, "partial_lost", f"seq {seq} arrived without its partial")
                self._stats["ignored_before_partial"] += 1
                return None
            if seq.__class__ is not int:
                return self._fail(table, "malformed", "message without an integer seq")
            self._replay.discard(table)
            try:
                kind = handler(msg["data"], action)
            except _APPLY_ERRORS as exc:
                return self._fail(table, _error_kind(exc), str(exc))
            self._seq[table] = seq
            return self._market_data(table, kind) if table in MARKET_TABLES else kind
        if seq == last:
            self._stats["seq_duplicate"] += 1
            return None
        if seq.__class__ is not int:
            return self._fail(table, "malformed", "message without an integer seq")
        if seq > last:
            return self._fail(table, "seq_gap", f"seq jumped from {last} to {seq}")
        return self._fail(table, "seq_backwards", f"seq went back from {last} to {seq}")

    def _apply_partial(self, handler: Callable[..., str | None], table: str,
                       msg: dict[str, Any], seq: Any) -> str | None:
        """Lock held: a full image replaces the table; maybe the last one we waited for."""
        if seq.__class__ is not int:
            return self._fail(table, "malformed", "partial without an integer seq")
        try:
            kind = handler(msg["data"], "partial")
        except _APPLY_ERRORS as exc:
            return self._fail(table, _error_kind(exc), str(exc))
        self._seq[table] = seq
        self._replay.discard(table)
        self._had_partial.add(table)
        self._resync_due.discard(table)  # the fresh image makes a pending resubscription moot
        self._resub_tries.pop(table, None)
        self._resub_at.pop(table, None)
        if table in self._awaiting:
            self._awaiting.discard(table)
            if not self._awaiting:
                self._resync_due.discard(ALL_TABLES)
                self._resync_deadline = 0.0  # the resync episode is over
            self._maybe_synced()
        return self._market_data(table, kind) if table in MARKET_TABLES else kind

    def _market_data(self, table: str, kind: str | None) -> str | None:
        """Lock held: an order_book or trade message was applied; returns the event kind."""
        now = self._clock()
        self.last_market_data_time = now
        if table == "order_book":
            if now - self._sampled_at >= MARKET_SAMPLE_S and self._tables.recording():
                self._sample("sample", now)
            return self._watch_crossing(now) or kind
        return kind

    # ------------------------------------------------------------- recording
    def set_recorder(self, record: Callable[..., None] | None, listening: Callable[[], bool] | None = None) -> None:
        """``record(kind, **fields)`` is told our executions, positions, margin, funding, orders' states,
        market samples (about once a second, and just before our fills), resyncs and
        connections (``events.py`` documents the kinds). It must return at once. ``listening()``
        False: nobody listens now, nothing is told (and nothing is spent on telling)."""
        self._record = record
        self._tables.record = record
        self._tables.listening = listening

    def _sample(self, reason: str, now: float) -> None:
        """Lock held: the top of the book (and the mark) as a market sample."""
        self._sampled_at = now
        book = self._book
        bid = ask = None
        if book is not None:
            tick = book.tick_size
            bid = None if book.best_bid_ticks is None else book.best_bid_ticks * tick
            ask = None if book.best_ask_ticks is None else book.best_ask_ticks * tick
        inst = self._tables.instrument()
        self._record("market", best_bid=bid, best_ask=ask,  # type: ignore[misc]
                     mid=(bid + ask) / 2 if bid is not None and ask is not None else None,
                     mark=inst.mark_price if inst is not None else None, reason=reason)

    def _watch_crossing(self, now: float) -> str | None:
        """Lock held: log when the book crosses or uncrosses (once each); resubscribe it when it stays crossed.

        A sweep can cross our copy for a moment (its insert before the matching delete); a book crossed
        for ``crossed_resync`` seconds is a broken copy (or a broken feed): a fresh partial replaces it.
        """
        book = self._book
        if book is None:
            return None
        bid, ask = book.best_bid_ticks, book.best_ask_ticks
        since = self._crossed_since
        if bid is None or ask is None or bid < ask:
            if since is not None:
                self._crossed_since = None
                log.info("GTE order book no longer crossed")
            return None
        if since is None:
            self._crossed_since = now
            log.warning("GTE order book crossed (bid %s >= ask %s); resyncing it if that lasts %gs",
                        bid * book.tick_size, ask * book.tick_size, self.crossed_resync)
            return None
        if now - since < self.crossed_resync or "order_book" in self._awaiting:
            return None
        self._crossed_since = now  # the episode goes on: the next resync, if needed, after another period
        return self._fail("order_book", "book_crossed", f"crossed for {now - since:.1f}s")

    def _maybe_synced(self) -> None:
        """Lock held: every partial is in -> synced (after the REST reconciliation, if due)."""
        if self._awaiting or self._synced:
            return
        if self._reconcile_pending and self._rest is not None and self._connected:
            self._reconcile_due = True
            return
        self._reconcile_pending = False
        self._set_synced(True)
        self._deferred.append("synced")

    # ------------------------------------------------------------- table handlers
    @staticmethod
    def _no_book(rows: Any, action: Any) -> str:
        raise MalformedMessage("order_book message before the instrument is known")

    def _on_table(self, table: str, rows: Any, action: Any) -> str | None:
        if not isinstance(rows, list):
            raise MalformedMessage("data is not a list")
        resync = action == "partial" and table in self._had_partial
        if table == "execution" and (action != "partial" or resync) and self._tables.recording():
            self._sample("fill", self._clock())  # the market just before our fills
        return self._tables.apply(table, action, rows, resync=resync)

    def _on_instrument(self, rows: Any, action: Any) -> str | None:
        kind = self._on_table("instrument", rows, action)
        self._set_instrument(self._tables.instrument())
        return kind

    def _set_instrument(self, inst: Instrument | None) -> None:
        """Lock held: (re)build the book when tick size or symbol id become known or change."""
        if inst is None:
            return
        book = self._book
        if book is not None and book.tick_size == inst.tick_size and book.symbol_id == inst.symbol_id:
            return
        if inst.symbol_id <= 0:
            log.warning("instrument %s has no symbol_id: book prices cannot be derived", inst.symbol)
        self._book = OrderBook(inst.tick_size, inst.symbol_id)
        self._handlers["order_book"] = self._book.apply
        if book is not None and len(book):
            self._fail("order_book", "instrument_changed", "tick size or symbol id changed")

    # ------------------------------------------------------------ problems/resync
    def _problem(self, kind: str, table: str, text: str) -> None:
        with self._lock:
            self._fail(table, kind, text)
        self._emit("resync")
        if self._deferred:
            self._flush_deferred()

    def _fail(self, table: str, kind: str, text: str) -> str:
        """Lock held: count, log (no payloads) and mark ``table`` stale."""
        self._stats[kind] += 1
        log.warning("GTE WebSocket %s on %s: %s; resyncing", kind, table, text)
        if self._tables.recording():
            self._record("resync", table=table, reason=f"{kind}: {text}")
        self._mark_stale(table)
        return "resync"

    def _set_synced(self, synced: bool) -> None:
        """Lock held (or no I/O thread yet): note when the tables went out of sync."""
        if synced:
            self._unsynced_since = 0.0
            self._open_before_blind_ms = None
        elif self._synced or not self._unsynced_since:
            self._unsynced_since = self._clock()
            # an order open now can finish unseen: the read-back after the resync reaches back to the oldest
            self._open_before_blind_ms = min((o.ctime for o in self._tables.open_orders() if o.ctime),
                                             default=None)
        self._synced = synced

    def _mark_stale(self, table: str) -> None:
        """Lock held: ignore ``table`` until its new partial; the I/O thread resubscribes."""
        tables = self._expected if table == ALL_TABLES else (table,)
        self._stats["resyncs"] += 1
        self._resync_due.add(table)
        for name in tables:
            self._sub_acked.discard(name)  # messages until the next sub's ack belong to the old one
            self._seq.pop(name, None)
            self._replay.discard(name)
            self._awaiting.add(name)
        if ("order" in tables or "execution" in tables) and "order" in self._had_partial:
            self._reconcile_pending = True  # an execution lost too: the order query says what filled
        self._set_synced(False)

    # ------------------------------------------------------------------ control
    def _control(self, msg: Any) -> None:
        """Pong, acks and anything else without a table. Acks echo our requests
        (the auth one includes the signature): never log their content."""
        with self._lock:
            if msg.get("op") == "pong":
                self._stats["pongs"] += 1
                return
            status = msg.get("status")
            if status is None:
                self._stats["unknown_message"] += 1
                return
            request = msg.get("request")
            if isinstance(request, str):
                try:
                    request = _loads(request)
                except ValueError:
                    request = None
            op = request.get("op") if isinstance(request, dict) else None
            args = request.get("args") if isinstance(request, dict) else None
            table = args.get("table") if isinstance(args, dict) else None
            try:
                code = int(status)
            except (TypeError, ValueError):
                code = -1
            self._acks[(op, table)] = code
            if op == "sub" and code == 0 and isinstance(table, str):
                self._sub_acked.add(table)
                self._acked_at[table] = time.monotonic()
            if code < 0:
                self._stats["ack_error"] += 1
                log.warning("GTE refused %s %s with code %s", str(op)[:30], str(table)[:30], code)

    # ------------------------------------------------------------------- events
    def _emit(self, kind: str) -> None:
        """Outside the lock: wake pollers and call the user's callback."""
        with self._lock:
            self._pending_kinds.add(kind)
        if not self._event.is_set():
            self._event.set()
        if self._on_event is not None:
            self._call_back(kind)

    def _flush_deferred(self) -> None:
        with self._lock:
            kinds, self._deferred = self._deferred, []
        for kind in kinds:
            self._emit(kind)

    def _call_back(self, kind: str) -> None:
        try:
            self._on_event(kind)  # type: ignore[misc]
        except Exception:
            log.exception("on_event callback failed for %r", kind)

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

    # ================================================================ lifecycle
    def start(self) -> None:
        """Connect, authenticate, subscribe and block until every partial arrived.

        Raises ``AuthenticationError`` if the key is refused, ``GteError`` naming the
        missing tables if partials don't arrive within ``partial_timeout``, or the
        connection error. On success an I/O daemon thread keeps the state live.
        """
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        self._fatal = None
        ws = self._open_session(first=True)
        self._thread = threading.Thread(target=self._run, args=(ws,), daemon=True,
                                        name=f"gte-ws-{self.symbol}")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection cleanly and join the I/O thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("GTE WebSocket thread did not stop within %.1fs", timeout)

    def __enter__(self) -> GteWebSocket:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- the session
    def _open_session(self, first: bool) -> Any:
        """Connect, auth, subscribe, wait for all partials (and reconcile after a resync)."""
        ws = self._factory(self.ws_url, timeout=self.partial_timeout)
        try:
            with self._lock:
                self._seq.clear()
                self._acks.clear()
                self._sub_acked.clear()
                self._awaiting = set(self._expected)
                self._resync_deadline = 0.0
                self._resync_due.clear()
                self._resub_tries.clear()
                self._resub_at.clear()
                self._set_synced(False)
                self._connected = True
                if not first and "order" in self._had_partial:
                    self._reconcile_pending = True
                self.last_message_time = self._clock()
            deadline = time.monotonic() + self.partial_timeout
            if self._creds is not None:
                self._authenticate(ws, deadline)
            self._send_sub(ws, "sub", "instrument")
            self._wait(ws, deadline, lambda: "instrument" not in self._awaiting)
            for table in self._expected:
                if table != "instrument":
                    self._send_sub(ws, "sub", table)
            self._wait(ws, deadline, lambda: not self._awaiting)
            if self._reconcile_due:
                self._reconcile()
            if self._tables.recording():
                self._record("connection", up=True, reason="first connection" if first else "reconnected")
            return ws
        except BaseException:
            with self._lock:
                self._connected = False
                self._set_synced(False)
            self._close(ws)
            raise

    def _authenticate(self, ws: Any, deadline: float) -> None:
        creds = self._creds
        assert creds is not None
        expires = str(int(self._clock() * 1000) + AUTH_EXPIRES_MS)
        args = {"api_key": creds.api_key, "expires": expires,
                "signature": ws_signature(creds.api_secret, expires)}
        log.info("authenticating as key %s", _mask(creds.api_key))
        ws.send(json.dumps({"op": "auth_key_expires", "args": args}, separators=(",", ":")))
        key = ("auth_key_expires", None)
        self._wait(ws, deadline, lambda: key in self._acks, what="the auth acknowledgement")
        code = self._acks[key]
        if code < 0:
            err = error_from_code(code)
            if isinstance(err, AuthenticationError):
                raise err
            raise AuthenticationError(code, f"WebSocket authentication refused ({err.message})")

    def _send_sub(self, ws: Any, op: str, table: str) -> None:
        args = {"instrument_type": "pc", "table": table, "settle_currency": self.settle_currency}
        if table in PUBLIC_TABLES:
            args["symbol"] = self.symbol
        with self._lock:
            self._sub_acked.discard(table)
        ws.send(json.dumps({"op": op, "args": args}, separators=(",", ":")))

    def _wait(self, ws: Any, deadline: float, done: Callable[[], bool], what: str = "") -> None:
        """Receive and apply messages until ``done()``; refused subs and timeouts raise."""
        while True:
            with self._lock:
                if done():
                    return
                refused = [(op, t, c) for (op, t), c in self._acks.items() if c < 0 and op != "auth_key_expires"]
                missing = sorted(self._awaiting)
            if refused:
                op, table, code = refused[0]
                raise error_from_code(code, f"{op} {table} refused by GTE")
            if self._resync_due and not self._resubscribe(ws):
                raise GteError(None, "the WebSocket stream broke while subscribing")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                raise GteError(None, f"no {what or 'partial'} within {self.partial_timeout:g}s"
                               + ("" if what else f"; missing tables: {', '.join(missing)}"))
            ws.settimeout(min(remaining, self._tick))
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if message:
                self.last_message_time = self._clock()
                self.handle_raw(message)

    # ------------------------------------------------------------- the I/O loop
    def _run(self, ws: Any | None) -> None:
        attempt = 0
        while not self._stop.is_set():
            if ws is None:
                lo, hi = self.reconnect_backoff
                delay = min(hi, lo * (2 ** attempt)) * random.uniform(0.5, 1.0)
                attempt += 1
                if self._stop.wait(delay):
                    break
                try:
                    ws = self._open_session(first=False)
                except AuthenticationError as exc:
                    log.error("GTE WebSocket authentication refused; giving up: %s", exc)
                    self._fatal = exc
                    self._emit("disconnected")
                    return
                except Exception as exc:
                    log.warning("GTE WebSocket reconnect failed (%s); retrying", exc)
                    continue
                with self._lock:
                    self._stats["reconnects"] += 1
                attempt = 0
            try:
                alive = self._pump(ws)
            except Exception:  # a bug must not kill the I/O thread and freeze a "connected" view
                log.exception("GTE WebSocket I/O loop failed; reconnecting")
                with self._lock:
                    self._stats["internal"] += 1
                alive = False
            if not alive:
                self._lost(ws)
                ws = None
        if ws is not None:
            with self._lock:
                self._connected = False
                self._set_synced(False)
            self._close(ws)

    def _pump(self, ws: Any) -> bool:
        """Serve one connection until it is lost (False) or we are stopped (True)."""
        clock = self._clock
        last_ping = clock()
        try:
            ws.settimeout(self._tick)
        except (websocket.WebSocketException, OSError):
            return False
        while not self._stop.is_set():
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                message = None
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("GTE WebSocket connection lost: %s", type(exc).__name__)
                return False
            now = clock()
            if message:
                self.last_message_time = now
                self.handle_raw(message)  # a binary frame (bytes) is decoded by json itself
            try:
                if now - last_ping >= self.ping_interval:
                    ws.send(PING)
                    last_ping = now
                crossed_since = self._crossed_since  # a frozen crossed book gets no message to check it on
                if crossed_since is not None and now - crossed_since >= self.crossed_resync:
                    with self._lock:
                        kind = self._watch_crossing(now)
                    if kind is not None:
                        self._emit(kind)
                if now - self.last_message_time > self.silence_timeout:
                    log.warning("GTE WebSocket silent for %.0fs; reconnecting", now - self.last_message_time)
                    with self._lock:
                        self._stats["silence"] += 1
                    return False
                if self._awaiting:
                    self._retry_lost_partials()
                if self._resync_due and not self._resubscribe(ws):
                    return False
                if self._reconcile_due:
                    self._reconcile()
                if self._awaiting and time.monotonic() > self._resync_deadline > 0:
                    log.warning("partials missing after resubscribe: %s; reconnecting", sorted(self._awaiting))
                    return False
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("GTE WebSocket send failed: %s", type(exc).__name__)
                return False
        return True

    def _retry_lost_partials(self) -> None:
        """A partial follows its sub's ack at once: one missing PARTIAL_GRACE after the ack was dropped.

        Catches quiet tables too (execution, margin), where no later message would reveal the gap.
        """
        now = time.monotonic()
        with self._lock:
            for table in [t for t in self._awaiting if t in self._sub_acked
                          and now - self._acked_at.get(t, now) > PARTIAL_GRACE]:
                self._stats["partial_lost"] += 1
                self._sub_acked.discard(table)
                self._resync_due.add(table)
                log.info("no %s partial %.1fs after the subscription was acknowledged; resubscribing",
                         table, PARTIAL_GRACE)

    def _resubscribe(self, ws: Any) -> bool:
        """Send unsub + sub for stale tables; False means "reconnect instead"."""
        now = time.monotonic()
        with self._lock:
            if ALL_TABLES in self._resync_due:
                self._resync_due = set()
                return False
            due = {t for t in self._resync_due if self._resub_at.get(t, 0.0) <= now}
            if not due:
                return True  # backing off
            self._resync_due -= due
            if not self._resync_deadline:  # retries within an episode keep its deadline: bounded time to reconnect
                self._resync_deadline = now + self.partial_timeout
            lo, hi = RESUBSCRIBE_BACKOFF
            for table in due:
                tries = self._resub_tries[table] = self._resub_tries.get(table, 0) + 1
                self._resub_at[table] = now + min(hi, lo * 2 ** (tries - 1))
        for table in sorted(due, key=lambda t: t != "instrument"):
            self._send_sub(ws, "unsub", table)
            self._send_sub(ws, "sub", table)
        return True

    def _reconcile(self) -> None:
        """REST view of open orders after the order table was rebuilt (outside the lock)."""
        with self._lock:
            self._reconcile_due = False
        orders = None
        if self._rest is not None:
            try:
                orders = self._rest.open_orders()
                # orders placed and finished while we were blind are in no partial: ask for recent final ones,
                # page by page back to (a while before) the time we went blind
                since = self._tables.started_ms
                with self._lock:
                    blind_ms = int(self._unsynced_since * 1000) - RECONCILE_LOOKBACK_MS if self._unsynced_since else 0
                    if self._open_before_blind_ms is not None:
                        blind_ms = min(blind_ms, self._open_before_blind_ms)
                lt = None
                for _ in range(RECONCILE_PAGES):
                    page = self._rest.query_orders(statuses=FINISHED_STATUSES, count=100, lt_order_id=lt)
                    orders += [o for o in page if o.ctime >= since]
                    ids = [int(o.order_id) for o in page if o.order_id.isdigit()]
                    if len(page) < 100 or not ids or min(o.ctime for o in page) < max(since, blind_ms):
                        break
                    lt = str(min(ids))
            except Exception as exc:
                log.warning("open-order reconciliation over REST failed: %s", exc)
        with self._lock:
            if orders is not None:
                added = self._tables.reconcile_orders(orders)
                if added:
                    self._stats["contracts_recovered"] += added
            self._reconcile_pending = False
            self._maybe_synced()
        if self._deferred:
            self._flush_deferred()

    def _lost(self, ws: Any) -> None:
        with self._lock:
            self._connected = False
            self._set_synced(False)
            self._stats["disconnects"] += 1
            for table in self._expected:
                self._seq.pop(table, None)
        if self._tables.recording():
            self._record("connection", up=False, reason="connection lost")
        self._close(ws)
        self._emit("disconnected")

    @staticmethod
    def _close(ws: Any) -> None:
        """Send a close frame (waiting at most 1 s for the reply); errors are moot here."""
        try:
            ws.close(timeout=1)
        except Exception:
            log.debug("error while closing the WebSocket", exc_info=True)
