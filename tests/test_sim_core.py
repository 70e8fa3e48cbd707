"""``sim.core.Core`` on its own (no rows, no events), and the facade's fill events built on it."""
from __future__ import annotations

import math
from decimal import Decimal as D
from fractions import Fraction as F

import pytest

from market_maker.sim.core import Core, SimError
from market_maker.sim.market import ExchangeConfig
from market_maker.sim.engine import BUY, CANCELLED, FILLED, NEW, PARTIAL, SELL
from market_maker.sim.exchange import Exchange

SYM = "BTC_USD"


def units(amount: F) -> int:
    """The ledger's rounding: nearest 1e-12 unit, ties toward +infinity."""
    return math.floor(amount * 10**12 + F(1, 2))


def _core() -> tuple[Core, object, object, object]:
    core = Core(ExchangeConfig())
    a, b = (core.account(core.open_account(n, D(1))) for n in "ab")
    return core, core.market(SYM), a, b


def test_resting_order_reserves_margin_and_cancel_releases_it() -> None:
    core, m, a, _ = _core()
    order, fills = core.place(a, m, BUY, 0, 19_998, 100)          # 100 contracts at 9999
    assert fills == [] and order.status == NEW and m.book.best_bid() == 19_998
    reserved = units(F(100) / 9999 / 10)
    assert a.wallet("BTC").order_margin == order.margin == reserved
    assert core.cancel(a, m, order.oid) is order and order.status == CANCELLED
    assert a.wallet("BTC").order_margin == 0 and m.book.best_bid() is None
    assert a.open_orders == {} and order.oid in a.orders         # kept in the history


def test_fill_report_books_both_sides_and_the_fees() -> None:
    core, m, a, b = _core()
    equity0 = core.total_equity()
    maker1, _ = core.place(a, m, SELL, 0, 20_000, 30)             # 10000.0
    maker2, _ = core.place(a, m, SELL, 0, 20_001, 30)             # 10000.5
    taker, fills = core.place(b, m, BUY, 0, 20_001, 50)
    assert [(mk, q, px) for mk, q, px, *_ in fills] == [(maker1, 30, 20_000), (maker2, 20, 20_001)]
    for _mk, q, px, cost, maker_fee, taker_fee in fills:
        assert cost == units(F(q) / (px * F(1, 2))) == m.fill_cost(q, px)
        assert maker_fee == units(F(cost, 10**12) * F("-0.00025"))
        assert taker_fee == units(F(cost, 10**12) * F("0.00075"))
    assert (maker1.status, maker2.status, taker.status) == (FILLED, PARTIAL, FILLED)
    assert taker.filled == 50 and taker.value == m.fill_value(30, 20_000) + m.fill_value(20, 20_001)
    costs = sum(f[3] for f in fills)
    assert a.positions[(SYM, 0)].qty == 50 and a.positions[(SYM, 0)].cost == costs
    assert b.positions[(SYM, 1)].qty == 50 and b.positions[(SYM, 1)].cost == costs
    fees = sum(f[4] + f[5] for f in fills)
    assert core.account(core.fee_account_id).wallet("BTC").balance == fees
    assert a.wallet("BTC").order_margin == maker2.margin == units(F(10) / F("10000.5") / 10)
    assert b.wallet("BTC").order_margin == 0 and taker.margin == 0
    assert core.total_equity() == equity0


def test_refusals_change_nothing() -> None:
    core, m, a, b = _core()
    with pytest.raises(SimError) as err:
        core.place(a, m, BUY, 0, 20_000, 10**6)                   # 100 BTC of margin
    assert err.value.code == -20001 and str(err.value).startswith("-20001 INSUFFICIENT_MARGIN")
    with pytest.raises(SimError) as err:
        core.place(a, m, SELL, 1, 20_000, 1)                      # nothing to close
    assert err.value.code == -20003
    with pytest.raises(SimError) as err:
        core.cancel(a, m, 12345)
    assert (err.value.code, err.value.param, err.value.msg) == \
        (-20002, "id", "order not found or not open")
    assert a.orders == {} and a.wallet("BTC").order_margin == 0
    assert m.book.best_bid() is None and m.book.best_ask() is None


def test_taker_executions_count_up_fill_by_fill() -> None:
    ex = Exchange(ExchangeConfig())
    a, b = ex.open_account("a", D(1)), ex.open_account("b", D(1))
    for price in ("10000", "10000.5", "10001"):
        ex.place_order(a, SYM, 0, 0, D(price), 10, None, 1)
    ex.drain_events()
    row = ex.place_order(b, SYM, 1, 0, D("10001"), 25, None, 2)
    assert (row["status"], row["filled_qty"]) == ("32", "25")
    events = ex.drain_events()
    taker = [e.row for e in events if e.kind == "execution" and e.account_id == b]
    assert [(r["last_qty"], r["cum_qty"], r["leaves_qty"], r["order_status"]) for r in taker] == \
        [("10", "10", "15", "16"), ("10", "20", "5", "16"), ("5", "25", "0", "32")]
    maker = [e.row for e in events if e.kind == "execution" and e.account_id == a]
    assert [r["order_status"] for r in maker] == ["32", "32", "16"]
    ids = [int(r["exec_id"]) for e in events if e.kind == "execution" for r in [e.row]]
    assert ids == sorted(ids) and len(set(ids)) == 6
    # per fill: maker execution, maker order update, taker execution, trade
    kinds = [e.kind for e in events]
    assert kinds[1:5] == ["execution", "order", "execution", "trade"]


def test_order_margin_follows_each_accounts_leverage_at_the_same_price() -> None:
    """The market's per-(price, leverage) unit cache must not leak one account's leverage."""
    core, m, a, b = _core()
    b.setting(SYM, D(10)).cross_lev = D(25)
    oa, _ = core.place(a, m, BUY, 0, 19_990, 7)
    ob, _ = core.place(b, m, BUY, 0, 19_990, 7)
    oa2, _ = core.place(a, m, BUY, 0, 19_990, 7)
    price = F(19_990, 2)
    assert oa.margin == oa2.margin == units(7 / price / 10)
    assert ob.margin == units(7 / price / 25)


def test_fully_filled_maker_releases_all_its_order_margin() -> None:
    core, m, a, b = _core()
    maker, _ = core.place(a, m, SELL, 0, 20_000, 40)
    core.place(b, m, BUY, 0, 20_000, 40)
    assert maker.status == FILLED and maker.margin == 0
    assert a.wallet("BTC").order_margin == 0 and b.wallet("BTC").order_margin == 0
