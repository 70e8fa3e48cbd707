"""The GTE WebSocket client's message handling: seq checks, the live tables and resync state.

Every message goes through ``handle_raw`` -- the same entry point the I/O thread,
the benchmark and the tests feed raw strings to. Tables are mutated only under
``_lock``; events are raised after it is released.

Resync and fills (how nothing is lost while blind):

* A seq gap / backwards seq / inconsistent or malformed message on table T
  marks T stale (its messages are ignored until a new partial) and the I/O
  thread (``ws_session``) sends ``unsub`` + ``sub`` for T. Invalid JSON, an
  unknown table or a lost connection mean everything is stale: the client
  reconnects and every table is rebuilt from fresh partials.
* When the ``order`` table is rebuilt after a resync, each order's
  ``filled_qty`` in the new partial -- and then in the REST read-back
  (``readback``), which is newer -- is compared with what was already counted
  for that order (``FillCounter.credited``); the difference is added to
  ``contracts_traded``. Executions in a resync partial are counted too
  (deduplicated by ``exec_id`` and capped by ``cum_qty``), so a fill is never
  counted twice. Positions come straight from the new position partial. The
  tables count as synced only once that read-back is done.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ..models import Instrument
from .book import BookInconsistent, MalformedMessage, OrderBook, StreamError
from .parse import MalformedRow
from .tables import LiveTables, UnknownKey

if TYPE_CHECKING:
    from .rest import GteRest

log = logging.getLogger("market_maker.gte.ws")  # the client's logger, whichever of its modules logs

PUBLIC_TABLES = ("instrument", "trade", "order_book")
# What counts as fresh market data (``MarketSnapshot.last_update_ms``): the book and the trades. Not the
# instrument table: the exchange re-pushes it on a timer whatever the book does, so it would hide a
# frozen book feed; nor pongs, acks or private tables.
MARKET_TABLES = frozenset(("order_book", "trade"))
PRIVATE_TABLES = ("order", "execution", "position", "margin")
ALL_TABLES = "*"  # a resync of everything: reconnect
MARKET_SAMPLE_S = 1.0  # a market sample is recorded at most this often (and before each of our fills)
CROSSED_RESYNC = 3.0  # seconds a book may stay crossed (a sweep in flight) before it is resubscribed

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


class WsStream:
    """Applies raw messages to the live tables of one symbol; tracks seq, partials and resyncs.

    The state shared with the I/O thread (``ws_session.WsSession``) lives here: the
    resubscriptions due, the acks, the connected/synced flags, the pending events.
    """

    def __init__(self, symbol: str, settle_currency: str, *, private_tables: bool, rest: GteRest | None,
                 crossed_resync: float, on_event: Callable[[str], None] | None, clock: Callable[[], float],
                 max_trades: int, max_executions: int) -> None:
        self.symbol = symbol
        self.settle_currency = settle_currency
        self._rest = rest
        self.crossed_resync = crossed_resync
        self._on_event = on_event
        self._clock = clock

        self._lock = threading.Lock()
        self._tables = LiveTables(symbol, settle_currency, max_trades=max_trades,
                                  max_executions=max_executions, started_ms=int(clock() * 1000))
        self._book: OrderBook | None = None
        self._expected: tuple[str, ...] = PUBLIC_TABLES + (PRIVATE_TABLES if private_tables else ())
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

