"""Shared by the GteWebSocket tests: raw-message builders, a client synced by feeding it strings, and an
in-memory exchange (FakeExchange / FakeSocket) for the I/O loop."""
from __future__ import annotations

import json
import queue
from decimal import Decimal
from typing import Any

import websocket

from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket


BASE = 100_000_000


SECRET = "s3cr3t-very-private-value"


CREDS = Credentials("abcdef123", SECRET)


INSTRUMENT = {"symbol": "BTC_USD", "settle_currency": "BTC", "instrument_type": "pc",
              "tick_size": "0.5", "symbol_id": "1", "price_precision": "1", "face_value": "1"}


def level(ticks: int, side: str, size: int) -> dict:
    return {"id": str(BASE - ticks), "side": side, "size": str(size), "price": str(Decimal(ticks) / 2)}


BOOK = [level(20001, "sell", 5), level(20002, "sell", 6), level(19999, "buy", 3), level(19998, "buy", 4)]


def order_row(oid: str, **over: str) -> dict:
    row = {"order_id": oid, "client_oid": f"mm_{oid}", "status": "2", "side": "1", "close_flag": "0",
           "price": "9990", "qty": "10", "filled_qty": "0", "symbol": "BTC_USD", "settle_currency": "BTC"}
    row.update(over)
    return row


def msg(table: str, action: str, data: list, seq: int) -> str:
    return json.dumps({"table": table, "action": action, "data": data, "seq": seq, "time": "1"})


class Feeder:
    """Builds raw messages with a correct per-table seq."""

    def __init__(self, client: GteWebSocket) -> None:
        self.client = client
        self.seq: dict[str, int] = {}

    def __call__(self, table: str, action: str, data: list, seq: int | None = None) -> None:
        if action == "partial":
            self.seq[table] = 0
        self.seq[table] = self.seq.get(table, 0) + 1 if seq is None else seq
        self.client.handle_raw(msg(table, action, data, self.seq[table]))


def synced_client(private: bool = True, **kw: Any) -> tuple[GteWebSocket, Feeder]:
    client = GteWebSocket("ws://unused", "BTC_USD", "BTC", CREDS if private else None, **kw)
    feed = Feeder(client)
    feed("instrument", "partial", [INSTRUMENT])
    feed("order_book", "partial", BOOK)
    feed("trade", "partial", [])
    if private:
        feed("order", "partial", [order_row("1")])
        feed("execution", "partial", [])
        feed("position", "partial", [{"symbol": "BTC_USD", "side": "1", "qty": "3", "avail_qty": "3",
                                      "entry_price": "10000"}])
        feed("margin", "partial", [{"settle_currency": "BTC", "total": "1", "available": "0.9"}])
    return client, feed


def errors(client: GteWebSocket) -> int:
    return client.error_count


class FakeSocket:
    """In-memory stand-in for a websocket-client connection, driven by FakeExchange."""

    def __init__(self, ex: FakeExchange) -> None:
        self.ex = ex
        self.inbox: queue.Queue[str] = queue.Queue()
        self.sent: list[str] = []
        self.seq: dict[str, int] = {}
        self.subs: set[str] = set()
        self.closed = False
        self.timeout = 1.0

    def settimeout(self, t: float) -> None:
        self.timeout = t

    def recv(self) -> str:
        if self.closed:
            raise websocket.WebSocketConnectionClosedException("closed")
        try:
            item = self.inbox.get(timeout=self.timeout)
        except queue.Empty:
            raise websocket.WebSocketTimeoutException("timed out") from None
        if item is None:
            self.closed = True
            raise websocket.WebSocketConnectionClosedException("closed by server")
        return item

    def send(self, text: str) -> None:
        if self.closed:
            raise websocket.WebSocketConnectionClosedException("closed")
        self.sent.append(text)
        req = json.loads(text)
        op, args = req.get("op"), req.get("args", {})
        if op == "ping":
            if self.ex.answer_pings:
                self.inbox.put('{"op":"pong"}')
            return
        status = "0"
        if op == "auth_key_expires":
            status = self.ex.auth_status
        elif op == "sub" and args["table"] in self.ex.refuse:
            status = "-10013"
        self.inbox.put(json.dumps({"status": status, "request": text}))  # echoed as a string, like GTE
        if op == "sub" and status == "0" and args["table"] not in self.ex.silent_tables:
            table = args["table"]
            self.subs.add(table)
            self.seq[table] = 0
            self.push(table, "partial", self.ex.image(table))
        elif op == "unsub":
            self.subs.discard(args["table"])

    def push(self, table: str, action: str, rows: list, skip: bool = False) -> None:
        self.seq[table] = self.seq.get(table, 0) + 1
        if not skip:
            self.inbox.put(msg(table, action, rows, self.seq[table]))

    def close(self, timeout: float = 1) -> None:
        self.closed = True


class FakeExchange:
    def __init__(self) -> None:
        self.sockets: list[FakeSocket] = []
        self.auth_status = "0"
        self.refuse: set[str] = set()
        self.silent_tables: set[str] = set()
        self.answer_pings = True
        self.orders = [order_row("1")]

    def image(self, table: str) -> list:
        return {"instrument": [INSTRUMENT], "order_book": BOOK, "order": self.orders,
                "position": [], "margin": [{"settle_currency": "BTC", "total": "1", "available": "1"}]
                }.get(table, [])

    def factory(self, url: str, timeout: float = 0) -> FakeSocket:
        sock = FakeSocket(self)
        self.sockets.append(sock)
        return sock

    @property
    def last(self) -> FakeSocket:
        return self.sockets[-1]


def live_client(ex: FakeExchange, **kw: Any) -> GteWebSocket:
    kw.setdefault("partial_timeout", 2)
    kw.setdefault("reconnect_backoff", (0.01, 0.05))
    return GteWebSocket("ws://fake", "BTC_USD", "BTC", kw.pop("credentials", CREDS),
                        websocket_factory=ex.factory, **kw)


def crossing_bid(ticks: int = 20003) -> list:
    return [level(ticks, "buy", 1)]  # above the best ask (ticks 20001)
