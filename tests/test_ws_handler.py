"""GteWebSocket's raw-message handler, fed strings: tables, sequence numbers, events, bad input, the
market-data clock and a crossed book."""
from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from market_maker.gte.ws import GteWebSocket
from tests.ws_client_helpers import BASE, BOOK, crossing_bid, errors, level, msg, order_row, synced_client


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
