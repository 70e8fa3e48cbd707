"""Properties of market_maker.quoting over generated markets (hypothesis), and the Decimal ladder against
an exact rational reference."""
from __future__ import annotations

import math as _math
import random
from decimal import Decimal
from decimal import Decimal as D
from fractions import Fraction as _Fraction

from hypothesis import given, settings
from hypothesis import given as _given, settings as _settings, strategies as _st
from hypothesis import strategies as st

from market_maker.models import BUY, SELL, Book
from market_maker.quoting import build_ladder, close_capacity
from tests.quoting_helpers import order, params, pos, px


TICKS = [D("0.5"), D("1"), D("0.01"), D("5")]


@st.composite
def scenarios(draw):
    tick = draw(st.sampled_from(TICKS))
    bid_ticks = draw(st.integers(1, 2_000_000))
    spread = draw(st.integers(1, 40))
    bid = bid_ticks * tick
    ask = (bid_ticks + spread) * tick
    p = params(
        order_pairs=draw(st.integers(0, 8)),
        order_start_size=draw(st.integers(1, 200)),
        order_step_size=draw(st.integers(-20, 200)),
        random_order_size=draw(st.booleans()),
        min_order_size=1, max_order_size=draw(st.integers(1, 300)),
        interval=draw(st.sampled_from([D(0), D("0.0001"), D("0.001"), D("0.005"), D("0.02")])),
        min_spread=draw(st.sampled_from([D(0), D("0.0001"), D("0.001"), D("0.01"), D("0.1")])),
        maintain_spreads=draw(st.booleans()),
        post_only=draw(st.booleans()),
        check_position_limits=draw(st.booleans()),
        min_position=-draw(st.integers(0, 500)), max_position=draw(st.integers(0, 500)),
        tick_size=tick,
    )
    own = []
    if draw(st.booleans()):
        own.append(order(BUY, bid, qty=draw(st.integers(1, 50)), close_flag=draw(st.sampled_from([0, 1]))))
    if draw(st.booleans()):
        own.append(order(SELL, ask, qty=draw(st.integers(1, 50)), close_flag=draw(st.sampled_from([0, 1]))))
    lq, sq = draw(st.integers(0, 600)), draw(st.integers(0, 600))
    positions = pos(lq, draw(st.integers(0, lq)), sq, draw(st.integers(0, sq)))
    b = Book(bids=((bid, 1),), asks=((ask, 1),))
    return b, own, positions, p, draw(st.integers(0, 10**6))


def _check_side(orders, side):
    better = (lambda a, b: a > b) if side == BUY else (lambda a, b: a < b)
    for a, b in zip(orders, orders[1:]):
        assert a.side == side
        if a.price == b.price:  # only a close/open split pair, close part first
            assert (a.close_flag, b.close_flag) == (1, 0)
        else:
            assert better(a.price, b.price)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_ladder_properties(sc):
    b, own, positions, p, seed = sc
    lad = build_ladder(b, own, positions, p, random.Random(seed))
    for o in lad.orders:
        assert o.price > 0 and o.qty > 0 and isinstance(o.qty, int)
        assert (o.price / p.tick_size) % 1 == 0, o
    _check_side(lad.buys, BUY)
    _check_side(lad.sells, SELL)
    assert all(o.side == BUY for o in lad.buys) and all(o.side == SELL for o in lad.sells)
    if lad.buys and lad.sells:
        assert max(px(lad.buys)) < min(px(lad.sells))
    # never improve on the intended price: buys below the opposite touch when post-only
    if p.post_only:
        assert all(o.price < b.best_ask for o in lad.buys)
        assert all(o.price > b.best_bid for o in lad.sells)
    keys = [(o.side, o.price, o.close_flag) for o in lad.orders]
    assert len(keys) == len(set(keys))
    assert sum(o.qty for o in lad.sells if o.close_flag) <= close_capacity(SELL, positions, own)
    assert sum(o.qty for o in lad.buys if o.close_flag) <= close_capacity(BUY, positions, own)
    if p.check_position_limits and positions.net >= p.max_position:
        assert lad.buys == ()
    if p.check_position_limits and positions.net <= p.min_position:
        assert lad.sells == ()


# --- the Decimal ladder equals an exact rational reference ------------------------------------------------------------
@_settings(max_examples=200, deadline=None)
@_given(start_ticks=_st.integers(1, 2_000_000), tick=_st.sampled_from(["0.5", "0.01", "1", "0.25", "5"]),
        interval=_st.sampled_from(["0.005", "0.001", "0.0025", "0.01", "0.1", "0.00123"]),
        pairs=_st.integers(1, 40), maintain=_st.booleans(), side=_st.sampled_from(["buy", "sell"]))
def test_level_prices_match_exact_rational_reference(start_ticks, tick, interval, pairs, maintain, side):
    from market_maker.quoting import QuoteParams, level_prices
    tick, interval = Decimal(tick), Decimal(interval)
    start = start_ticks * tick
    params = QuoteParams(order_pairs=pairs, order_start_size=1, order_step_size=0, random_order_size=False,
                         min_order_size=1, max_order_size=1, interval=interval, min_spread=Decimal(0),
                         maintain_spreads=maintain, post_only=False, check_position_limits=False,
                         min_position=-1, max_position=1, tick_size=tick)
    offset = 0 if maintain else 1
    sign = -1 if side == "buy" else 1
    expected = []
    for i in range(1, pairs + 1):
        exact = _Fraction(start) * (1 + _Fraction(interval)) ** (sign * (i - 1 + offset)) / _Fraction(tick)
        n = _math.floor(exact) if side == "buy" else _math.ceil(exact)
        expected.append(n * tick)
    assert list(level_prices(start, side, params)) == expected
