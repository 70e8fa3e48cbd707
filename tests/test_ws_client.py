"""GteWebSocket: the raw-message handler (fed strings) and the I/O loop on a fake socket."""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import websocket

from market_maker.gte.errors import AuthenticationError, GteError
from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket
from market_maker.models import Order
from tests.waiting import wait_until

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


# ------------------------------------------------------------------ handler
def test_partials_then_updates_give_expected_snapshot() -> None:
    client, feed = synced_client()
    assert client.synced
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "30"}])
    feed("order_book", "insert", [level(20000, "buy", 1)])
    feed("order_book", "delete", [{"id": str(BASE - 20001)}])
    feed("trade", "insert", [{"symbol": "BTC_USD", "side": "buy", "price": "10000.5", "qty": "2",
                              "trade_time": "5"}])
    feed("order", "insert", [order_row("2", price="9995")])
    feed("order", "update", [{"order_id": "1", "status": "8"}])
    feed("execution", "insert", [{"exec_id": "e1", "order_id": "2", "side": "1", "last_qty": "4",
                                  "cum_qty": "4", "last_price": "9995", "symbol": "BTC_USD"}])
    feed("position", "update", [{"symbol": "BTC_USD", "side": "1", "qty": "7"}])
    feed("margin", "update", [{"settle_currency": "BTC", "available": "0.8"}])
    snap = client.snapshot(depth=2)
    assert snap.book.bids == ((Decimal(10000), 1), (Decimal("9999.5"), 30))
    assert snap.book.asks == ((Decimal(10001), 6),)
    assert [o.order_id for o in snap.orders] == ["2"]
    assert snap.positions.long.qty == 7 and snap.positions.net == 7
    assert snap.margin is not None and snap.margin.available == Decimal("0.8")
    assert snap.instrument is not None and snap.instrument.tick_size == Decimal("0.5")
    assert snap.contracts_traded == 4 and snap.recent_trades[0].qty == 2
    assert snap.synced and not snap.connected
    assert errors(client) == 0


def test_seq_gap_requests_resync_until_new_partial() -> None:
    client, feed = synced_client()
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "9"}], seq=5)
    assert client.stats["seq_gap"] == 1 and client.stats["resyncs"] == 1
    assert not client.synced and "order_book" in client._resync_due
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "11"}], seq=6)  # stale: ignored
    assert client.stats["ignored_before_partial"] == 1
    assert client.snapshot().book.bids[0] == (Decimal("9999.5"), 3)
    feed("order_book", "partial", [level(19000, "buy", 1)])
    assert client.synced and client.snapshot().book.bids == ((Decimal(9500), 1),)


def test_duplicate_seq_is_counted_and_ignored() -> None:
    client, feed = synced_client(private=False)
    feed("order_book", "insert", [level(20000, "buy", 1)])
    feed("order_book", "insert", [level(20000, "buy", 1)], seq=feed.seq["order_book"])
    assert client.stats == {"seq_duplicate": 1} and client.synced


def test_seq_backwards_resyncs() -> None:
    client, feed = synced_client(private=False)
    feed("trade", "insert", [], seq=2)
    feed("trade", "insert", [], seq=1)
    assert client.stats["seq_backwards"] == 1 and not client.synced


@pytest.mark.parametrize("raw,kind", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ('"text"', "invalid_json"),
    (msg("bogus_table", "insert", [], 2), "unknown_table"),
    (msg("order", "update", [{"order_id": "404", "status": "8"}], 2), "unknown_key"),
    (msg("order_book", "update", [{"id": "1", "size": "3"}], 2), "book_inconsistent"),
    (msg("order_book", "delete", [{"id": "1"}], 2), "book_inconsistent"),
    (msg("order_book", "update", [{"id": str(BASE - 19999), "size": "1.5"}], 2), "malformed"),
    (msg("margin", "update", [{"settle_currency": "BTC", "total": "abc"}], 2), "malformed"),
    (msg("position", "update", [{"side": "1", "qty": "2"}], 2), "malformed"),
    (msg("order", "update", "not-a-list", 2), "malformed"),
    (json.dumps({"table": "order_book", "action": "partial", "data": []}), "malformed"),
    (json.dumps({"table": "order_book", "action": "update", "data": [], "seq": "2"}), "malformed"),
])
def test_bad_input_is_counted_and_resynced_without_raising(raw: str, kind: str, caplog: Any) -> None:
    client, _ = synced_client()
    events: list[str] = []
    client._on_event = events.append
    with caplog.at_level(logging.WARNING):
        client.handle_raw(raw)
    assert client.stats[kind] == 1 and client.stats["resyncs"] == 1
    assert not client.synced and "resync" in events
    assert kind in caplog.text


def test_control_messages_are_not_errors() -> None:
    client, _ = synced_client()
    client.handle_raw('{"op":"pong"}')
    client.handle_raw('{"status":"0","request":{"op":"sub","args":{"table":"trade"}}}')
    client.handle_raw('{"status":"-10013","request":"{\\"op\\":\\"sub\\",\\"args\\":{\\"table\\":\\"x\\"}}"}')
    assert client._acks[("sub", "x")] == -10013 and client.stats["ack_error"] == 1
    assert client.synced


def test_events_and_wait_for_event() -> None:
    kinds: list[str] = []
    client, feed = synced_client(on_event=kinds.append)
    assert "synced" in kinds and {"book", "order", "position", "margin", "instrument"} <= set(kinds)
    assert "synced" in client.wait_for_event(0)
    assert client.wait_for_event(0) == set()
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "8"}])
    feed("execution", "insert", [{"exec_id": "e9", "order_id": "1", "side": "1", "last_qty": "1",
                                  "last_price": "9990", "symbol": "BTC_USD"}])
    assert client.wait_for_event(1) == {"book", "fill"}
    assert kinds[-2:] == ["book", "fill"]
    threading.Timer(0.05, lambda: feed("margin", "update", [{"settle_currency": "BTC", "total": "2"}])).start()
    t0 = time.monotonic()
    assert client.wait_for_event(5) == {"margin"} and time.monotonic() - t0 < 2


def test_failing_callback_does_not_break_the_handler() -> None:
    def boom(kind: str) -> None:
        raise RuntimeError("callback bug")

    client, feed = synced_client(private=False, on_event=boom)
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "8"}])
    assert client.snapshot().book.bids[0][1] == 8 and errors(client) == 0


def test_snapshot_never_sees_half_applied_messages() -> None:
    """Each message sets best bid and best ask sizes to the same k; readers must agree."""
    client, feed = synced_client(private=False)
    stop = threading.Event()
    bad: list[Any] = []

    def reader() -> None:
        while not stop.is_set():
            book = client.snapshot(1).book
            if book.bids[0][1] != book.asks[0][1]:
                bad.append(book)

    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "5"}])
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(1, 3000):
        feed("order_book", "update", [{"id": str(BASE - 19999), "size": str(k)},
                                      {"id": str(BASE - 20001), "size": str(k)}])
    stop.set()
    for t in threads:
        t.join()
    assert not bad


def test_prime_for_replay_accepts_stream_without_partials() -> None:
    client = GteWebSocket("", "BTC_USD", "BTC", None)
    client.prime_for_replay(Decimal("0.5"), 1)
    client.handle_raw(msg("order", "insert", [order_row("7")], 41))
    client.handle_raw(msg("order", "update", [{"order_id": "7", "status": "8"}], 42))
    client.handle_raw(msg("order_book", "partial", BOOK, 1))
    client.handle_raw(msg("order_book", "update", [{"id": str(BASE - 19999), "size": "1"}], 2))
    assert errors(client) == 0 and client.synced and client.book_depth() == (2, 2)
    client.handle_raw(msg("order", "update", [{"order_id": "7", "status": "8"}], 44))
    assert client.stats["seq_gap"] == 1  # after the first message the checks are the live ones


def test_live_client_does_not_accept_updates_without_partial() -> None:
    client = GteWebSocket("", "BTC_USD", "BTC", None)
    client.handle_raw(msg("trade", "insert", [], 7))
    assert client.stats == {"ignored_before_partial": 1} and not client.synced


def test_repr_hides_secret() -> None:
    client = GteWebSocket("ws://x", "BTC_USD", "BTC", CREDS)
    assert SECRET not in repr(client) and SECRET not in str(client)


# ------------------------------------------------------------ fake exchange
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


@pytest.fixture
def ex() -> FakeExchange:
    return FakeExchange()


def live_client(ex: FakeExchange, **kw: Any) -> GteWebSocket:
    kw.setdefault("partial_timeout", 2)
    kw.setdefault("reconnect_backoff", (0.01, 0.05))
    return GteWebSocket("ws://fake", "BTC_USD", "BTC", kw.pop("credentials", CREDS),
                        websocket_factory=ex.factory, **kw)


def test_start_authenticates_subscribes_and_syncs(ex: FakeExchange, caplog: Any) -> None:
    client = live_client(ex)
    with caplog.at_level(logging.DEBUG):
        client.start()
        try:
            assert client.connected and client.synced
            sent = [json.loads(s) for s in ex.last.sent]
            assert sent[0]["op"] == "auth_key_expires" and sent[0]["args"]["api_key"] == "abcdef123"
            subs = [(s["args"]["table"], s["args"].get("symbol")) for s in sent[1:]]
            assert subs[0] == ("instrument", "BTC_USD")
            assert set(subs) == {("instrument", "BTC_USD"), ("trade", "BTC_USD"), ("order_book", "BTC_USD"),
                                 ("order", None), ("execution", None), ("position", None), ("margin", None)}
            assert client.snapshot().book.best_bid == Decimal("9999.5")
        finally:
            client.stop()
    signature = json.loads(ex.last.sent[0])["args"]["signature"]
    assert SECRET not in caplog.text and signature not in caplog.text
    assert "authenticating as key ab…" in caplog.text
    assert not any(t.name.startswith("gte-ws") for t in threading.enumerate())


def test_public_only_client_sends_no_auth(ex: FakeExchange) -> None:
    client = live_client(ex, credentials=None)
    client.start()
    client.stop()
    assert [json.loads(s)["args"]["table"] for s in ex.last.sent] == ["instrument", "trade", "order_book"]


def test_auth_refused_raises_authentication_error(ex: FakeExchange) -> None:
    ex.auth_status = "-10051"
    client = live_client(ex)
    with pytest.raises(AuthenticationError):
        client.start()
    assert len(ex.sockets) == 1 and ex.last.closed and not client.connected


def test_string_acks_are_understood_and_never_logged(ex: FakeExchange, caplog: Any) -> None:
    """GTE echoes the request as a string; the auth one carries the signature."""
    ex.auth_status = "-10052"
    client = live_client(ex)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        client.start()
    sent = ex.last.sent[0]
    signature = json.loads(sent)["args"]["signature"]
    assert client._acks[("auth_key_expires", None)] == -10052
    assert signature not in caplog.text and signature not in str(info.value) and SECRET not in caplog.text
    refused, _ = synced_client()
    with caplog.at_level(logging.DEBUG):
        refused.handle_raw(json.dumps({"status": "-10013", "request": json.dumps(
            {"op": "sub", "args": {"table": "order", "signature": "f" * 64}})}))
    assert refused._acks[("sub", "order")] == -10013
    assert "f" * 64 not in caplog.text and "GTE refused sub order with code -10013" in caplog.text


def test_refused_subscription_raises(ex: FakeExchange) -> None:
    ex.refuse = {"margin"}
    with pytest.raises(GteError):
        live_client(ex).start()


def test_missing_partial_times_out_naming_tables(ex: FakeExchange) -> None:
    ex.silent_tables = {"position", "trade"}
    client = live_client(ex, partial_timeout=0.3)
    with pytest.raises(GteError, match="position") as info:
        client.start()
    assert "trade" in str(info.value) and "order_book" not in str(info.value)


def test_gap_resubscribes_table_and_resyncs(ex: FakeExchange) -> None:
    events: list[str] = []
    client = live_client(ex, on_event=events.append)
    client.start()
    try:
        sock = ex.last
        sock.push("order_book", "update", [{"id": str(BASE - 19999), "size": "9"}], skip=True)  # dropped
        sock.push("order_book", "update", [{"id": str(BASE - 19998), "size": "9"}])
        assert wait_until(lambda: "resync" in events and client.synced)
        sent = [json.loads(s) for s in sock.sent]
        assert [(s["op"], s["args"]["table"]) for s in sent[-2:]] == [("unsub", "order_book"), ("sub", "order_book")]
        assert client.stats["seq_gap"] == 1 and client.stats["resyncs"] == 1
        assert events.index("resync") < len(events) - 1 - events[::-1].index("synced")
        assert len(ex.sockets) == 1
    finally:
        client.stop()


def test_invalid_json_reconnects_and_reconciles_over_rest(ex: FakeExchange) -> None:
    class Rest:
        calls = 0

        def open_orders(self) -> list[Order]:
            Rest.calls += 1
            return [Order("1", "mm_1", "buy", 0, Decimal(9990), 10, 6, 16)]

    client = live_client(ex, rest=Rest())
    client.start()
    try:
        assert Rest.calls == 0  # the first sync needs no reconciliation
        ex.orders = [order_row("1", filled_qty="2", status="16")]
        ex.last.inbox.put("{garbage")
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced)
        snap = client.snapshot()
        assert Rest.calls == 1 and snap.contracts_traded == 6
        assert [(o.order_id, o.filled_qty) for o in snap.orders] == [("1", 6)]
        assert client.stats["invalid_json"] == 1 and client.stats["reconnects"] == 1
    finally:
        client.stop()


def test_an_order_open_long_before_the_feed_went_blind_is_read_back_when_it_filled_meanwhile(ex: FakeExchange) -> None:
    # CI finding: the read-back of final orders paged back only to a few seconds before the tables went out of
    # sync; an order placed earlier and filled while blind was on an older page, so its fill never reached the
    # journal. Any order open when they went blind may have finished: page back to the oldest of them.
    shift = [0.0]
    client = live_client(ex, clock=lambda: time.time() + shift[0])
    started = client._tables.started_ms
    ex.orders = [order_row("1", ctime=str(started + 1000))]
    pages: list[Any] = []

    class Rest:
        def open_orders(self) -> list[Order]:
            return []

        def query_orders(self, statuses: Any = None, count: int = 100, lt_order_id: Any = None) -> list[Order]:
            pages.append(lt_order_id)
            if lt_order_id is None:  # the newest 100 final orders, all placed well after order 1
                return [Order(str(i), f"mm_{i}", "buy", 0, Decimal(9990), 10, 0, 8, ctime=started + 30_000 + i)
                        for i in range(1000, 900, -1)]
            return [Order("1", "mm_1", "buy", 0, Decimal(9990), 10, 10, 32, avg_price=Decimal(9990),
                          ctime=started + 1000)] if int(lt_order_id) > 1 else []

    client._rest = Rest()
    client.start()
    try:
        assert client.snapshot().contracts_traded == 0
        shift[0] = 60.0  # a minute later the feed goes blind: order 1 fills, the push is lost
        ex.orders = []
        sock = ex.last
        sock.push("order", "update", [{"order_id": "1", "filled_qty": "10", "status": "32"}], skip=True)
        sock.push("order", "update", [])  # the gap is seen here: resubscribe + read back
        assert wait_until(lambda: client.synced and pages)
        assert wait_until(lambda: client.snapshot().contracts_traded == 10), pages
        assert pages == [None, "901"]
    finally:
        client.stop()


def test_server_disconnect_reconnects(ex: FakeExchange) -> None:
    events: list[str] = []
    client = live_client(ex, on_event=events.append)
    client.start()
    try:
        ex.last.inbox.put(None)  # connection dropped
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced)
        assert "disconnected" in events and client.stats["disconnects"] == 1
        assert client.connected
    finally:
        client.stop()


def test_reconnect_with_refused_auth_gives_up(ex: FakeExchange) -> None:
    client = live_client(ex)
    client.start()
    ex.auth_status = "-10054"
    ex.last.inbox.put(None)
    assert wait_until(lambda: client.fatal_error is not None)
    assert isinstance(client.fatal_error, AuthenticationError)
    time.sleep(0.1)
    assert len(ex.sockets) == 2
    client.stop()


def test_pings_and_silence_timeout(ex: FakeExchange) -> None:
    now = [1000.0]
    client = live_client(ex, ping_interval=20, silence_timeout=30, clock=lambda: now[0])
    client.start()
    try:
        now[0] += 21
        assert wait_until(lambda: '{"op":"ping"}' in ex.last.sent)
        assert wait_until(lambda: client.stats.get("pongs") == 1)
        ex.answer_pings = False
        now[0] += 31  # nothing received for more than silence_timeout
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced)
        assert client.stats["silence"] == 1
    finally:
        client.stop()


def test_auth_expires_is_now_plus_5s(ex: FakeExchange) -> None:
    client = live_client(ex, clock=lambda: 1_700_000_000.0)
    client.start()
    client.stop()
    assert json.loads(ex.sockets[0].sent[0])["args"]["expires"] == str(1_700_000_000_000 + 5000)


def drop_next_partial(sock: Any, table: str) -> list:
    """Make the fake socket swallow the next partial of ``table``; the returned list empties when it has."""
    pending = [1]
    real_push = sock.push

    def push(name: str, action: str, rows: list, skip: bool = False) -> None:
        if action == "partial" and name == table and pending:
            pending.pop()
            skip = True
        real_push(name, action, rows, skip)
    sock.push = push
    return pending


def test_lost_partial_after_resubscribe_is_detected_by_seq_and_resubscribed(ex: FakeExchange) -> None:
    # soak finding: a dropped partial left the table stale for partial_timeout (10 s) and then forced a
    # reconnect (which cancels every order); seq > 1 after the sub's ack proves the partial was lost
    client = live_client(ex, partial_timeout=30)
    client.start()
    try:
        sock = ex.last
        drop_partials = drop_next_partial(sock, "order_book")
        sock.push("order_book", "update", [{"id": str(BASE - 19999), "size": "9"}], skip=True)  # a gap
        sock.push("order_book", "update", [{"id": str(BASE - 19998), "size": "9"}])
        assert wait_until(lambda: sum(1 for s in sock.sent if '"sub"' in s and "order_book" in s) == 2)
        assert not drop_partials
        sock.push("order_book", "update", [{"id": str(BASE - 19998), "size": "7"}])  # seq 2, no partial
        assert wait_until(lambda: client.synced, timeout=2)
        assert client.stats["partial_lost"] == 1 and len(ex.sockets) == 1
        assert sum(1 for s in sock.sent if '"sub"' in s and "order_book" in s) == 3
    finally:
        client.stop()


def test_lost_partial_during_connect_is_resubscribed_not_timed_out(ex: FakeExchange) -> None:
    lost = [1]

    def factory(url: str, timeout: float = 0) -> FakeSocket:
        sock = ex.factory(url, timeout)
        real_push = sock.push

        def push(table: str, action: str, rows: list, skip: bool = False) -> None:
            if action == "partial" and table == "position" and lost[0]:
                lost[0] -= 1
                real_push(table, action, rows, True)
                real_push(table, "update", [])  # the next periodic push: seq 2
                return
            real_push(table, action, rows, skip)
        sock.push = push  # type: ignore[method-assign]
        return sock
    client = GteWebSocket("ws://fake", "BTC_USD", "BTC", CREDS, websocket_factory=factory, partial_timeout=30)
    started = time.monotonic()
    client.start()
    try:
        assert client.synced and time.monotonic() - started < 5
        assert client.stats["partial_lost"] == 1 and len(ex.sockets) == 1
    finally:
        client.stop()


def test_failure_inside_the_io_loop_reconnects_instead_of_killing_the_thread(ex: FakeExchange, caplog: Any) -> None:
    # soak finding: an exception escaping the REST reconciliation ended the I/O thread while the client
    # still said connected + synced, so the bot kept quoting on a frozen view
    class Rest:
        def open_orders(self) -> list[Order]:
            return [Order("1", "mm_1", "buy", 0, Decimal(9990), 10, 6, 16, fee=Decimal("-0.000000676353"))]

        def query_orders(self, **kw: Any) -> list[Order]:
            return []

    client = live_client(ex, rest=Rest())
    client.start()
    try:
        boom = [1]
        real = client._tables.reconcile_orders

        def reconcile_orders(orders: Any) -> int:
            if boom[0]:
                boom[0] -= 1
                raise RuntimeError("bug")
            return real(orders)
        client._tables.reconcile_orders = reconcile_orders  # type: ignore[method-assign]
        sock = ex.last
        sock.push("order", "update", [{"order_id": "1", "filled_qty": "5"}], skip=True)  # a gap on "order":
        sock.push("order", "update", [{"order_id": "1", "filled_qty": "6"}])  # resubscribe + reconcile
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced and client.connected)
        assert client._thread is not None and client._thread.is_alive()
        assert client.stats["internal"] == 1
        assert client.snapshot().orders[0].fee == Decimal("-0.000000676353")
    finally:
        client.stop()


def test_lost_partial_on_a_quiet_table_is_resubscribed_without_waiting_for_traffic(ex: FakeExchange) -> None:
    # soak finding: a dropped partial on a table with no later traffic (execution) waited the whole
    # partial_timeout and then reconnected; the partial follows its ack at once, so its absence is proof
    client = live_client(ex, partial_timeout=30)
    client.start()
    try:
        sock = ex.last
        drop_next_partial(sock, "execution")
        sock.push("execution", "insert", [], skip=True)  # a gap ...
        sock.push("execution", "insert", [])  # ... seen here: resubscribe, whose partial is then dropped
        started = time.monotonic()
        assert wait_until(lambda: client.stats.get("partial_lost") == 1, timeout=5)
        assert wait_until(lambda: client.synced, timeout=5)
        assert time.monotonic() - started < 5 and len(ex.sockets) == 1  # no reconnect
        assert sum(1 for s in sock.sent if '"sub"' in s and "execution" in s) == 3
    finally:
        client.stop()


# ------------------------------------------------------ market-data clock and a crossed book
def test_market_data_age_counts_book_and_trade_messages_only() -> None:
    # review finding: the stale-data check read the time of the last message of any kind, so pongs and
    # acks kept a frozen book "fresh"; instrument pushes are periodic whatever the book does
    now = [1000.0]
    client, feed = synced_client(clock=lambda: now[0])
    assert client.snapshot().last_update_ms == 1_000_000
    now[0] = 1010.0
    client.handle_raw('{"op":"pong"}')
    client.handle_raw('{"status":"0","request":{"op":"sub","args":{"table":"trade"}}}')
    feed("instrument", "update", [{"symbol": "BTC_USD", "mark_price": "10000"}])
    feed("position", "update", [{"symbol": "BTC_USD", "side": "1", "qty": "4"}])
    feed("margin", "update", [{"settle_currency": "BTC", "total": "2"}])
    assert client.snapshot().last_update_ms == 1_000_000  # ten seconds old
    feed("trade", "insert", [{"symbol": "BTC_USD", "side": "buy", "price": "10000.5", "qty": "2",
                              "trade_time": "5"}])
    assert client.snapshot().last_update_ms == 1_010_000
    now[0] = 1015.0
    feed("order_book", "update", [{"id": str(BASE - 19999), "size": "8"}])
    assert client.snapshot().last_update_ms == 1_015_000


def test_pongs_keep_the_socket_alive_but_not_the_market_data(ex: FakeExchange) -> None:
    now = [1000.0]
    client = live_client(ex, ping_interval=20, silence_timeout=30, clock=lambda: now[0])
    client.start()
    try:
        assert client.snapshot().last_update_ms == 1_000_000
        for _ in range(3):  # a frozen book feed on a socket that still answers pings
            now[0] += 21
            pongs = client.stats.get("pongs", 0)
            assert wait_until(lambda: client.stats.get("pongs", 0) == pongs + 1)
        ex.last.push("instrument", "update", [{"symbol": "BTC_USD", "mark_price": "10000"}])
        assert wait_until(lambda: client.snapshot().instrument.mark_price == Decimal(10000))
        assert client.last_message_time == 1063.0 and client.connected and len(ex.sockets) == 1
        assert client.snapshot().last_update_ms == 1_000_000  # 63 s old: the manager's stale check fires
    finally:
        client.stop()


def crossing_bid(ticks: int = 20003) -> list:
    return [level(ticks, "buy", 1)]  # above the best ask (ticks 20001)


def test_book_crossed_longer_than_the_limit_is_resubscribed_and_logged_once(caplog: Any) -> None:
    # hostile-input finding: a book that stayed crossed paused the bot for good, with a warning per message
    now = [1000.0]
    client, feed = synced_client(clock=lambda: now[0], crossed_resync=3)
    with caplog.at_level(logging.INFO, logger="market_maker.gte.ws"):
        feed("order_book", "insert", crossing_bid())
        for _ in range(5):  # crossed for 2.5 s: a sweep in flight, not yet a broken book
            now[0] += 0.5
            feed("order_book", "update", [{"id": str(BASE - 20003), "size": "2"}])
        assert client.synced and client.stats.get("book_crossed", 0) == 0
        now[0] += 1.0
        feed("order_book", "update", [{"id": str(BASE - 20003), "size": "3"}])
        assert client.stats["book_crossed"] == 1 and "order_book" in client._resync_due and not client.synced
        feed("order_book", "update", [{"id": str(BASE - 20003), "size": "4"}])  # ignored until the partial
        feed("order_book", "partial", BOOK)
        assert client.synced and not client.snapshot().book.crossed
    assert caplog.text.count("order book crossed") == 1 and caplog.text.count("no longer crossed") == 1
    assert client.stats["book_crossed"] == 1


def test_brief_crossing_is_not_resynced() -> None:
    now = [1000.0]
    client, feed = synced_client(clock=lambda: now[0], crossed_resync=3)
    feed("order_book", "insert", crossing_bid())
    now[0] += 2.9
    feed("order_book", "delete", [{"id": str(BASE - 20003)}])
    now[0] += 10
    feed("order_book", "insert", crossing_bid(20000))  # not crossing: 10000 < 10000.5
    assert client.synced and not client._resync_due and client.stats.get("book_crossed", 0) == 0


def test_frozen_crossed_book_is_resubscribed_by_the_io_loop(ex: FakeExchange) -> None:
    now = [1000.0]
    client = live_client(ex, clock=lambda: now[0], crossed_resync=3)
    client.start()
    try:
        sock = ex.last
        sock.push("order_book", "insert", crossing_bid())
        assert wait_until(lambda: client.snapshot().book.crossed)
        now[0] += 3.5  # no message comes after the crossing one: the I/O loop's clock must notice
        assert wait_until(lambda: client.stats.get("book_crossed") == 1)
        assert wait_until(lambda: client.synced and not client.snapshot().book.crossed)
        sent = [json.loads(s) for s in sock.sent]
        assert [(s["op"], s["args"]["table"]) for s in sent[-2:]] == [("unsub", "order_book"), ("sub", "order_book")]
        assert len(ex.sockets) == 1
    finally:
        client.stop()


def test_a_partial_that_never_comes_is_asked_for_again_with_backoff(ex: FakeExchange) -> None:
    # review finding: a server acking subscriptions but never sending the partial, while updates kept
    # coming, got an unsub + sub per message: 327 resubscriptions in 10 s
    client = live_client(ex, partial_timeout=30)
    client.start()
    stop = threading.Event()
    try:
        sock = ex.last
        ex.silent_tables.add("order_book")
        sock.push("order_book", "update", [{"id": str(BASE - 19999), "size": "9"}], skip=True)  # a gap

        def updates() -> None:
            while not stop.wait(0.01):
                sock.push("order_book", "update", [{"id": str(BASE - 19998), "size": "9"}])
        pusher = threading.Thread(target=updates)
        pusher.start()
        subs = lambda: sum(1 for s in list(sock.sent) if '"sub"' in s and "order_book" in s)  # noqa: E731
        assert wait_until(lambda: subs() >= 3, timeout=20)  # at once, then after 0.5 s and 1 s more
        first = time.monotonic()
        time.sleep(2.0)
        assert subs() <= 5  # after the first two retries the waits double: at most two more in 2 s
        assert len(ex.sockets) == 1 and not client.synced
        assert time.monotonic() - first >= 2.0
    finally:
        stop.set()
        client.stop()
