"""Matching engine and the exchange's order/trade/book events."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from market_maker.sim.engine import BUY, SELL, Order, OrderBook
from market_maker.sim.exchange import Event, Exchange, ExchangeConfig, SimError

SYM = "BTC_USD"


def _order(oid: int, side: int, ticks: int, qty: int) -> Order:
    return Order(oid, 1, SYM, side, 0, ticks, qty, None, 0, D(10), None, 0)


def _ex() -> tuple[Exchange, int, int, int]:
    ex = Exchange(ExchangeConfig())
    return ex, ex.open_account("a", D(10)), ex.open_account("b", D(10)), ex.open_account("c", D(10))


def _kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


# ---------------------------------------------------------------- pure book

def test_book_price_time_priority_and_maker_price() -> None:
    book = OrderBook()
    a1, a2, a3 = _order(1, SELL, 101, 5), _order(2, SELL, 100, 5), _order(3, SELL, 100, 5)
    for o in (a1, a2, a3):
        book.rest(o)
    assert book.best_ask() == 100 and book.best_bid() is None
    taker = _order(4, BUY, 101, 12)
    fills = book.match(taker)
    # best price first, then time priority inside the level, fills at the maker's price
    assert [(m.oid, q, px) for m, q, px in fills] == [(2, 5, 100), (3, 5, 100), (1, 2, 101)]
    assert taker.filled == 12 and a1.filled == 2 and book.best_ask() == 101
    assert book.depth(SELL) == [(101, 3)]


def test_book_limit_stops_matching_and_remainder_rests() -> None:
    book = OrderBook()
    book.rest(_order(1, BUY, 99, 4))
    book.rest(_order(2, BUY, 98, 4))
    taker = _order(3, SELL, 99, 10)
    fills = book.match(taker)
    assert [(q, px) for _, q, px in fills] == [(4, 99)]
    book.rest(taker)
    assert book.best_bid() == 98 and book.best_ask() == 99
    assert book.depth(SELL) == [(99, 6)]


def test_book_touched_levels_are_coalesced() -> None:
    book = OrderBook()
    for i in range(3):
        book.rest(_order(i + 1, SELL, 100, 1))
    book.rest(_order(9, SELL, 102, 1))
    book.take_touched()
    book.match(_order(10, BUY, 100, 2))          # two fills on one level -> one change
    assert book.take_touched() == [(SELL, 100, 1, True)]
    book.remove(book.levels[-102].orders[9])
    assert book.take_touched() == [(SELL, 102, 0, True)]


# ---------------------------------------------------------------- exchange events

def test_status_sequence_fees_and_execution_rows() -> None:
    ex, a, b, _ = _ex()
    ex.place_order(a, SYM, 0, 0, D("10000.5"), 100, "maker-1", 1)
    ev = ex.drain_events()
    orders = _kinds(ev, "order")
    assert [(e.action, e.row["status"]) for e in orders] == [("insert", "1"), ("update", "2")]
    assert [(e.action, e.row["side"], e.row["price"], e.row["size"])
            for e in _kinds(ev, "order_book")] == [("insert", "sell", "10000.5", "100")]

    row = ex.place_order(b, SYM, 1, 0, D("10001"), 60, None, 2)
    assert row["status"] == "32" and row["avg_price"] == "10000.5"
    ev = ex.drain_events()
    execs = _kinds(ev, "execution")
    assert len(execs) == 2
    maker = next(e.row for e in execs if e.account_id == a)
    taker = next(e.row for e in execs if e.account_id == b)
    notional = D(60) / D("10000.5")
    assert maker["maker_flag"] == "1" and taker["maker_flag"] == "0"
    assert D(maker["fee"]) == (notional * D("-0.00025")).quantize(D("1e-12")) < 0
    assert D(taker["fee"]) == (notional * D("0.00075")).quantize(D("1e-12")) > 0
    assert maker["last_price"] == taker["last_price"] == "10000.5"
    assert maker["last_qty"] == "60" and maker["leaves_qty"] == "40"
    assert maker["order_status"] == "16" and taker["order_status"] == "32"
    assert maker["exec_id"] != taker["exec_id"]
    assert maker["trade_match_id"] == taker["trade_match_id"]
    trades = _kinds(ev, "trade")
    assert [(t.row["side"], t.row["price"], t.row["qty"]) for t in trades] == \
        [("buy", "10000.5", "60")]
    assert [(e.action, e.row["size"]) for e in _kinds(ev, "order_book")] == [("update", "40")]
    maker_orders = [e.row["status"] for e in _kinds(ev, "order") if e.account_id == a]
    assert maker_orders == ["16"]

    ex.place_order(b, SYM, 1, 0, D("10000.5"), 40, None, 3)
    ev = ex.drain_events()
    assert [e.row["status"] for e in _kinds(ev, "order") if e.account_id == a] == ["32"]
    assert [(e.action, e.row["price"]) for e in _kinds(ev, "order_book")] == \
        [("delete", "10000.5")]


def test_sweep_coalesces_levels_and_rests_remainder() -> None:
    ex, a, b, c = _ex()
    for acct, price, qty in ((a, "10001", 5), (c, "10001", 5), (a, "10001.5", 5), (c, "10002", 5)):
        ex.place_order(acct, SYM, 0, 0, D(price), qty, None, 1)
    ex.drain_events()
    row = ex.place_order(b, SYM, 1, 0, D("10001.5"), 30, "sweep", 2)
    assert row["status"] == "16" and row["filled_qty"] == "15"
    ev = ex.drain_events()
    book = [(e.action, e.row["side"], e.row["price"], e.row.get("size"))
            for e in _kinds(ev, "order_book")]
    assert sorted(book) == sorted([("delete", "sell", "10001.0", None),
                                   ("delete", "sell", "10001.5", None),
                                   ("insert", "buy", "10001.5", "15")])
    assert len(_kinds(ev, "trade")) == 3 and len(_kinds(ev, "execution")) == 6
    assert ex.order_book(SYM, 5) == {"bids": [["10001.5", "15"]], "asks": [["10002.0", "5"]]}
    # avg price is the contract-weighted harmonic mean 15 / (10/10001 + 5/10001.5)
    assert row["avg_price"] == "10001.16666111"


def test_cancel_emits_pending_then_cancelled_and_releases_margin() -> None:
    ex, a, _, _ = _ex()
    row = ex.place_order(a, SYM, 1, 0, D("9000"), 90, None, 1)
    assert ex.pc_account_rows(a, "BTC")[0]["order_margin"] == "0.001"
    ex.drain_events()
    out = ex.cancel_order(a, SYM, row["order_id"], 2)
    assert out["status"] == "8" and out["order_margin"] == "0"
    ev = ex.drain_events()
    assert [e.row["status"] for e in _kinds(ev, "order")] == ["4", "8"]
    assert [e.action for e in _kinds(ev, "order_book")] == ["delete"]
    assert _kinds(ev, "margin")[0].row["order_margin"] == "0"
    with pytest.raises(SimError) as err:
        ex.cancel_order(a, SYM, row["order_id"], 3)
    assert err.value.code == -20002


def test_cancel_foreign_or_unknown_order_is_rejected() -> None:
    ex, a, b, _ = _ex()
    row = ex.place_order(a, SYM, 1, 0, D("9000"), 1, None, 1)
    for acct, oid in ((b, row["order_id"]), (a, "42"), (a, "not-a-number")):
        with pytest.raises(SimError) as err:
            ex.cancel_order(acct, SYM, oid, 2)
        assert err.value.code == -20002 and err.value.pattern == "ORDER_NOT_FOUND"


def test_cancel_batch_cancels_only_own_open_orders() -> None:
    ex, a, b, _ = _ex()
    ids = [ex.place_order(a, SYM, 1, 0, D(9000 + i), 1, None, 1)["order_id"] for i in range(3)]
    other = ex.place_order(b, SYM, 1, 0, D(8000), 1, None, 1)["order_id"]
    rows = ex.cancel_batch(a, SYM, ids[:2] + [other, "123"], 2)
    assert [r["order_id"] for r in rows] == ids[:2]
    assert [r["order_id"] for r in ex.open_orders_of(a)] == ids[2:]


@pytest.mark.parametrize("kwargs,param", [
    ({"price": D("10000.3")}, "price"),
    ({"price": D("0")}, "price"),
    ({"qty": 0}, "qty"),
    ({"qty": True}, "qty"),
    ({"side": 2}, "side"),
    ({"close_flag": 3}, "close_flag"),
    ({"symbol": "ETH_USD"}, "symbol"),
])
def test_validation_errors(kwargs: dict, param: str) -> None:
    ex, a, _, _ = _ex()
    args = {"symbol": SYM, "side": 1, "close_flag": 0, "price": D("10000"), "qty": 1}
    args.update(kwargs)
    with pytest.raises(SimError) as err:
        ex.place_order(a, args["symbol"], args["side"], args["close_flag"], args["price"],
                       args["qty"], None, 1)
    assert (err.value.code, err.value.pattern, err.value.param) == \
        (-10013, "VALIDATE_PARAM_VALUE_ERROR", param)
    assert ex.drain_events() == []


def test_order_ids_monotonic_and_query_paging() -> None:
    ex, a, _, _ = _ex()
    ids = [int(ex.place_order(a, SYM, 1, 0, D(9000), 1, f"c{i}", i)["order_id"]) for i in range(6)]
    assert ids == sorted(ids) and ids[0] == 122702086658933120
    ex.cancel_order(a, SYM, str(ids[1]), 9)
    newest = ex.query_orders(a, SYM, None, None, None, None, 3)
    assert [int(r["order_id"]) for r in newest] == ids[:2:-1]
    older = ex.query_orders(a, None, None, None, None, str(ids[3]), 10)
    assert [int(r["order_id"]) for r in older] == [ids[2], ids[1], ids[0]]
    after = ex.query_orders(a, SYM, None, None, str(ids[0]), str(ids[3]), 2)   # gt wins
    assert [int(r["order_id"]) for r in after] == [ids[2], ids[1]]
    cancelled = ex.query_orders(a, SYM, {8}, None, None, None, 10)
    assert [int(r["order_id"]) for r in cancelled] == [ids[1]]
    one = ex.query_orders(a, SYM, None, str(ids[4]), None, None, 10)
    assert one[0]["client_oid"] == "c4"
    assert [r["status"] for r in ex.orders_by_client_oid(a, "c1")] == ["8"]


def test_history_is_bounded_but_open_orders_kept() -> None:
    ex = Exchange(ExchangeConfig(history_limit=3))
    a = ex.open_account("a", D(10))
    keep = ex.place_order(a, SYM, 1, 0, D(8000), 1, None, 0)["order_id"]
    for i in range(6):
        oid = ex.place_order(a, SYM, 1, 0, D(9000), 1, None, i)["order_id"]
        ex.cancel_order(a, SYM, oid, i)
    rows = ex.query_orders(a, SYM, None, None, None, None, 100)
    assert len(rows) == 4 and rows[-1]["order_id"] == keep


def test_client_oid_index_is_bounded_by_the_order_history() -> None:
    ex = Exchange(ExchangeConfig(history_limit=3))
    a = ex.open_account("a", D(10))
    kept = ex.place_order(a, SYM, 1, 0, D(8000), 1, "open", 0)["order_id"]   # stays open
    for i in range(500):   # a long soak: many final orders, few distinct client_oids
        oid = ex.place_order(a, SYM, 1, 0, D(9000), 1, f"c{i % 7}", i)["order_id"]
        ex.cancel_order(a, SYM, oid, i)
        other = ex.place_order(a, SYM, 1, 0, D(9500), 1, f"u{i}", i)["order_id"]
        ex.cancel_order(a, SYM, other, i)
    acct = ex._accounts[a]
    in_history = set(acct.orders)
    indexed = [o.oid for orders in acct.by_client.values() for o in orders]
    # the index holds exactly the orders still in the history (open + last 3 final)
    assert sorted(indexed) == sorted(in_history) and len(indexed) == 4
    assert len(acct.by_client) == 4
    assert [r["order_id"] for r in ex.orders_by_client_oid(a, "open")] == [kept]
    last = ex.query_orders(a, SYM, {8}, None, None, None, 3)
    for row in last:   # still found by client_oid while in the history
        assert ex.orders_by_client_oid(a, row["client_oid"]) == [row]
    assert ex.orders_by_client_oid(a, "c0") == [] and ex.orders_by_client_oid(a, "u0") == []


def test_trades_query_and_candles() -> None:
    ex, a, b, _ = _ex()
    for i, price in enumerate(("10000", "10002", "9999", "10001")):
        ex.place_order(a, SYM, 0, 0, D(price), 2, None, 60_000 + i * 20_000)
        ex.place_order(b, SYM, 1, 0, D(price), 2, None, 60_000 + i * 20_000)
    trades = ex.trades(SYM, None, None, 10)
    assert [t["price"] for t in trades] == ["10001.0", "9999.0", "10002.0", "10000.0"]
    first = int(trades[-1]["trade_id"])
    assert [t["price"] for t in ex.trades(SYM, str(first), None, 2)] == ["9999.0", "10002.0"]
    assert [t["price"] for t in ex.trades(SYM, None, str(first + 2), 10)] == \
        ["10002.0", "10000.0"]
    c1 = ex.candles(SYM, None, None, 1, 10)
    assert c1 == [["60000", "10000.0", "10002.0", "9999.0", "9999.0", "6"],
                  ["120000", "10001.0", "10001.0", "10001.0", "10001.0", "2"]]
    assert ex.candles(SYM, None, None, 5, 10) == \
        [["0", "10000.0", "10002.0", "9999.0", "10001.0", "8"]]
    assert ex.candles(SYM, 120_000, None, 1, 10) == c1[1:]
    inst = ex.instrument_row(SYM, 200_000)
    assert inst["last_price"] == "10001.0" and inst["volume_24h"] == "8"
    assert inst["tick_size"] == "0.5" and inst["symbol_id"] == "1"


def test_book_levels_and_level_ids() -> None:
    ex, a, _, _ = _ex()
    ex.place_order(a, SYM, 1, 0, D("9999.5"), 3, None, 1)
    ex.place_order(a, SYM, 0, 0, D("10000.5"), 4, None, 1)
    rows = ex.book_levels(SYM)
    assert [(r["side"], r["price"], r["size"]) for r in rows] == \
        [("buy", "9999.5", "3"), ("sell", "10000.5", "4")]
    for r in rows:   # id = 1e8 * symbol_id - price / tick_size, and back
        assert D(r["price"]) == (100_000_000 * 1 - int(r["id"])) * D("0.5")


def test_event_behaves_like_a_tuple() -> None:
    ex, a, _, _ = _ex()
    ex.place_order(a, SYM, 1, 0, D("9000"), 1, None, 1)
    ev = ex.drain_events()[0]
    kind, account, symbol, row, action = ev
    assert (kind, account, symbol, action) == ("order", a, SYM, "insert")
    assert row is ev.row and ev[3] is row and row["status"] == "1"
    assert Event("x", None, None, {"k": "v"}, "insert").row == {"k": "v"}
