"""WebSocket sessions (§3): request handling, subscriptions, sequenced pushes with faults."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Iterable

from .auth import KeyStore
from .errors import BAD_VALUE, DENIED, INTERNAL, MISSING, WRONG_TYPE, ApiError, now_ms
from .faults import DROP, DUP, FaultInjector

log = logging.getLogger(__name__)

TABLE_KEYS: dict[str, list[str]] = {
    "instrument": ["symbol"], "trade": [], "order_book": ["id"],
    "order": ["order_id"], "execution": ["exec_id"], "position": ["symbol", "side"],
    "margin": ["settle_currency"],
}
PRIVATE = frozenset({"order", "execution", "position", "margin"})
MAX_QUEUE = 20_000


@dataclass
class Sub:
    settle_currency: str
    symbol: str | None


class WsSession:
    """One connection: its account (after auth), subscriptions, per-table seq and a send queue."""

    def __init__(self, ws: Any, peer: str | None, transport: Any = None) -> None:
        self.ws = ws
        self.peer = peer
        self.transport = transport
        self.account_id: int | None = None
        self.api_key: str | None = None
        self.subs: dict[str, Sub] = {}
        self.seq: dict[str, int] = {}
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.writer = asyncio.ensure_future(self._write())

    def __repr__(self) -> str:
        return f"WsSession(peer={self.peer}, key={self.api_key}, subs={sorted(self.subs)})"

    def send(self, obj: dict) -> None:
        """Queue one message (never blocks; a consumer too slow to keep up is disconnected)."""
        if self.closed:
            return
        if self.queue.qsize() >= MAX_QUEUE:
            log.warning("dropping slow WebSocket consumer %s", self.peer)
            self.abort()
            return
        self.queue.put_nowait(json.dumps(obj, separators=(",", ":")))

    def push(self, faults: FaultInjector, table: str, action: str, rows: list[dict], ts: int) -> None:
        """A table message with the next seq; a dropped one still consumes its seq."""
        self.seq[table] = self.seq.get(table, 0) + 1
        msg = {"table": table, "action": action, "keys": TABLE_KEYS[table], "data": rows,
               "time": str(ts), "seq": self.seq[table]}
        fate = faults.push_fate()
        if fate == DROP:
            return
        self.send(msg)
        if fate == DUP:
            self.send(msg)

    def close_soon(self) -> None:
        """Stop sending and ask the socket to close (the reader loop then ends)."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)

    def abort(self) -> None:
        """Drop the connection at once (a consumer that stopped reading)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self.writer.cancel()

    async def _write(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                if text is None:
                    break
                await self.ws.send_str(text)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            if not self.ws.closed and not (self.transport is not None and self.transport.is_closing()):
                try:
                    await self.ws.close()
                except Exception:  # the peer may already be gone
                    pass


class WsHub:
    """All sessions; turns requests into acks/partials and exchange events into pushes."""

    def __init__(self, exchange: Any, keys: KeyStore, faults: FaultInjector,
                 before_partial: Callable[[], None]) -> None:
        self.exchange = exchange
        self.keys = keys
        self.faults = faults
        self.sessions: set[WsSession] = set()
        self._before_partial = before_partial

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
            session.account_id, session.api_key = key.account_id, key.key
            return None
        if op in ("sub", "unsub"):
            table, sub = self._parse_sub(session, args)
            if op == "unsub":
                session.subs.pop(table, None)
                return None
            return lambda: self._subscribe(session, table, sub)
        raise ApiError(BAD_VALUE, "op", f"unknown op {op!r}")

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
        session.subs[table] = sub
        session.seq[table] = 0
        session.push(self.faults, table, "partial", self._image(session, table, sub), now_ms())

    def _image(self, session: WsSession, table: str, sub: Sub) -> list[dict]:
        ex, acc, ts = self.exchange, session.account_id, now_ms()
        if table == "order_book":
            return ex.book_levels(sub.symbol)
        if table == "instrument":
            return [ex.instrument_row(sub.symbol, ts)]
        if table == "trade":
            return ex.trades(sub.symbol, None, None, 50)
        if table == "execution":
            return []
        if table == "order":
            rows = ex.open_orders_of(acc)
        elif table == "position":
            rows = ex.position_rows(acc)
        else:
            rows = ex.margin_rows(acc)
        return [r for r in rows if _settle(r) in (None, sub.settle_currency)]

    # --- pushes ----------------------------------------------------------------------------

    def dispatch(self, events: Iterable[Any]) -> None:
        """Push exchange events; consecutive events of one stream go out as one message."""
        run: list[Any] = []
        for event in events:
            if run and _stream(run[-1]) != _stream(event):
                self._push_run(run)
                run = []
            run.append(event)
        if run:
            self._push_run(run)

    def _push_run(self, run: list[Any]) -> None:
        first = run[0]
        table = first.kind
        if table not in TABLE_KEYS:
            return
        rows = [e.row for e in run]
        ts = now_ms()
        for session in list(self.sessions):
            sub = session.subs.get(table)
            if sub is None or session.closed:
                continue
            if table in PRIVATE:
                if session.account_id != first.account_id:
                    continue
                mine = [r for r in rows if _settle(r) in (None, sub.settle_currency)]
                if mine:
                    session.push(self.faults, table, first.action, mine, ts)
            elif sub.symbol == first.symbol:
                session.push(self.faults, table, first.action, rows, ts)

    def periodic(self, tables: set[str]) -> None:
        """Re-push the current image of ``tables`` (instrument/position/margin) as updates."""
        ts = now_ms()
        cache: dict[tuple[str, Any], list[dict]] = {}
        for session in list(self.sessions):
            for table in tables & session.subs.keys():
                if table in PRIVATE and session.account_id is None:
                    continue
                sub = session.subs[table]
                owner = session.account_id if table in PRIVATE else sub.symbol
                if (table, owner) not in cache:
                    cache[(table, owner)] = self._image(session, table, sub)
                rows = [r for r in cache[(table, owner)] if _settle(r) in (None, sub.settle_currency)]
                if rows:
                    session.push(self.faults, table, "update", rows, ts)

    def close_all(self) -> int:
        """Ask every connection to close; returns how many."""
        sessions = [s for s in self.sessions if not s.closed]
        for session in sessions:
            session.close_soon()
        return len(sessions)


def _settle(row: dict) -> str | None:
    return row.get("settle_currency") or row.get("asset")


def _stream(event: Any) -> tuple:
    return event.kind, event.action, event.symbol, event.account_id
