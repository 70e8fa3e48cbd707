from decimal import Decimal

from market_maker.models import BUY, Order
from market_maker.tracker import OrderTracker


def order(order_id, status=2):
    return Order(order_id=order_id, client_oid="mm_" + order_id, side=BUY, close_flag=0, price=Decimal("100"),
                 qty=10, filled_qty=0, status=status)


def test_created_order_is_live_until_the_socket_reports_it():
    t = OrderTracker(ttl_ms=5000)
    t.created(order("1"), now_ms=1000)
    assert [o.order_id for o in t.merge([], set(), 1100)] == ["1"]
    # the socket has now heard of it (even if it already filled): the overlay steps aside
    assert t.merge([], {"1"}, 1200) == []
    assert t.pending == 0


def test_created_order_expires_after_ttl():
    t = OrderTracker(ttl_ms=5000)
    t.created(order("1"), now_ms=1000)
    assert t.merge([], set(), 7000) == []


def test_cancelled_order_is_hidden_while_the_socket_lags():
    t = OrderTracker(ttl_ms=5000)
    t.cancelled(["1"], now_ms=1000)
    assert t.merge([order("1"), order("2")], {"1", "2"}, 1500) == [order("2")]
    # after the ttl the socket wins again (the cancel may have been lost)
    assert t.merge([order("1")], {"1"}, 7000) == [order("1")]


def test_no_duplicate_when_both_views_have_the_order():
    t = OrderTracker()
    t.created(order("1"), now_ms=1000)
    assert len(t.merge([order("1")], set(), 1001)) == 1


def test_forget_all():
    t = OrderTracker()
    t.created(order("1"), 1)
    t.cancelled(["2"], 1)
    t.forget_all()
    assert t.pending == 0



def test_cancelled_again_is_remembered_from_the_latest_cancel():
    t = OrderTracker(ttl_ms=5000)
    t.cancelled(["1", "2"], now_ms=1000)
    t.cancelled(["1"], now_ms=4000)  # cancelled again (e.g. a retry): hidden until 9000
    assert t.merge([order("1"), order("2")], set(), 6500) == [order("2")]
    assert t.pending == 1
    assert t.merge([order("1"), order("2")], set(), 9001) == [order("1"), order("2")]
    assert t.pending == 0
