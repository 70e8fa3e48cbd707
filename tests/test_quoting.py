"""Tests for market_maker.quoting (pure ladder math), by example."""
from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal
from decimal import Decimal as D
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.models import BUY, SELL
from market_maker.quoting import (
    Ladder,
    NoMarket,
    QuoteParams,
    apply_position_limits,
    build_ladder,
    clamp_post_only,
    close_capacity,
    level_prices,
    level_sizes,
    make_levels,
    post_only_conflict,
    snap_price,
    split_close_open,
    start_positions,
)
from tests.quoting_helpers import book, do, order, params, pos, px


# ---------------------------------------------------------------- params

def test_from_settings_reads_uppercase_and_converts_exactly():
    s = SimpleNamespace(
        ORDER_PAIRS=6, ORDER_START_SIZE=100, ORDER_STEP_SIZE=50, RANDOM_ORDER_SIZE=False,
        MIN_ORDER_SIZE=10, MAX_ORDER_SIZE=20, INTERVAL=0.005, MIN_SPREAD="0.01",
        MAINTAIN_SPREADS=True, POST_ONLY=True, CHECK_POSITION_LIMITS=True,
        MIN_POSITION=-500, MAX_POSITION=500,
    )
    p = QuoteParams.from_settings(s, D("0.5"))
    assert p.order_pairs == 6 and p.order_step_size == 50
    assert p.interval == D("0.005") and isinstance(p.interval, D)
    assert p.min_spread == D("0.01") and p.tick_size == D("0.5")
    assert p.maintain_spreads and p.post_only and p.check_position_limits
    assert (p.min_position, p.max_position) == (-500, 500)


def test_params_validation():
    with pytest.raises(ValueError):
        params(tick_size=D(0))
    with pytest.raises(TypeError):
        params(interval=0.005)
    with pytest.raises(ValueError):
        params(random_order_size=True, min_order_size=10, max_order_size=5)


# ---------------------------------------------------------------- start positions

def test_start_one_tick_inside():
    assert start_positions(book(10000, 10002), (), params()) == (D("10000.5"), D("10001.5"))


def test_start_maintain_spreads_joins_own_best():
    own = [order(BUY, 10000), order(SELL, "10002.5")]
    p = params(maintain_spreads=True)
    assert start_positions(book(10000, 10002), own, p) == (D("10000"), D("10001.5"))
    # Own sell at the best ask: start at it.
    own = [order(SELL, 10002)]
    assert start_positions(book(10000, 10002), own, p) == (D("10000.5"), D("10002"))
    # Without maintain_spreads our own orders do not matter.
    assert start_positions(book(10000, 10002), own, params()) == (D("10000.5"), D("10001.5"))


def test_start_min_spread_widening():
    # 1-tick market: bid+tick = 100.5 = ask-tick, too close for 2%: widen by 1% each.
    p = params(min_spread=D("0.02"))
    assert start_positions(book(100, 101), (), p) == (D("99.495"), D("101.505"))
    # Wide market: no widening.
    assert start_positions(book(100, 110), (), p) == (D("100.5"), D("109.5"))


def test_start_zero_min_spread_on_tight_market_does_not_improve_touch():
    assert start_positions(book(100, 101), (), params()) == (D("100"), D("101"))
    assert start_positions(book(100, "100.5"), (), params()) == (D("100"), D("100.5"))


@pytest.mark.parametrize("bid,ask", [(None, 101), (100, None), (None, None), (101, 100), (100, 100)])
def test_start_no_market(bid, ask):
    with pytest.raises(NoMarket):
        start_positions(book(bid, ask), (), params())
    with pytest.raises(NoMarket):
        build_ladder(book(bid, ask), (), pos(), params())


# ---------------------------------------------------------------- levels

def test_snap_rounding_direction():
    t = D("0.5")
    assert snap_price(D("100.2"), t, BUY) == D("100")
    assert snap_price(D("100.2"), t, SELL) == D("100.5")
    assert snap_price(D("100.5"), t, BUY) == D("100.5") == snap_price(D("100.5"), t, SELL)


def test_level_prices_rounding_from_10000_5():
    p = params()
    # 10000.5/1.005 = 9950.746 -> 9950.5 ; /1.005^2 = 9901.240 -> 9901 ; /1.005^3 = 9851.980 -> 9851.5
    assert level_prices(D("10000.5"), BUY, p) == (D("9950.5"), D("9901"), D("9851.5"))
    # 10000.5*1.005 = 10050.5025 -> 10051 ; *1.005^2 = 10100.75 -> 10101 ; ...^3 = 10151.258 -> 10151.5
    assert level_prices(D("10000.5"), SELL, p) == (D("10051"), D("10101"), D("10151.5"))


def test_level_prices_exact_grid_values_are_not_rounded_away():
    p = params(order_pairs=1)
    # 100.5 / 1.005 == 100 exactly; must not become 99.5 by a rounding error.
    assert level_prices(D("100.5"), BUY, p) == (D("100"),)
    # 100 * 1.005 == 100.5 exactly; must not become 101.
    assert level_prices(D("100"), SELL, p) == (D("100.5"),)


def test_level_prices_maintain_spreads_starts_at_start():
    p = params(maintain_spreads=True)
    assert level_prices(D("10000"), BUY, p) == (D("10000"), D("9950"), D("9900.5"))
    assert level_prices(D("10001.5"), SELL, p) == (D("10001.5"), D("10052"), D("10102"))


def test_level_sizes_linear_and_random():
    assert level_sizes(params(order_pairs=4, order_start_size=10, order_step_size=5)) == (10, 15, 20, 25)
    p = params(order_pairs=20, random_order_size=True, min_order_size=7, max_order_size=9)
    sizes = level_sizes(p, random.Random(42))
    assert len(sizes) == 20 and all(7 <= s <= 9 for s in sizes) and len(set(sizes)) > 1
    assert sizes == level_sizes(p, random.Random(42))
    with pytest.raises(ValueError):
        level_sizes(p)


def test_make_levels_drops_duplicate_prices_keeping_first():
    p = params(tick_size=D("1"), interval=D("0.001"), maintain_spreads=True,
               order_start_size=100, order_step_size=10)
    prices = level_prices(D("100"), BUY, p)
    assert prices == (D("100"), D("99"), D("99"))  # 99.9 -> 99, 99.8 -> 99
    levels = make_levels(BUY, prices, level_sizes(p))
    assert levels == (do(BUY, 100, 100), do(BUY, 99, 110))
    sells = make_levels(SELL, level_prices(D("100"), SELL, p), level_sizes(p))
    assert sells == (do(SELL, 100, 100), do(SELL, 101, 110))


def test_make_levels_drops_nonpositive():
    assert make_levels(BUY, [D(1), D(0), D(-1)], [5, 5, 5]) == (do(BUY, 1, 5),)
    assert make_levels(SELL, [D(1), D(2)], [0, 3]) == (do(SELL, 2, 3),)


# ---------------------------------------------------------------- full ladders

def test_ladder_no_maintain_spreads():
    lad = build_ladder(book(10000, 10002), (), pos(), params())
    assert isinstance(lad, Ladder)
    assert (lad.start_buy, lad.start_sell) == (D("10000.5"), D("10001.5"))
    assert lad.buys == (do(BUY, "9950.5", 100), do(BUY, 9901, 200), do(BUY, "9851.5", 300))
    # 10001.5*1.005 = 10051.5075 -> 10052 ; *1.010025 = 10101.765 -> 10102 ; 10152.27 -> 10152.5
    assert lad.sells == (do(SELL, 10052, 100), do(SELL, 10102, 200), do(SELL, "10152.5", 300))
    assert lad.orders == lad.buys + lad.sells


def test_ladder_maintain_spreads_with_own_best_bid():
    lad = build_ladder(book(10000, 10002), [order(BUY, 10000)], pos(),
                       params(maintain_spreads=True))
    assert px(lad.buys) == [D("10000"), D("9950"), D("9900.5")]
    assert px(lad.sells) == [D("10001.5"), D("10052"), D("10102")]


def test_ladder_min_spread_widening():
    p = params(min_spread=D("0.02"), maintain_spreads=True, tick_size=D("0.5"), order_pairs=2)
    lad = build_ladder(book(100, 101), (), pos(), p)
    # starts 99.495 / 101.505 -> 99 / 102 ; next 99.495/1.005 = 99.0 -> 99 (dup, dropped)
    assert px(lad.buys) == [D("99")]
    # 101.505*1.005 = 102.0125 -> 102.5
    assert px(lad.sells) == [D("102"), D("102.5")]


def test_ladder_random_sizes_reproducible():
    p = params(order_pairs=5, random_order_size=True, min_order_size=10, max_order_size=99)
    a = build_ladder(book(10000, 10002), (), pos(), p, random.Random(7))
    b = build_ladder(book(10000, 10002), (), pos(), p, random.Random(7))
    assert a == b
    assert all(10 <= o.qty <= 99 for o in a.orders)


def test_ladder_zero_pairs():
    lad = build_ladder(book(100, 101), (), pos(), params(order_pairs=0))
    assert lad.buys == () and lad.sells == ()


# ---------------------------------------------------------------- position limits

def test_position_limits():
    buys, sells = (do(BUY, 99, 1),), (do(SELL, 101, 1),)
    p = params(check_position_limits=True, min_position=-10, max_position=10)
    assert apply_position_limits(buys, sells, pos(long_qty=10), p) == ((), sells)
    assert apply_position_limits(buys, sells, pos(long_qty=15, short_qty=10), p) == (buys, sells)
    assert apply_position_limits(buys, sells, pos(short_qty=10), p) == (buys, ())
    assert apply_position_limits(buys, sells, pos(long_qty=9), p) == (buys, sells)
    off = replace(p, check_position_limits=False)
    assert apply_position_limits(buys, sells, pos(long_qty=50), off) == (buys, sells)


def test_ladder_position_limit_no_buys():
    p = params(check_position_limits=True, min_position=-100, max_position=100)
    lad = build_ladder(book(10000, 10002), (), pos(long_qty=100), p)
    assert lad.buys == ()
    assert len(lad.sells) == 3


# ---------------------------------------------------------------- post-only

def test_clamp_post_only_moves_and_drops():
    b = book(100, 101)
    t = D("0.5")
    # 101.5 crosses -> 100.5 (free)
    assert clamp_post_only([do(BUY, "101.5", 1), do(BUY, 100, 2)], b, t) == (
        do(BUY, "100.5", 1), do(BUY, 100, 2))
    # 101.5 and 101 cross; first moves to 100.5, the second collides and is dropped
    assert clamp_post_only([do(BUY, "101.5", 1), do(BUY, 101, 2), do(BUY, 100, 3)], b, t) == (
        do(BUY, "100.5", 1), do(BUY, 100, 3))
    # collision with an existing non-crossing level: dropped
    assert clamp_post_only([do(BUY, 101, 1), do(BUY, "100.5", 2)], b, t) == (do(BUY, "100.5", 2),)
    # sells: at/below the best bid -> bid + tick
    assert clamp_post_only([do(SELL, 100, 1), do(SELL, 102, 2)], b, t) == (
        do(SELL, "100.5", 1), do(SELL, 102, 2))
    assert clamp_post_only([do(SELL, 99, 1), do(SELL, "100.5", 2)], b, t) == (do(SELL, "100.5", 2),)
    # nothing crossing: unchanged
    assert clamp_post_only([do(BUY, "100.5", 1)], b, t) == (do(BUY, "100.5", 1),)


def test_post_only_conflict_against_the_book_now():
    b = book(100, 101)
    assert post_only_conflict(do(BUY, "100.5", 1), b) is None
    assert post_only_conflict(do(BUY, 101, 1), b) == "it would take the best ask 101"
    assert post_only_conflict(do(SELL, "100.5", 1), b) is None
    assert post_only_conflict(do(SELL, 100, 1), b) == "it would take the best bid 100"
    # an empty opposite side: nothing to check against, so nothing goes out on that side
    assert post_only_conflict(do(BUY, 50, 1), book(100, None)) == "the book has no ask"
    assert post_only_conflict(do(SELL, 500, 1), book(None, 101)) == "the book has no bid"
    assert post_only_conflict(do(BUY, 50, 1), book(None, 101)) is None


# ---------------------------------------------------------------- close / open split

def test_close_capacity_counts_own_resting_close_orders():
    own = [order(SELL, 101, qty=100, close_flag=1, filled=40),  # 60 remaining
           order(SELL, 102, qty=100, close_flag=0),              # open: ignored
           order(BUY, 99, qty=30, close_flag=1),                 # other side
           order(SELL, 103, qty=50, close_flag=1, status=8)]     # final: ignored
    assert close_capacity(SELL, pos(long_qty=300, long_avail=50), own) == 110
    assert close_capacity(BUY, pos(short_qty=100, short_avail=70), own) == 100
    assert close_capacity(SELL, pos(long_qty=80, long_avail=50), own) == 80  # capped at qty
    assert close_capacity(SELL, pos(), ()) == 0


def test_close_capacity_leaves_the_quantity_of_a_pending_cancel_locked():
    # long 300: a close sell of 100 whose cancel is pending and an active one of 150 lock 250
    own = [order(SELL, 101, qty=100, close_flag=1, status=4), order(SELL, 102, qty=150, close_flag=1)]
    assert close_capacity(SELL, pos(long_qty=300, long_avail=50), own) == 200
    # the position row has not caught up with the active order yet: still 200, never 350
    assert close_capacity(SELL, pos(long_qty=300, long_avail=200), own) == 200


@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 16]), st.integers(1, 50)), max_size=8),
       st.integers(0, 100))
def test_close_capacity_never_exceeds_what_the_exchange_lets_close(closes, spare):
    """Against an exchange whose avail_qty is qty minus every open close order: new closes may
    take avail_qty plus what the active (re-planned, cancelled first) orders free, never more."""
    own = [order(SELL, 101 + i, qty=q, close_flag=1, status=status) for i, (status, q) in enumerate(closes)]
    locked = sum(q for _, q in closes)
    qty = locked + spare
    pending = sum(q for status, q in closes if status == 4)
    assert close_capacity(SELL, pos(long_qty=qty, long_avail=spare), own) == qty - pending


def test_split_close_open():
    levels = (do(SELL, 101, 100), do(SELL, 102, 100), do(SELL, 103, 100))
    assert split_close_open(levels, 0) == levels
    assert split_close_open(levels, 150) == (
        do(SELL, 101, 100, 1), do(SELL, 102, 50, 1), do(SELL, 102, 50, 0), do(SELL, 103, 100, 0))
    assert split_close_open(levels, 200) == (
        do(SELL, 101, 100, 1), do(SELL, 102, 100, 1), do(SELL, 103, 100, 0))
    assert split_close_open(levels, 1000) == tuple(o._replace(close_flag=1) for o in levels)


def test_ladder_no_position_all_open():
    lad = build_ladder(book(10000, 10002), (), pos(), params())
    assert all(o.close_flag == 0 for o in lad.orders)


def test_ladder_partial_long_avail_and_own_close_orders():
    own = [order(SELL, 10052, qty=100, close_flag=1, filled=30)]  # 70 remaining, locked
    positions = pos(long_qty=500, long_avail=80, short_qty=120, short_avail=120)
    lad = build_ladder(book(10000, 10002), own, positions, params())
    # sell capacity 80 + 70 = 150: level 1 (100) close, level 2 split 50/150; the split
    # costs the outermost level (a side never holds more than order_pairs orders)
    assert lad.sells == (do(SELL, 10052, 100, 1), do(SELL, 10102, 50, 1),
                         do(SELL, 10102, 150, 0))
    # buy capacity 120: level 1 close, level 2 split 20/180, level 3 dropped
    assert lad.buys == (do(BUY, "9950.5", 100, 1), do(BUY, 9901, 20, 1),
                        do(BUY, 9901, 180, 0))


def test_a_split_level_never_makes_a_side_longer_than_order_pairs():
    from market_maker.models import Book, Position, Positions
    from market_maker.quoting import QuoteParams, build_ladder
    params = QuoteParams(order_pairs=3, order_start_size=100, order_step_size=0, random_order_size=False,
                         min_order_size=1, max_order_size=1, interval=Decimal("0.01"), min_spread=Decimal(0),
                         maintain_spreads=True, post_only=True, check_position_limits=False,
                         min_position=-10**6, max_position=10**6, tick_size=Decimal("0.5"))
    book = Book(bids=((Decimal("9999.5"), 5),), asks=((Decimal("10000.5"), 5),))
    long = Position("long", qty=150, avail_qty=150)
    ladder = build_ladder(book, [], Positions(long=long), params)
    assert len(ladder.sells) == 3 and len(ladder.buys) == 3
    # 150 closable: level 1 closes 100, level 2 splits 50 close + 50 open, level 3 is dropped
    assert [(o.qty, o.close_flag) for o in ladder.sells] == [(100, 1), (50, 1), (50, 0)]


# ---------------------------------------------------------------- per-side level memo
def test_side_levels_memo_follows_every_input():
    """build_ladder reuses a side's levels only while start, sizes and params are unchanged."""
    from market_maker.quoting import _side_levels

    p = params(order_pairs=4)
    first = _side_levels(SELL, D("100.5"), p.fixed_sizes, p)
    assert _side_levels(SELL, D("100.5"), p.fixed_sizes, p) is first  # unchanged side: reused
    assert first == make_levels(SELL, level_prices(D("100.5"), SELL, p), p.fixed_sizes)
    for start, sizes, q in [(D("101"), p.fixed_sizes, p),  # the side moved
                            (D("100.5"), (7, 8, 9, 10), p),  # other sizes
                            (D("100.5"), p.fixed_sizes, params(order_pairs=4, interval=D("0.01"))),  # other params
                            (D("100.50"), p.fixed_sizes, params(order_pairs=4, tick_size=D("0.50")))]:
        assert _side_levels(SELL, start, sizes, q) == make_levels(SELL, level_prices(start, SELL, q), sizes)
    # equal params, other object: recomputed (params are compared by identity)
    same = params(order_pairs=4)
    assert _side_levels(SELL, D("100.5"), same.fixed_sizes, same) is not first
    # a start equal in value but with another exponent is recomputed: the exponent can shape the prices
    q = params(order_pairs=2, interval=D("0"), maintain_spreads=True, tick_size=D("0.5"))
    plain = _side_levels(BUY, D("100"), q.fixed_sizes, q)
    wide = _side_levels(BUY, D("100.00"), q.fixed_sizes, q)
    assert [str(d.price) for d in wide] == [str(d.price) for d in make_levels(
        BUY, level_prices(D("100.00"), BUY, q), q.fixed_sizes)]
    assert plain == wide
    # buys and sells are remembered separately
    assert _side_levels(BUY, D("99.5"), p.fixed_sizes, p) == make_levels(BUY, level_prices(D("99.5"), BUY, p),
                                                                        p.fixed_sizes)
    assert _side_levels(SELL, D("100.5"), same.fixed_sizes, same) == first


def test_build_ladder_after_a_one_sided_move_matches_a_fresh_computation():
    p = params(order_pairs=5, post_only=True)
    for bid, ask in [(100, 101), (100.5, 101), (100, 101), (99.5, 101.5), (99.5, 101.5)]:
        ladder = build_ladder(book(bid, ask), [], pos(), p)
        start_buy, start_sell = start_positions(book(bid, ask), [], p)
        assert ladder.buys == make_levels(BUY, level_prices(start_buy, BUY, p), p.fixed_sizes)
        assert ladder.sells == make_levels(SELL, level_prices(start_sell, SELL, p), p.fixed_sizes)
