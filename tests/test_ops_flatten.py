"""The flatten rule (market_maker/ops/flatten.py): pure, with a property over books and steps."""
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from market_maker.models import BUY, SELL
from market_maker.ops.flatten import closing_order, slippage_bounds

TICK = Decimal("0.5")


def test_a_long_is_sold_from_the_ask_down_one_step_at_a_time_to_the_bound():
    mid = Decimal("10000")
    low, high = slippage_bounds(mid, Decimal("0.001"), TICK)
    assert (low, high) == (Decimal("9990.0"), Decimal("10010.0"))
    first = closing_order(30, Decimal("9999.5"), Decimal("10000.5"), mid, 0, TICK, 2, Decimal("0.001"))
    assert first.side == SELL and first.price == Decimal("10000.5") and first.qty == 30 and first.close_flag == 1
    second = closing_order(30, Decimal("9999.5"), Decimal("10000.5"), mid, 1, TICK, 2, Decimal("0.001"))
    assert second.price == Decimal("9999.5")  # 2 ticks further: at the bid, taking it
    far = closing_order(30, Decimal("9999.5"), Decimal("10000.5"), mid, 100, TICK, 2, Decimal("0.001"))
    assert far.price == low


def test_a_short_is_bought_and_flat_needs_nothing():
    order = closing_order(-7, Decimal("99.5"), Decimal("100.5"), Decimal("100"), 0, TICK, 1, Decimal("0.01"))
    assert order.side == BUY and order.qty == 7 and order.price == Decimal("99.5") and order.close_flag == 1
    assert closing_order(0, Decimal("99.5"), Decimal("100.5"), Decimal("100"), 3, TICK, 1, Decimal("0.01")) is None


prices = st.integers(min_value=100, max_value=100_000).map(lambda t: t * TICK)


@settings(max_examples=100)
@given(net=st.integers(-10_000, 10_000).filter(bool), bid=prices, spread=st.integers(0, 50),
       mid_shift=st.integers(-500, 500), step=st.integers(0, 1000), step_ticks=st.integers(1, 20),
       slippage=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("0.1"), places=4))
def test_never_past_the_slippage_bound_on_the_tick_closing_exactly_the_net(net, bid, spread, mid_shift, step,
                                                                           step_ticks, slippage):
    ask = bid + spread * TICK
    mid = (bid + ask) / 2 + mid_shift * TICK  # the mid at the command: the book has moved since
    order = closing_order(net, bid, ask, mid, step, TICK, step_ticks, slippage)
    low, high = slippage_bounds(mid, slippage, TICK)
    assert order.qty == abs(net) and order.close_flag == 1
    assert order.price % TICK == 0
    if net > 0:
        assert order.side == SELL and order.price >= low
        assert order.price <= max(ask, low)  # joins the ask or goes further; waits at the bound if past it
    else:
        assert order.side == BUY and order.price <= high
        assert order.price >= min(bid, high)
