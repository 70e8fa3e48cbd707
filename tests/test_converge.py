"""Tests for market_maker.converge (pure converge planning)."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal as D
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.converge import (
    CANCEL,
    CREATE,
    Plan,
    group_cancels,
    ordered_steps,
    plan_converge,
)
from market_maker.models import BUY, SELL, DesiredOrder, Order

_ids = count()


def lo(side, price, qty=100, close_flag=0, filled=0, status=2) -> Order:
    n = next(_ids)
    return Order(order_id=f"o{n}", client_oid=f"c{n}", side=side, close_flag=close_flag,
                 price=D(str(price)), qty=qty, filled_qty=filled, status=status)


def do(side, price, qty=100, close_flag=0) -> DesiredOrder:
    return DesiredOrder(side=side, price=D(str(price)), qty=qty, close_flag=close_flag)


def as_desired(o: Order) -> DesiredOrder:
    return DesiredOrder(side=o.side, price=o.price, qty=o.remaining, close_flag=o.close_flag)


R = D("0.001")  # relist interval used by most tests


def plan(buys, sells, live, relist=R, max_open=20) -> Plan:
    return plan_converge(buys, sells, live, relist, max_open)


def ids(orders):
    return sorted(o.order_id for o in orders)


# ---------------------------------------------------------------- basics

def test_identical_no_calls():
    live = [lo(BUY, 99), lo(BUY, "98.5", 200), lo(SELL, 101), lo(SELL, "101.5", 200, close_flag=1)]
    p = plan([as_desired(o) for o in live[:2]], [as_desired(o) for o in live[2:]], live)
    assert p.empty and p.reason is None
    assert ids(p.keep) == ids(live)
    assert p.calls(True) == 0 and p.calls(False) == 0
    assert ordered_steps(p, D(99), D(101)) == []


def test_price_within_relist_is_kept():
    live = [lo(BUY, "99.95")]  # 0.05/100 = 0.0005 <= 0.001
    p = plan([do(BUY, 100)], [], live)
    assert p.empty and p.keep == tuple(live)
    p = plan([do(BUY, 100)], [], [lo(BUY, "99.8")])  # 0.002 > 0.001: replaced
    assert len(p.to_cancel) == 1 and p.to_create == (do(BUY, 100),)


def test_qty_or_close_flag_changed_replaces():
    live = [lo(BUY, 100, qty=100)]
    p = plan([do(BUY, 100, qty=150)], [], live)
    assert p.to_cancel == tuple(live) and p.to_create == (do(BUY, 100, 150),) and p.keep == ()
    p = plan([do(BUY, 100, close_flag=1)], [], live)
    assert p.to_cancel == tuple(live) and p.to_create == (do(BUY, 100, 100, 1),)


def test_partial_fill_counts_remaining():
    live = [lo(SELL, 101, qty=100, filled=40, status=16)]
    assert plan([], [do(SELL, 101, 60)], live).keep == tuple(live)
    p = plan([], [do(SELL, 101, 100)], live)
    assert p.to_cancel == tuple(live) and p.to_create == (do(SELL, 101, 100),)


def test_extra_live_cancelled_missing_created():
    live = [lo(BUY, 99), lo(BUY, 98), lo(SELL, 101)]
    p = plan([do(BUY, 99)], [do(SELL, 101), do(SELL, 102)], live)
    assert ids(p.to_cancel) == ids([live[1]])
    assert p.to_create == (do(SELL, 102),)
    assert ids(p.keep) == ids([live[0], live[2]])


def test_pending_cancel_and_final_orders_ignored():
    live = [lo(BUY, 99, status=4), lo(BUY, 98, status=8), lo(BUY, 97)]
    p = plan([do(BUY, 97)], [], live)
    assert p.empty and ids(p.keep) == ids([live[2]])


def test_proximity_matching_shift_by_one_level():
    # Ladder moved down by one level, equal sizes: only one cancel + one create.
    live = [lo(BUY, p) for p in ("100", "99.5", "99", "98.5", "98")]
    desired = [do(BUY, p) for p in ("99.5", "99", "98.5", "98", "97.5")]
    p = plan(desired, [], live, relist=D(0))
    assert ids(p.to_cancel) == ids([live[0]])
    assert p.to_create == (do(BUY, "97.5"),)
    assert len(p.keep) == 4
    assert p.calls(True) == 2
    # sells shifted up
    live = [lo(SELL, p) for p in ("101", "101.5", "102")]
    desired = [do(SELL, p) for p in ("101.5", "102", "102.5")]
    p = plan([], desired, live, relist=D(0))
    assert ids(p.to_cancel) == ids([live[0]]) and p.to_create == (do(SELL, "102.5"),)


def test_proximity_prefers_closest_within_relist():
    live = [lo(BUY, "99.96"), lo(BUY, "100.05")]
    p = plan([do(BUY, 100)], [], live)
    assert ids(p.keep) == ids([live[0]]) and ids(p.to_cancel) == ids([live[1]])


def test_split_pair_group_matched_per_close_flag():
    live = [lo(SELL, 102, 50, close_flag=1), lo(SELL, 102, 50, close_flag=0)]
    desired = [do(SELL, 102, 50, 1), do(SELL, 102, 70, 0)]
    p = plan([], desired, live)
    assert ids(p.keep) == ids([live[0]])
    assert ids(p.to_cancel) == ids([live[1]]) and p.to_create == (do(SELL, 102, 70, 0),)
    assert p.reason is None


def test_kept_shifted_order_never_duplicates_a_created_price():
    # live 99.5 qty 1 is within 1% of desired 100 qty 1, but desired 99.5 (qty 2) will be
    # created: keeping it would put two buys at 99.5.
    live = [lo(BUY, "99.5", 1)]
    p = plan([do(BUY, 100, 1), do(BUY, "99.5", 2)], [], live, relist=D("0.01"))
    assert p.keep == ()
    assert set(p.to_create) == {do(BUY, 100, 1), do(BUY, "99.5", 2)}


def test_kept_shifted_order_never_crosses_desired_other_side():
    live = [lo(BUY, "100.5")]  # within 1% of desired buy 100 but at the desired sell price
    p = plan([do(BUY, 100)], [do(SELL, "100.5")], live, relist=D("0.01"))
    assert p.keep == () and len(p.to_create) == 2


def test_invalid_desired_rejected():
    with pytest.raises(ValueError):
        plan([do(BUY, 100), do(BUY, 100)], [], [])
    with pytest.raises(ValueError):
        plan([do(BUY, 101)], [do(SELL, 100)], [])
    with pytest.raises(ValueError):
        plan([do(SELL, 101)], [], [])


# ---------------------------------------------------------------- grouping

def test_cancel_groups_batch_vs_single():
    live = [lo(BUY, 90 + i) for i in range(5)]
    p = plan([], [], live)
    assert p.cancel_groups(True) == [live]
    assert p.cancel_groups(False) == [[o] for o in live]
    assert p.calls(True) == 1 and p.calls(False) == 5
    one = plan([], [], live[:1])
    assert one.cancel_groups(True) == [live[:1]] and one.calls(True) == 1
    many = [lo(BUY, 10 + i) for i in range(53)]
    groups = group_cancels(many, True)
    assert groups[0] == many[:50] and groups[1:] == [[o] for o in many[50:]]
    assert group_cancels(many, True, batch_max=20)[0] == many[:20]


# ---------------------------------------------------------------- ordering

def test_creates_first_when_nothing_blocks():
    live = [lo(BUY, 98), lo(SELL, 103)]
    p = plan([do(BUY, 99), do(BUY, "98.5")], [do(SELL, 102)], live)
    steps = ordered_steps(p, D("99.5"), D("101"))
    assert [s[0] for s in steps] == [CREATE, CREATE, CREATE, CANCEL]
    # innermost first: buy 99 (0.5 from bid), sell 102 (1 from ask), buy 98.5
    assert [s[1] for s in steps[:3]] == [do(BUY, 99), do(SELL, 102), do(BUY, "98.5")]
    assert ids(steps[3][1]) == ids(live)


def test_self_cross_cancel_before_create():
    live = [lo(SELL, 101), lo(BUY, 99)]
    p = plan([do(BUY, 101)], [do(SELL, 102)], live)  # market moved up
    steps = ordered_steps(p, D(100), D("101.5"))
    assert steps[0][0] == CANCEL and ids(steps[0][1]) == ids(live)
    assert [s[0] for s in steps[1:]] == [CREATE, CREATE]


def test_duplicate_cancel_before_create():
    live = [lo(BUY, 99, qty=100)]
    p = plan([do(BUY, 99, qty=200)], [], live)
    steps = ordered_steps(p, D(99), D(100))
    assert steps == [(CANCEL, live), (CREATE, do(BUY, 99, 200))]


def test_close_order_waits_for_close_cancel():
    live = [lo(SELL, 105, qty=100, close_flag=1)]
    p = plan([], [do(SELL, 104, 100, 1)], live)
    assert [s[0] for s in ordered_steps(p, D(100), D(101))] == [CANCEL, CREATE]


def test_ordered_steps_without_book_side():
    p = plan([do(BUY, 99)], [do(SELL, 101)], [])
    steps = ordered_steps(p, None, None)
    assert sorted(s[1].side for s in steps) == [BUY, SELL]


# ---------------------------------------------------------------- safety

def test_rebuild_when_too_many_open():
    live = [lo(BUY, 90 + i) for i in range(5)]
    desired = [do(BUY, 90 + i) for i in range(5)]
    p = plan(desired, [], live, max_open=4)
    assert p.reason and "max_open" in p.reason
    assert ids(p.to_cancel) == ids(live) and p.to_create == tuple(desired) and p.keep == ()
    steps = ordered_steps(p, D(95), D(96))
    assert steps[0] == (CANCEL, live) and all(s[0] == CREATE for s in steps[1:])


def test_rebuild_on_duplicate_price():
    live = [lo(BUY, 99), lo(BUY, 99, qty=5), lo(SELL, 101)]
    p = plan([do(BUY, 99)], [do(SELL, 101)], live)
    assert p.reason and "duplicate" in p.reason
    assert ids(p.to_cancel) == ids(live) and len(p.to_create) == 2 and p.keep == ()


def test_same_price_different_close_flag_is_not_a_mess():
    live = [lo(BUY, 99, 30, close_flag=1), lo(BUY, 99, 70, close_flag=0)]
    p = plan([do(BUY, 99, 30, 1), do(BUY, 99, 70, 0)], [], live)
    assert p.reason is None and p.empty


# ---------------------------------------------------------------- properties

TICK = D("0.5")


@st.composite
def side_orders(draw, side, lo_tick, hi_tick, live):
    """Orders of one side at distinct (price, close_flag), prices in [lo_tick, hi_tick] ticks."""
    keys = draw(st.lists(st.tuples(st.integers(lo_tick, hi_tick), st.sampled_from([0, 1])),
                         unique=True, max_size=12))
    out = []
    for t, cf in keys:
        qty = draw(st.sampled_from([1, 2, 3, 100]))
        if live:
            filled = draw(st.sampled_from([0, 0, 1]))
            out.append(lo(side, t * TICK, qty + filled, cf, filled, 16 if filled else 2))
        else:
            out.append(do(side, t * TICK, qty, cf))
    return out


@st.composite
def converge_cases(draw):
    mid = draw(st.integers(200, 220))
    live = draw(side_orders(BUY, 180, mid, True)) + draw(side_orders(SELL, mid + 1, 240, True))
    dmid = draw(st.integers(200, 220))
    buys = draw(side_orders(BUY, 180, dmid, False))
    sells = draw(side_orders(SELL, dmid + 1, 240, False))
    relist = draw(st.sampled_from([D(0), D("0.001"), D("0.005"), D("0.02")]))
    max_open = draw(st.integers(0, 30))
    return buys, sells, live, relist, max_open


def _bucket(o):
    qty = o.remaining if isinstance(o, Order) else o.qty
    return (o.side, o.close_flag, qty)


@settings(max_examples=150, deadline=None)
@given(converge_cases())
def test_converge_properties(case):
    buys, sells, live, relist, max_open = case
    p = plan_converge(buys, sells, live, relist, max_open)
    desired = buys + sells
    kept, cancelled = ids(p.keep), ids(p.to_cancel)
    assert not set(kept) & set(cancelled)
    assert sorted(kept + cancelled) == ids(live)  # every live order accounted for
    # kept + created == desired (by side/close_flag/qty; exactly when relist is 0)
    final = list(p.keep) + list(p.to_create)
    assert Counter(map(_bucket, final)) == Counter(map(_bucket, desired))
    if relist == 0:
        assert Counter((o.side, o.price, o.close_flag) for o in final) == \
            Counter((o.side, o.price, o.close_flag) for o in desired)
    for o in p.keep:
        assert any(_bucket(o) == _bucket(d) and abs(o.price - d.price) <= relist * d.price
                   for d in desired)
    # the result is never a mess: no duplicate key, buys below sells
    keys = [(o.side, o.price, o.close_flag) for o in final]
    assert len(keys) == len(set(keys))
    fb = [o.price for o in final if o.side == BUY]
    fs = [o.price for o in final if o.side == SELL]
    if fb and fs:
        assert max(fb) < min(fs)
    # kept orders never share a side/price with a created one
    # (a split pair may mix a kept exact order and a created one at one price)
    created_prices = {(d.side, d.price) for d in p.to_create}
    exact = {(d.side, d.price, d.close_flag, d.qty) for d in desired}
    for o in p.keep:
        if (o.side, o.price) in created_prices:
            assert (o.side, o.price, o.close_flag, o.remaining) in exact
    if p.reason is not None:
        assert p.keep == () and len(p.to_create) == len(desired)
    else:
        assert len(live) <= max_open
        # a desired order already live at its exact price/qty/flag is never replaced
        live_keys = {(o.side, o.price, o.close_flag, o.remaining) for o in live}
        for d in p.to_create:
            assert (d.side, d.price, d.close_flag, d.qty) not in live_keys
    # steps: each cancel once, each create once; blocking cancels come first
    steps = ordered_steps(p, D(100), D("100.5"))
    step_cancels = [o for k, v in steps if k == CANCEL for o in v]
    assert ids(step_cancels) == cancelled
    assert Counter(v for k, v in steps if k == CREATE) == Counter(p.to_create)
    seen_cancel = False
    for k, v in steps:
        if k == CANCEL:
            seen_cancel = True
            continue
        for c in p.to_cancel:
            crosses = (v.side == BUY and c.side == SELL and c.price <= v.price) or \
                      (v.side == SELL and c.side == BUY and c.price >= v.price)
            dup = c.side == v.side and c.price == v.price and c.close_flag == v.close_flag
            if crosses or dup:
                assert seen_cancel


def _brute_max_keeps(buys, sells, live, relist):
    """Most keepable orders over ALL matchings (same keep rules as the docstring)."""
    desired = buys + sells
    min_sell = min((d.price for d in sells), default=None)
    max_buy = max((d.price for d in buys), default=None)

    def ok(o, d):
        if _bucket(o) != _bucket(d) or abs(o.price - d.price) > relist * d.price:
            return False
        if o.price == d.price:
            return True
        if any(x.side == d.side and x.price == o.price for x in desired):
            return False
        return (min_sell is None or o.price < min_sell) if o.side == BUY else \
            (max_buy is None or o.price > max_buy)

    def best(i, used):
        if i == len(live):
            return 0
        res = best(i + 1, used)
        for j, d in enumerate(desired):
            if j not in used and ok(live[i], d):
                res = max(res, 1 + best(i + 1, used | {j}))
        return res

    return best(0, frozenset())


@st.composite
def small_cases(draw):
    def side(s, a, b, live):
        keys = draw(st.lists(st.tuples(st.integers(a, b), st.sampled_from([0, 1])),
                             unique=True, max_size=4))
        return [(lo if live else do)(s, t * TICK, draw(st.sampled_from([1, 2])), cf)
                for t, cf in keys]
    return (side(BUY, 190, 200, False), side(SELL, 201, 210, False),
            side(BUY, 190, 200, True) + side(SELL, 201, 210, True),
            draw(st.sampled_from([D(0), D("0.005"), D("0.01"), D("0.03")])))


@settings(max_examples=100, deadline=None)
@given(small_cases())
def test_matching_keeps_the_most_orders(case):
    buys, sells, live, relist = case
    p = plan_converge(buys, sells, live, relist, 100)
    assert len(p.keep) == _brute_max_keeps(buys, sells, live, relist)


def test_creates_go_first_only_within_the_open_order_limit():
    from decimal import Decimal as D
    from market_maker.converge import ordered_steps, plan_converge
    from market_maker.models import BUY, DesiredOrder, Order

    def live(i, price):
        return Order(order_id=str(i), client_oid=f"mm_{i}", side=BUY, close_flag=0, price=D(price), qty=10,
                     filled_qty=0, status=2)
    orders = [live(1, "100"), live(2, "99")]
    desired = [DesiredOrder(BUY, D("98"), 10), DesiredOrder(BUY, D("97"), 10)]
    plan = plan_converge(desired, [], orders, D(0), max_open=4)
    # room for both creates: quotes first, cancels after
    assert [s[0] for s in ordered_steps(plan, D("101"), D("102"), max_open=4)] == ["create", "create", "cancel"]
    # room for one: the innermost create, then the cancels, then the other
    steps = ordered_steps(plan, D("101"), D("102"), max_open=3)
    assert [s[0] for s in steps] == ["create", "cancel", "create"] and steps[0][1].price == D("98")
    # no room: cancels first
    assert [s[0] for s in ordered_steps(plan, D("101"), D("102"), max_open=2)] == ["cancel", "create", "create"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(95, 105), st.sampled_from([0, 1])),
                max_size=8),
       st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(95, 105), st.sampled_from([0, 1])),
                max_size=8))
def test_fast_blocking_check_equals_the_pairwise_rule(cancels, creates):
    from decimal import Decimal as D
    from market_maker.converge import _any_blocks, _blocks
    from market_maker.models import DesiredOrder, Order
    cancel_orders = [Order(str(i), f"mm_{i}", side, flag, D(price), 1, 0, 2)
                     for i, (side, price, flag) in enumerate(cancels)]
    create_orders = [DesiredOrder(side, D(price), 1, flag) for side, price, flag in creates]
    expected = any(_blocks(c, d) for c in cancel_orders for d in create_orders)
    assert _any_blocks(cancel_orders, create_orders) == expected


class LookAlike:
    """A desired order that is no DesiredOrder: plan_converge reads desired orders by their fields."""

    def __init__(self, side, price, qty, close_flag=0):
        self.side, self.price, self.qty, self.close_flag = side, price, qty, close_flag


class Tagged(DesiredOrder):
    """A DesiredOrder subclass (a strategy's own type)."""


@settings(max_examples=100, deadline=None)
@given(converge_cases())
def test_desired_orders_of_another_type_plan_the_same(case):
    buys, sells, live, relist, max_open = case
    expected = plan_converge(buys, sells, live, relist, max_open)
    for kind in (LookAlike, Tagged):
        other_buys = [kind(*d) for d in buys]
        other_sells = [kind(*d) for d in sells]
        got = plan_converge(other_buys, other_sells, live, relist, max_open)
        assert (got.keep, got.to_cancel, got.reason) == (expected.keep, expected.to_cancel, expected.reason)
        assert [(d.side, d.price, d.qty, d.close_flag) for d in got.to_create] == list(map(tuple, expected.to_create))


def test_a_look_alike_desired_order_is_checked_like_a_desired_order():
    with pytest.raises(ValueError, match="desired buy list holds a sell order"):
        plan([LookAlike(SELL, D(100), 1)], [], [])
    with pytest.raises(ValueError, match="invalid desired order"):
        plan([LookAlike(BUY, D(100), 0)], [], [])
