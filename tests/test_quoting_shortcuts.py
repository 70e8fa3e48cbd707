"""The ladder's shortcuts against the plain computation they stand for (hypothesis).

``build_ladder`` skips ``clamp_post_only`` when a side's innermost level does not cross,
``start_positions`` multiplies by ``QuoteParams.spread_factors`` made once, and
``split_close_open`` builds its orders without the named tuple's ``__new__`` (and ``_split_side``
remembers its results), a grid price is one product in an unbounded context: each must give
what the straightforward pipeline gives, digit for digit (``repr`` shows a Decimal's exponent).
"""
from __future__ import annotations

import random
from decimal import Decimal as D
from decimal import Inexact, localcontext

from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.closing import split_close_open
from market_maker.levels import _EXACT
from market_maker.models import BUY, SELL, DesiredOrder
from market_maker.quoting import (Ladder, _split_side, apply_position_limits, build_ladder, clamp_post_only,
                                  close_capacity, level_prices, level_sizes, make_levels, snap_price, start_positions)
from tests.quoting_helpers import params
from tests.test_quoting_properties import scenarios


def plain_start_positions(book, own_orders, p):
    """start_positions as first written: the widening computed in a 60-digit local context."""
    bid, ask = book.best_bid, book.best_ask
    start_buy, start_sell = bid + p.tick_size, ask - p.tick_size
    if p.maintain_spreads:
        if any(o.price == bid and o.side == BUY and o.is_open for o in own_orders):
            start_buy = bid
        if any(o.price == ask and o.side == SELL and o.is_open for o in own_orders):
            start_sell = ask
    with localcontext() as ctx:
        ctx.prec = 60
        ms = p.min_spread
        if start_buy * (1 + ms) > start_sell:
            start_buy = start_buy * (1 - ms / 2)
            start_sell = start_sell * (1 + ms / 2)
    if start_buy >= start_sell and snap_price(start_buy, p.tick_size, BUY) >= snap_price(start_sell, p.tick_size, SELL):
        start_buy, start_sell = min(start_buy, bid), max(start_sell, ask)
    return start_buy, start_sell


def plain_split_close_open(orders, capacity):
    left, out = max(0, capacity), []
    for o in orders:
        close_qty = min(o.qty, left)
        left -= close_qty
        if close_qty:
            out.append(DesiredOrder(o.side, o.price, close_qty, 1))
        if o.qty - close_qty:
            out.append(DesiredOrder(o.side, o.price, o.qty - close_qty, 0))
    return tuple(out)


def plain_build_ladder(book, own_orders, positions, p, rng):
    """The pipeline of the quoting module's docstring, every step taken (clamp_post_only always)."""
    start_buy, start_sell = plain_start_positions(book, own_orders, p)
    buy_sizes, sell_sizes = level_sizes(p, rng), level_sizes(p, rng)
    buys = make_levels(BUY, level_prices(start_buy, BUY, p), buy_sizes)
    sells = make_levels(SELL, level_prices(start_sell, SELL, p), sell_sizes)
    buys, sells = apply_position_limits(buys, sells, positions, p)
    if p.post_only:
        buys, sells = clamp_post_only(buys, book, p.tick_size), clamp_post_only(sells, book, p.tick_size)
    buys = plain_split_close_open(buys, close_capacity(BUY, positions, own_orders))[:p.order_pairs]
    sells = plain_split_close_open(sells, close_capacity(SELL, positions, own_orders))[:p.order_pairs]
    return Ladder(buys=buys, sells=sells, start_buy=start_buy, start_sell=start_sell)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_build_ladder_equals_the_plain_pipeline(sc):
    book, own, positions, p, seed = sc
    assert repr(build_ladder(book, own, positions, p, random.Random(seed))) == \
        repr(plain_build_ladder(book, own, positions, p, random.Random(seed)))


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_start_positions_equal_the_plain_computation(sc):
    book, own, _, p, _ = sc
    assert repr(start_positions(book, own, p)) == repr(plain_start_positions(book, own, p))


@given(st.decimals(min_value=0, max_value=D("1.99"), allow_nan=False, allow_infinity=False))
def test_spread_factors_equal_the_plain_computation(min_spread):
    with localcontext() as ctx:
        ctx.prec = 60
        plain = (1 + min_spread, 1 - min_spread / 2, 1 + min_spread / 2)
    assert repr(params(min_spread=min_spread).spread_factors) == repr(plain)


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(-5, 500), st.sampled_from([0, 1]))),
       st.sampled_from([BUY, SELL]), st.integers(-100, 3000))
def test_split_close_open_equals_the_plain_computation(levels, side, capacity):
    orders = [DesiredOrder(side, D(ticks) / 2, qty, flag) for ticks, qty, flag in levels]
    got, plain = split_close_open(orders, capacity), plain_split_close_open(orders, capacity)
    assert repr(got) == repr(plain)
    assert all(type(o) is DesiredOrder for o in got)


@given(st.integers(-10**40, 10**40), st.sampled_from([D("0.5"), D("0.01"), D("1"), D("5"), D("0.25"), D("2.5E-7"),
                                                      D("1E+3"), D("0.50")]))
def test_a_grid_price_is_the_product_at_a_precision_that_holds_it(ticks, tick):
    # _grid_price's product (its memo is keyed by the tick's value: not looked at here)
    with localcontext() as ctx:
        ctx.prec = len(str(ticks)) + len(tick.as_tuple().digits) + 2
        ctx.traps[Inexact] = True
        plain = D(ticks) * tick
    assert repr(_EXACT.multiply(D(ticks), tick)) == repr(plain)


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 500)), max_size=8), st.sampled_from([BUY, SELL]),
       st.lists(st.integers(-5, 3000), min_size=1, max_size=4), st.integers(0, 8))
def test_split_side_remembers_nothing_but_the_result_of_the_same_levels(levels, side, capacities, pairs):
    orders = tuple(DesiredOrder(side, D(ticks) / 2, qty, 0) for ticks, qty in levels)
    copy = tuple(DesiredOrder(*o) for o in orders)  # equal, another object
    for capacity in capacities + capacities:
        plain = repr(plain_split_close_open(orders, capacity)[:pairs])
        assert repr(_split_side(orders, capacity, pairs)) == plain
        assert repr(_split_side(copy, capacity, pairs)) == plain
        assert repr(_split_side(list(orders), capacity, pairs)) == plain


def test_a_tick_spelled_two_ways_gives_each_spelling_its_own_grid_prices():
    """0.5 and 0.50 are equal, but their products print with one and two decimals: the remembered
    grid prices of one spelling must not be handed to the other."""
    for tick, decimals in ((D("0.5"), 1), (D("0.50"), 2), (D("0.5"), 1)):
        for side in (BUY, SELL):
            prices = level_prices(D("10000.3"), side, params(tick_size=tick))
            assert [-p.as_tuple().exponent for p in prices] == [decimals] * 3
