"""GteWebSocket's recovery on a fake socket: a table out of sync is resubscribed (a gap, a lost partial,
a frozen crossed book), a broken stream reconnects and reconciles over REST."""
from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from market_maker.gte.ws import GteWebSocket
from market_maker.models import Order
from tests.waiting import wait_until
from tests.ws_client_helpers import BASE, CREDS, FakeExchange, FakeSocket, crossing_bid, live_client, order_row


@pytest.fixture
def ex() -> FakeExchange:
    return FakeExchange()


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
