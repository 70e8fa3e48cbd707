"""The models' quote formulas against hand-computed values, and the shared ladder."""
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from market_maker.models import BUY, SELL, Book, DesiredOrder, Position, Positions
from market_maker.strategies import ladder
from market_maker.strategies.avellaneda import as_quote, time_left
from market_maker.strategies.glft import glft_quote, glft_terms


def test_as_quote_hand_computed():
    # risk = 0.1 * 2^2 * 0.5 = 0.2; r = 100 - 2 * 0.2 = 99.6
    # spread = 0.2 + (2 / 0.1) ln(1 + 0.1 / 1.5) = 0.2 + 20 * 0.0645385211 = 1.490770423
    quote = as_quote(mid=100.0, q=2, gamma=0.1, sigma=2.0, k=1.5, time_left=0.5)
    assert quote.reservation == pytest.approx(99.6)
    assert quote.spread == pytest.approx(1.490770423)
    assert quote.bid == pytest.approx(99.6 - 0.7453852115)
    assert quote.ask == pytest.approx(99.6 + 0.7453852115)
    assert quote.skew(100.0) == pytest.approx(-0.4)


def test_as_quote_at_the_horizon_is_symmetric_and_flat_inventory_centres_on_the_mid():
    end = as_quote(100.0, q=5, gamma=0.1, sigma=2.0, k=1.5, time_left=0.0)
    assert end.reservation == 100.0 and end.spread == pytest.approx(1.290770423)
    flat = as_quote(100.0, q=0, gamma=0.1, sigma=2.0, k=1.5, time_left=1.0)
    assert flat.reservation == 100.0 and flat.spread == pytest.approx(0.4 + 1.290770423)


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf])
def test_as_quote_refuses_a_missing_parameter(bad):
    for field in ("gamma", "sigma", "k"):
        args = dict(mid=100.0, q=0, gamma=0.1, sigma=2.0, k=1.5, time_left=1.0)
        args[field] = bad
        with pytest.raises(ValueError, match=field):
            as_quote(**args)


def test_time_left_restarts_with_the_horizon():
    assert time_left(now=1000.0, start=1000.0, horizon=60.0) == 60.0
    assert time_left(now=1045.0, start=1000.0, horizon=60.0) == 15.0
    assert time_left(now=1075.0, start=1000.0, horizon=60.0) == 45.0  # second horizon
    with pytest.raises(ValueError):
        time_left(1.0, 0.0, 0.0)


def test_glft_hand_computed():
    # c1 = ln(1 + 0.1/1.5) / 0.1 = 0.6453852114
    # c2 = sqrt(2^2 * 0.1 / (2 * 1.5 * 140) * (1 + 0.1/1.5)^(1 + 15)) = sqrt(0.000952381 * 2.808403966) = 0.0517172161
    c1, c2 = glft_terms(gamma=0.1, sigma=2.0, A=140.0, k=1.5)
    assert c1 == pytest.approx(0.6453852114)
    assert c2 == pytest.approx(0.0517172161)
    flat = glft_quote(100.0, q=0, gamma=0.1, sigma=2.0, A=140.0, k=1.5)
    assert flat.bid == pytest.approx(100 - 0.6453852114 - 0.0517172161 / 2)
    assert flat.ask == pytest.approx(100 + 0.6453852114 + 0.0517172161 / 2)
    long3 = glft_quote(100.0, q=3, gamma=0.1, sigma=2.0, A=140.0, k=1.5)
    assert long3.bid == pytest.approx(100 - (0.6453852114 + 3.5 * 0.0517172161))
    assert long3.ask == pytest.approx(100 + (0.6453852114 - 2.5 * 0.0517172161))
    assert long3.skew(100.0) == pytest.approx(-3 * 0.0517172161)
    assert long3.spread == pytest.approx(flat.spread)  # inventory moves the quotes, not the spread


@pytest.mark.parametrize("field", ["gamma", "sigma", "A", "k"])
def test_glft_refuses_zero_negative_nan(field):
    for bad in (0.0, -1.0, math.nan):
        args = dict(mid=100.0, q=0, gamma=0.1, sigma=2.0, A=140.0, k=1.5)
        args[field] = bad
        with pytest.raises(ValueError, match=field):
            glft_quote(**args)


def test_glft_large_k_over_gamma_does_not_overflow():
    c1, c2 = glft_terms(gamma=1e-6, sigma=1.0, A=1.0, k=100.0)
    assert math.isfinite(c1) and math.isfinite(c2)


PARAMS = ladder.LadderParams(order_pairs=3, start_size=100, step_size=50, spacing_ticks=2,
                             tick_size=Decimal("0.5"), inventory_limit=1000, post_only=True)
BOOK = Book(bids=((Decimal("9990"), 10),), asks=((Decimal("10010"), 10),))


def net(qty):
    if qty >= 0:
        return Positions(long=Position("long", qty=qty, avail_qty=qty))
    return Positions(short=Position("short", qty=-qty, avail_qty=-qty))


def test_ladder_snaps_on_the_safe_side_and_spaces_the_levels():
    buys, sells = ladder.build(9995.3, 10004.2, BOOK, (), net(0), PARAMS)
    assert buys == (DesiredOrder(BUY, Decimal("9995.0"), 100), DesiredOrder(BUY, Decimal("9994.0"), 150),
                    DesiredOrder(BUY, Decimal("9993.0"), 200))
    assert sells == (DesiredOrder(SELL, Decimal("10004.5"), 100), DesiredOrder(SELL, Decimal("10005.5"), 150),
                     DesiredOrder(SELL, Decimal("10006.5"), 200))


def test_ladder_stops_the_side_at_the_inventory_bound():
    # long 880 of 1000: 120 more contracts may be bought, the second level is cut to 20
    buys, sells = ladder.build(9995.0, 10005.0, BOOK, (), net(880), PARAMS)
    assert [o.qty for o in buys] == [100, 20]
    assert sum(o.qty for o in sells) == 450
    buys, _ = ladder.build(9995.0, 10005.0, BOOK, (), net(1000), PARAMS)
    assert buys == ()
    _, sells = ladder.build(9995.0, 10005.0, BOOK, (), net(-1000), PARAMS)
    assert sells == ()


def test_ladder_splits_close_and_open():
    _, sells = ladder.build(9995.0, 10005.0, BOOK, (), net(120), PARAMS)
    assert sells[0] == DesiredOrder(SELL, Decimal("10005.0"), 100, 1)
    assert sells[1] == DesiredOrder(SELL, Decimal("10006.0"), 20, 1)
    assert sells[2] == DesiredOrder(SELL, Decimal("10006.0"), 130, 0)
    assert len(sells) == 3  # the outermost level gave its slot to the split


def test_ladder_post_only_clamps_a_quote_through_the_book():
    # a strongly skewed bid above the best ask moves one tick behind it
    buys, _ = ladder.build(10020.0, 10030.0, BOOK, (), net(-500), PARAMS)
    assert buys[0].price == Decimal("10009.5")
    assert all(o.price < BOOK.best_ask for o in buys)
    unclamped = ladder.LadderParams(**{**PARAMS.__dict__, "post_only": False})
    buys, _ = ladder.build(10020.0, 10030.0, BOOK, (), net(-500), unclamped)
    assert buys[0].price == Decimal("10020.0")


def test_ladder_refuses_crossed_or_missing_quotes():
    with pytest.raises(ValueError):
        ladder.build(10005.0, 10005.0, BOOK, (), net(0), PARAMS)
    with pytest.raises(ValueError):
        ladder.build(math.nan, 10005.0, BOOK, (), net(0), PARAMS)


@hsettings(max_examples=200, deadline=None)
@given(mid=st.floats(9900, 10100), half=st.floats(0.01, 50), skew=st.floats(-60, 60),
       position=st.integers(-1000, 1000), pairs=st.integers(1, 6), spacing=st.integers(1, 5))
def test_ladder_invariants(mid, half, skew, position, pairs, spacing):
    params = ladder.LadderParams(order_pairs=pairs, start_size=100, step_size=50, spacing_ticks=spacing,
                                 tick_size=Decimal("0.5"), inventory_limit=1000, post_only=True)
    buys, sells = ladder.build(mid + skew - half, mid + skew + half, BOOK, (), net(position), params)
    assert len(buys) <= pairs and len(sells) <= pairs
    assert all(o.price % Decimal("0.5") == 0 and o.qty > 0 for o in buys + sells)
    assert all(o.price < BOOK.best_ask for o in buys) and all(o.price > BOOK.best_bid for o in sells)
    if buys and sells:
        assert max(o.price for o in buys) < min(o.price for o in sells)
    assert position + sum(o.qty for o in buys) <= 1000
    assert position - sum(o.qty for o in sells) >= -1000
    assert [o.price for o in buys] == sorted((o.price for o in buys), reverse=True)
    assert [o.price for o in sells] == sorted(o.price for o in sells)
