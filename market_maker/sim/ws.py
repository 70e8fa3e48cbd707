"""WebSocket sessions (§3): request handling, subscriptions, sequenced pushes with faults."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable

from .auth import KeyStore
from .errors import BAD_VALUE, DENIED, INTERNAL, MISSING, RATE_LIMITED, WRONG_TYPE, ApiError, now_ms
from .fanout import Batch, Encoded, batches, encode, net_book, text_frame
from .faults import DROP, DUP, FaultInjector
from .limits import OncePerClient

log = logging.getLogger(__name__)

TABLE_KEYS: dict[str, list[str]] = {
    "instrument": ["symbol"], "trade": [], "order_book": ["id"],
    "order": ["order_id"], "execution": ["exec_id"], "position": ["symbol", "side"],
    "margin": ["settle_currency"],
}
PRIVATE = frozenset({"order", "execution", "position", "margin"})
DEFAULT_SEND_BUFFER = 1 << 20  # unsent bytes after which a consumer counts as stalled


@dataclass
class Sub:
    settle_currency: str
    symbol: str | None


class WsSession:
    """One connection: its account (after auth), subscriptions, per-table seq and the frames
    not yet handed to the socket.

    Frames are written straight to the transport, all of one loop turn in one write (the
    response is created without compression, so a text frame is header + payload).  A peer
    whose unsent bytes exceed ``max_buffer`` has stopped reading: it is disconnected."""

    def __init__(self, ws: Any, peer: str | None, transport: Any,
                 max_buffer: int = DEFAULT_SEND_BUFFER) -> None:
        self.ws = ws
        self.peer = peer
        self.transport = transport
        self.max_buffer = max_buffer
        self.account_id: int | None = None
        self.api_key: str | None = None
        self.subs: dict[str, Sub] = {}
        self.seq: dict[str, int] = {}
        self.closed = False
        self.refused_subs = False  # a subscription of this socket was refused (over the rate)
        self.sub_times: deque[float] = deque()  # monotonic times of recent sub requests
        self._frames: list[bytes] = []
        self._pending = 0
        self._flush_handle: asyncio.Handle | None = None
        self._loop = asyncio.get_event_loop()
        self._close_asked = self._loop.create_future()
        self.writer = asyncio.ensure_future(self._close_when_asked())

    def __repr__(self) -> str:
        return f"WsSession(peer={self.peer}, key={self.api_key}, subs={sorted(self.subs)})"

    def send(self, obj: dict) -> None:
        """Queue one JSON message (never blocks)."""
        self.send_bytes(json.dumps(obj, separators=(",", ":")).encode())

    def send_bytes(self, payload: bytes) -> None:
        """Queue one text message; written at the end of this loop turn."""
        if self.closed:
            return
        frame = text_frame(payload)
        self._frames.append(frame)
        self._pending += len(frame)
        if self._pending + self.transport.get_write_buffer_size() > self.max_buffer:
            log.warning("dropping slow WebSocket consumer %s (%d bytes unsent)", self.peer,
                        self._pending + self.transport.get_write_buffer_size())
            self.abort()
            return
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def push(self, faults: FaultInjector, table: str, msg: Encoded) -> None:
        """A table message with the next seq; a dropped one still consumes its seq."""
        seq = self.seq[table] = self.seq.get(table, 0) + 1
        fate = faults.push_fate()
        if fate == DROP:
            return
        body = msg.body(seq)
        self.send_bytes(body)
        if fate == DUP:
            self.send_bytes(body)

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._frames:
            return
        data = b"".join(self._frames) if len(self._frames) > 1 else self._frames[0]
        self._frames.clear()
        self._pending = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def close_soon(self) -> None:
        """Stop sending and ask the socket to close (the reader loop then ends)."""
        if not self.closed:
            self.closed = True
            if not self._close_asked.done():
                self._close_asked.set_result(None)

    def abort(self) -> None:
        """Drop the connection at once (a consumer that stopped reading)."""
        self.closed = True
        self._frames.clear()
        self._pending = 0
        if self.transport is not None:
            self.transport.abort()
        self.writer.cancel()

    async def _close_when_asked(self) -> None:
        try:
            await self._close_asked
            self._flush()  # what was queued before the close goes out first
            if not self.ws.closed and not self.transport.is_closing():
                try:
                    await self.ws.close()
                except Exception:  # the peer may already be gone
                    pass
        except asyncio.CancelledError:
            pass
        finally:
            self.closed = True


class WsHub:
    """All sessions; turns requests into acks/partials and exchange events into pushes.

    Subscribers are indexed by table and owner (the symbol of a public table, the account
    of a private one): a push visits only the sessions subscribed to it, so an idle or
    unrelated connection costs nothing per message."""

    def __init__(self, exchange: Any, keys: KeyStore, faults: FaultInjector,
                 before_partial: Callable[[], None], max_subs_per_s: int = 20,
                 refusals: OncePerClient | None = None) -> None:
        self.exchange = exchange
        self.keys = keys
        self.faults = faults
        self.sessions: set[WsSession] = set()
        self.max_subs_per_s = max_subs_per_s
        self.refusals = refusals or OncePerClient()
        self._before_partial = before_partial
        # table -> owner (symbol or account id) -> subscribed sessions (insertion-ordered)
        self._index: dict[str, dict[Any, dict[WsSession, None]]] = {t: {} for t in TABLE_KEYS}

    # --- sessions and the subscriber index ------------------------------------------------

    def add(self, session: WsSession) -> None:
        """A new connection (no subscription yet)."""
        self.sessions.add(session)

    def remove(self, session: WsSession) -> None:
        """A connection has ended: forget it and its subscriptions."""
        self.sessions.discard(session)
        for table in list(session.subs):
            self._unindex(session, table)
        if session.refused_subs:  # its client's next offence is logged again
            self.refusals.forget("ws_subscriptions", session.peer)

    def subscribers(self, table: str, owner: Any) -> int:
        """How many sessions receive ``table`` pushes of ``owner`` (symbol or account id)."""
        return len(self._index[table].get(owner, ()))

    @staticmethod
    def _owner(session: WsSession, table: str, sub: Sub) -> Any:
        return session.account_id if table in PRIVATE else sub.symbol

    def _indexed(self, session: WsSession, table: str) -> None:
        owner = self._owner(session, table, session.subs[table])
        self._index[table].setdefault(owner, {})[session] = None

    def _unindex(self, session: WsSession, table: str) -> None:
        sub = session.subs.get(table)
        if sub is None:
            return
        owner = self._owner(session, table, sub)
        group = self._index[table].get(owner)
        if group is not None:
            group.pop(session, None)
            if not group:
                del self._index[table][owner]

    # --- requests --------------------------------------------------------------------------

    def handle_text(self, session: WsSession, text: str) -> None:
        """Answer one client text frame (never raises)."""
        try:
            request = json.loads(text)
        except (ValueError, RecursionError):
            self._ack(session, text, ApiError(WRONG_TYPE, "request", "malformed JSON"))
            return
        if isinstance(request, dict) and request.get("op") == "ping":
            session.send({"op": "pong"})
            return
        try:
            follow_up = self._dispatch(session, request)
        except ApiError as err:
            self._ack(session, text, err)
            return
        except Exception:
            log.exception("WebSocket request failed (key=%s)", session.api_key)
            self._ack(session, text, ApiError(INTERNAL, None, "internal error"))
            return
        self._ack(session, text, None)
        if follow_up is not None:
            try:
                follow_up()
            except Exception:
                log.exception("WebSocket partial failed (key=%s)", session.api_key)
                session.close_soon()  # the client's copy would be incomplete: make it resubscribe

    @staticmethod
    def _ack(session: WsSession, request: str, err: ApiError | None) -> None:
        """The acknowledgement echoes the request as received, as a string (§3)."""
        ack: dict[str, Any] = {"status": "0" if err is None else str(err.code), "request": request}
        if err is not None:
            ack["error"] = {"patternName": err.pattern, "data": {"paramName": err.param} if err.param else {}}
            ack["msg"] = err.msg
        session.send(ack)

    def _dispatch(self, session: WsSession, request: Any) -> Callable[[], None] | None:
        if not isinstance(request, dict):
            raise ApiError(WRONG_TYPE, "request", "request must be a JSON object")
        op = request.get("op")
        if op is None:
            raise ApiError(MISSING, "op")
        args = request.get("args")
        if op == "auth_key_expires":
            key = self.keys.verify_ws(args, now_ms())
            private = [t for t in session.subs if t in PRIVATE]
            for table in private:
                self._unindex(session, table)
            session.account_id, session.api_key = key.account_id, key.key
            for table in private:  # subscriptions follow the account the socket is now
                self._indexed(session, table)
            return None
        if op in ("sub", "unsub"):
            table, sub = self._parse_sub(session, args)
            if op == "unsub":
                self._unindex(session, table)
                session.subs.pop(table, None)
                return None
            self._check_sub_rate(session)
            return lambda: self._subscribe(session, table, sub)
        raise ApiError(BAD_VALUE, "op", f"unknown op {op!r}")

    def _check_sub_rate(self, session: WsSession) -> None:
        """At most ``max_subs_per_s`` subscribe requests per connection per second (each one
        builds a full image); a refused one does not count."""
        now = time.monotonic()
        times = session.sub_times
        while times and now - times[0] >= 1.0:
            times.popleft()
        if len(times) >= self.max_subs_per_s:
            session.refused_subs = True
            self.refusals.refuse("ws_subscriptions", session.peer,
                                 "refusing subscriptions of WebSocket %s (key=%s): over %d per second",
                                 session.peer, session.api_key, self.max_subs_per_s)
            raise ApiError(RATE_LIMITED, "op", f"more than {self.max_subs_per_s} subscriptions per second "
                                               "on one connection", "TOO_MANY_SUBSCRIPTIONS")
        times.append(now)

    def _parse_sub(self, session: WsSession, args: Any) -> tuple[str, Sub]:
        if not isinstance(args, dict):
            raise ApiError(MISSING, "args")
        for name in ("instrument_type", "table", "settle_currency"):
            if args.get(name) in (None, ""):
                raise ApiError(MISSING, name)
            if not isinstance(args[name], str):
                raise ApiError(WRONG_TYPE, name)
        if args["instrument_type"] != "pc":
            raise ApiError(BAD_VALUE, "instrument_type")
        table, settle = args["table"], args["settle_currency"]
        if table not in TABLE_KEYS:
            raise ApiError(BAD_VALUE, "table", f"unknown table {table!r}")
        instruments = self.exchange.instruments
        if settle not in {s.asset for s in instruments.values()}:
            raise ApiError(BAD_VALUE, "settle_currency")
        if table in PRIVATE:
            if session.account_id is None:
                raise ApiError(DENIED, "table", "authenticate before subscribing to a private table")
            return table, Sub(settle, None)
        symbol = args.get("symbol")
        if symbol in (None, ""):
            raise ApiError(MISSING, "symbol")
        if not isinstance(symbol, str) or symbol not in instruments or instruments[symbol].asset != settle:
            raise ApiError(BAD_VALUE, "symbol")
        return table, Sub(settle, symbol)

    def _subscribe(self, session: WsSession, table: str, sub: Sub) -> None:
        self._before_partial()  # pending events go out first, so the partial is the newest image
        if session.closed:
            return
        self._unindex(session, table)
        session.subs[table] = sub
        self._indexed(session, table)
        session.seq[table] = 0
        rows = self._image(table, session.account_id, sub)
        session.push(self.faults, table, encode(table, "partial", TABLE_KEYS[table], rows, now_ms()))

    def _image(self, table: str, account_id: int | None, sub: Sub) -> list[dict]:
        ex, ts = self.exchange, now_ms()
        if table == "order_book":
            return ex.book_levels(sub.symbol)
        if table == "instrument":
            return [ex.instrument_row(sub.symbol, ts)]
        if table == "trade":
            return ex.trades(sub.symbol, None, None, 50)
        if table == "execution":
            return []
        if table == "order":
            rows = ex.open_orders_of(account_id)
        elif table == "position":
            rows = ex.position_rows(account_id)
        else:
            rows = ex.margin_rows(account_id)
        return _of_settle(rows, sub.settle_currency)

    # --- pushes ----------------------------------------------------------------------------

    def dispatch(self, events: Iterable[Any]) -> None:
        """Push exchange events to their subscribers (see ``fanout.batches`` for the grouping)."""
        events = list(events)
        if not events:
            return
        ts = now_ms()
        index = self._index
        for batch in batches(events):
            table = batch.table
            if table not in TABLE_KEYS:
                continue
            if table in PRIVATE:
                group = index[table].get(batch.account_id)
                if group:
                    self._push_private(group, batch, ts)
                continue
            group = index[table].get(batch.symbol)
            if not group:
                continue  # nobody listens: the rows are not even built
            if table == "order_book":
                messages = [encode(table, action, TABLE_KEYS[table], rows, ts)
                            for action, rows in net_book(batch.events)]
            else:
                messages = [encode(table, batch.action, TABLE_KEYS[table], [e.row for e in batch.events], ts)]
            for session in list(group):
                if not session.closed:
                    for msg in messages:
                        session.push(self.faults, table, msg)

    def _push_private(self, group: dict[WsSession, None], batch: Batch, ts: int) -> None:
        rows = [e.row for e in batch.events]
        by_settle: dict[str, Encoded | None] = {}
        for session in list(group):
            sub = session.subs.get(batch.table)
            if sub is None or session.closed:
                continue
            settle = sub.settle_currency
            if settle not in by_settle:
                mine = _of_settle(rows, settle)
                by_settle[settle] = encode(batch.table, batch.action, TABLE_KEYS[batch.table], mine, ts) \
                    if mine else None
            msg = by_settle[settle]
            if msg is not None:
                session.push(self.faults, batch.table, msg)

    def periodic(self, tables: set[str]) -> None:
        """Re-push the current image of ``tables`` (instrument/position/margin) as updates, in that order
        (the instrument first: a margin row pushed with it is at the mark it shows)."""
        ts = now_ms()
        for table in sorted(tables, key=("instrument", "position", "margin").index):
            for owner, group in list(self._index[table].items()):
                if owner is None:
                    continue
                cache: dict[str, Encoded | None] = {}
                for session in list(group):
                    sub = session.subs.get(table)
                    if sub is None or session.closed:
                        continue
                    settle = sub.settle_currency
                    if settle not in cache:
                        rows = self._image(table, owner if table in PRIVATE else None, sub)
                        cache[settle] = encode(table, "update", TABLE_KEYS[table], rows, ts) if rows else None
                    msg = cache[settle]
                    if msg is not None:
                        session.push(self.faults, table, msg)

    def close_all(self) -> int:
        """Ask every connection to close; returns how many."""
        sessions = [s for s in self.sessions if not s.closed]
        for session in sessions:
            session.close_soon()
        return len(sessions)


def _settle(row: dict) -> str | None:
    return row.get("settle_currency") or row.get("asset")


def _of_settle(rows: list[dict], settle: str) -> list[dict]:
    return [r for r in rows if _settle(r) in (None, settle)]
