"""Keyed tables, order retirement, bounded logs and fill accounting."""
from __future__ import annotations

from decimal import Decimal

import pytest

from market_maker.gte.parse import MalformedRow, parse_margin
from market_maker.gte.fills import FillCounter, SeenSet
from market_maker.gte.tables import KeyedTable, LiveTables, OrderTable, UnknownKey
from market_maker.models import Margin, Order


def order_row(oid: str, **over: str) -> dict:
    row = {"order_id": oid, "client_oid": f"mm_{oid}", "status": "2", "side": "1", "close_flag": "0",
           "price": "9990.5", "qty": "100", "filled_qty": "0", "avg_price": "0", "fee": "0",
           "ctime": "1", "symbol": "BTC_USD", "settle_currency": "BTC"}
    row.update(over)
    return row


def exec_row(eid: str, oid: str, last: int, cum: int | None = None, ctime: int = 10) -> dict:
    row = {"exec_id": eid, "order_id": oid, "exec_type": "4", "side": "1", "close_flag": "0",
           "last_qty": str(last), "last_price": "9990.5", "fee": "-0.0000001", "maker_flag": "1",
           "ctime": str(ctime), "symbol": "BTC_USD", "settle_currency": "BTC"}
    if cum is not None:
        row["cum_qty"] = str(cum)
    return row


def margin_table() -> KeyedTable[Margin]:
    return KeyedTable("margin", ("settle_currency",), parse_margin)


def test_update_merges_changed_fields() -> None:
    t = margin_table()
    t.partial([{"settle_currency": "BTC", "total": "1", "available": "0.5"}])
    t.update([{"settle_currency": "BTC", "available": "0.25"}])
    assert t.rows[("BTC",)] == {"settle_currency": "BTC", "total": "1", "available": "0.25"}
    m = t.get(("BTC",))
    assert m is not None and m.total == Decimal(1) and m.available == Decimal("0.25")


def test_insert_delete_and_unknown_keys() -> None:
    t = margin_table()
    t.partial([])
    t.insert([{"settle_currency": "ETH", "total": "2"}])
    assert ("ETH",) in t and len(t) == 1
    with pytest.raises(UnknownKey):
        t.update([{"settle_currency": "BTC", "total": "3"}])
    with pytest.raises(UnknownKey):
        t.delete([{"settle_currency": "BTC"}])
    t.delete([{"settle_currency": "ETH"}])
    assert len(t) == 0 and t.get(("ETH",)) is None


def test_missing_key_or_bad_number_is_malformed_and_keeps_old_row() -> None:
    t = margin_table()
    t.partial([{"settle_currency": "BTC", "total": "1"}])
    with pytest.raises(MalformedRow):
        t.update([{"total": "2"}])
    with pytest.raises(MalformedRow):
        t.update([{"settle_currency": "BTC", "total": "1e"}])
    assert t.rows[("BTC",)]["total"] == "1"


def test_periodic_full_row_update_of_new_position_is_inserted() -> None:
    live = LiveTables("BTC_USD", "BTC")
    live.apply("position", "partial", [])
    full = {"symbol": "BTC_USD", "side": "1", "qty": "5", "avail_qty": "5", "entry_price": "10000"}
    live.apply("position", "update", [full])
    assert live.position_view().long.qty == 5 and live.position_view().net == 5
    with pytest.raises(UnknownKey):
        live.apply("position", "update", [{"symbol": "BTC_USD", "side": "0", "qty": "1"}])


def test_order_table_retires_final_orders_and_absorbs_late_pushes() -> None:
    t = OrderTable(max_closed=2)
    t.partial([order_row("1"), order_row("2", status="8")])
    assert [o.order_id for o in t.open_orders("BTC_USD")] == ["1"]
    t.update([{"order_id": "1", "status": "32", "filled_qty": "100"}])
    assert t.open_orders("BTC_USD") == () and ("1",) in t.closed
    t.update([{"order_id": "1", "fee": "0.1"}])  # late push for a closed order: no error
    assert t.closed[("1",)][1].fee == Decimal("0.1")
    for oid in "345":
        t.insert([order_row(oid, status="8")])
    assert len(t.closed) == 2
    with pytest.raises(UnknownKey):
        t.update([{"order_id": "1", "status": "8"}])


def test_open_orders_filter_symbol() -> None:
    t = OrderTable()
    t.partial([order_row("1"), order_row("2", symbol="ETH_USD")])
    assert [o.order_id for o in t.open_orders("BTC_USD")] == ["1"]


def test_trades_and_executions_are_bounded() -> None:
    live = LiveTables("BTC_USD", "BTC", max_trades=3, max_executions=2)
    trade = {"symbol": "BTC_USD", "side": "buy", "price": "1", "qty": "1", "trade_time": "1"}
    live.apply("trade", "partial", [trade])
    live.apply("trade", "insert", [dict(trade, qty=str(q)) for q in range(2, 7)])
    assert [t.qty for t in live.recent_trades()] == [4, 5, 6]
    live.apply("execution", "partial", [])
    for i in range(4):
        live.apply("execution", "insert", [exec_row(f"e{i}", "1", 1)])
    assert [f.exec_id for f in live.executions] == ["e2", "e3"]
    assert live.fills.contracts == 4
    with pytest.raises(MalformedRow):
        live.apply("trade", "update", [trade])


def test_duplicate_execution_is_not_double_counted() -> None:
    live = LiveTables("BTC_USD", "BTC")
    assert live.apply("execution", "insert", [exec_row("e1", "1", 30, 30)]) == "fill"
    assert live.apply("execution", "insert", [exec_row("e1", "1", 30, 30)]) is None
    assert live.fills.contracts == 30 and len(live.executions) == 1
    live.apply("execution", "insert", [exec_row("e2", "1", 0)])  # no quantity: not a fill
    assert live.fills.contracts == 30 and len(live.executions) == 1


def test_maker_fills_are_counted_apart() -> None:
    live = LiveTables("BTC_USD", "BTC")
    live.apply("execution", "insert", [exec_row("e1", "1", 5), exec_row("e2", "2", 5) | {"maker_flag": "0"}])
    live.apply("execution", "insert", [exec_row("e2", "2", 5) | {"maker_flag": "0"}])  # a duplicate push
    live.apply("execution", "insert", [exec_row("e3", "3", 5)])
    assert (live.fill_count, live.maker_fill_count) == (3, 2)


def test_other_symbol_executions_ignored() -> None:
    live = LiveTables("BTC_USD", "BTC")
    live.apply("execution", "insert", [exec_row("e1", "1", 5) | {"symbol": "ETH_USD"}])
    assert live.fills.contracts == 0


def test_seen_set_is_bounded() -> None:
    s = SeenSet(maxlen=3)
    assert all(s.add(x) for x in "abcd")
    assert not s.add("d") and "a" not in s and len(s) == 3


def test_fill_counter_reconciles_missed_fills_once() -> None:
    live = LiveTables("BTC_USD", "BTC", started_ms=5)
    live.apply("order", "partial", [order_row("1", filled_qty="10", status="16")])
    live.apply("execution", "partial", [exec_row("old", "1", 10, 10, ctime=1)])
    assert live.fills.contracts == 0  # fills before start are not ours to count
    live.apply("execution", "insert", [exec_row("e1", "1", 5, 15)])
    assert live.fills.contracts == 5
    # blind: order 1 got 20 more, order 2 was created and filled 7 -> resync partials
    live.apply("order", "partial", [order_row("1", filled_qty="35", status="16"),
                                    order_row("2", filled_qty="7", status="16")], resync=True)
    assert live.fills.contracts == 5 + 20 + 7
    # the execution partial repeats fills already reconciled from filled_qty: capped by cum_qty
    live.apply("execution", "partial", [exec_row("e2", "1", 20, 35), exec_row("e3", "2", 7, 7)], resync=True)
    assert live.fills.contracts == 32
    # REST (newer) shows one more fill on order 2
    added = live.reconcile_orders([Order("2", "mm_2", "buy", 0, Decimal("9990.5"), 100, 9, 16)])
    assert added == 2 and live.fills.contracts == 34
    assert {o.order_id: o.filled_qty for o in live.open_orders()} == {"1": 35, "2": 9}


def test_fill_counter_without_cum_qty() -> None:
    c = FillCounter()
    c.on_execution(exec_row("a", "1", 3))
    c.on_execution(exec_row("b", "1", 4))
    assert c.contracts == 7 and c.credited["1"] == 7
    assert c.reconcile("1", 7) == 0 and c.reconcile("1", 9) == 2


def test_reconcile_accepts_orders_with_tiny_decimals():
    # soak finding: str(Decimal("-0.000000676353")) is "-6.76353E-7", which the strict wire parser refuses;
    # the REST reconciliation raised MalformedRow and killed the WebSocket I/O thread
    live = LiveTables("BTC_USD", "BTC")
    live.apply("order", "partial", [order_row("2")])
    order = Order("2", "mm_2", "buy", 0, Decimal("9990.5"), 100, 9, 16, avg_price=Decimal("9990.5"),
                  fee=Decimal("-0.000000676353"))
    assert live.reconcile_orders([order]) == 9
    assert live.open_orders()[0].fee == Decimal("-0.000000676353")
