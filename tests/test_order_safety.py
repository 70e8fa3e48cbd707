"""Order safety at the manager level: creates in doubt, cancels beyond the batch, with exchange-like fakes."""
from decimal import Decimal

import pytest

from market_maker.gte.ratelimit import RateLimiter
from market_maker.market_maker import ExchangeInterface, OrderManager
from market_maker.models import BUY, SELL, Book, Order
from market_maker.settings import load_settings
from tests.fakes import FakeRest, FakeWs

NEVER = 10 ** 15  # a settle time that will not come during the test
PAST = 0  # a settle time that has come


def make(tmp_path, text="ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n"):
    path = tmp_path / "settings.py"
    path.write_text(text)
    settings = load_settings(str(path), environ={})
    rest = FakeRest(settings.ORDERID_PREFIX)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws)
    manager = OrderManager(settings, exchange)
    manager.start()
    return rest, ws, exchange, manager


def creates(rest):
    return [c for c in rest.calls if c[0] == "create"]


def test_a_create_in_doubt_holds_its_level_and_is_never_sent_twice(tmp_path):
    rest, ws, exchange, manager = make(tmp_path)
    rest.doubt = [NEVER]  # the innermost buy: no answer, not found
    manager.step()
    assert len(creates(rest)) == 6 and len(rest.orders) == 5
    (client_oid,) = rest.in_flight
    for _ in range(3):  # while it may still execute, its level counts as quoted
        manager.step()
    assert len(creates(rest)) == 6
    assert any(o.client_oid == client_oid and not o.order_id for o in exchange.own_open_orders(manager.snap))
    rest.land(client_oid)  # it executes late; the socket shows it: one order at that level, not two
    manager.step()
    assert len(creates(rest)) == 6 and len(rest.orders) == 6
    assert exchange.tracker.doubtful == 0


def test_a_create_in_doubt_that_never_executed_is_forgotten_once_it_settles(tmp_path):
    rest, ws, exchange, manager = make(tmp_path)
    rest.doubt = [NEVER]
    manager.step()
    (client_oid,) = rest.in_flight
    manager.step()
    assert ("lookup", client_oid) not in rest.calls  # not before its moment
    exchange.tracker.postpone(client_oid, PAST)  # its api-expires (plus the grace) has passed
    del rest.in_flight[client_oid]  # and it never reached the book
    manager.step()  # looked up, not found: forgotten, and the level is quoted again
    assert ("lookup", client_oid) in rest.calls
    assert len(creates(rest)) == 7 and len(rest.orders) == 6
    assert exchange.tracker.doubtful == 0


def test_an_abandoned_create_keeps_its_slot_and_is_cancelled_when_it_turns_up(tmp_path):
    rest, ws, exchange, manager = make(tmp_path)
    rest.doubt = [NEVER]
    manager.step()
    (client_oid,) = rest.in_flight
    ws.book = Book(bids=((Decimal("10199.5"), 10),), asks=((Decimal("10200.5"), 10),))  # a 2 % move
    manager.step()  # the ladder moves: the in-doubt buy is abandoned, the rest replaced
    assert exchange.tracker.abandoned == 1
    # it may still execute: the ladder leaves its slot free (one order short of 6)
    assert len(rest.orders) == 5
    rest.land(client_oid)
    assert len(rest.orders) == 6  # never more than 2 x ORDER_PAIRS at the exchange
    exchange.tracker.postpone(client_oid, PAST)
    manager.step()  # settled: found open, so cancelled; the ladder is complete again
    assert all(o.client_oid != client_oid for o in rest.orders.values())
    assert len(rest.orders) == 6 and exchange.tracker.doubtful == 0


def test_the_exit_waits_for_creates_in_doubt_and_cancels_them(tmp_path):
    rest, ws, exchange, manager = make(tmp_path)
    rest.doubt = [NEVER]
    manager.step()
    (client_oid,) = rest.in_flight
    rest.land(client_oid)
    exchange.tracker.postpone(client_oid, PAST)
    manager.exit_cancel_timeout, manager.exit_retry_wait = 5, 0.01
    manager.exit()
    assert not rest.orders and exchange.tracker.doubtful == 0


class FrozenClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class LimitedRest(FakeRest):
    """Single cancels go through a real rate limiter that must never make the caller wait."""

    def __init__(self, prefix, clock):
        super().__init__(prefix)

        def no_sleep(seconds):
            raise AssertionError(f"the manager blocked {seconds:.2f}s on the cancel rate limit")
        self.rate_limiter = RateLimiter(clock=clock, sleep=no_sleep)

    def cancel_order(self, order_id):
        self.rate_limiter.acquire("pc/order/cancel")
        return super().cancel_order(order_id)

    def cancel_batch(self, order_ids):
        assert len(order_ids) <= 50
        self.rate_limiter.acquire("pc/order/cancel_batch")
        return super().cancel_batch(order_ids)


def test_cancelling_more_than_a_batch_never_blocks_and_defers_the_rest(tmp_path):
    path = tmp_path / "settings.py"
    path.write_text("ORDER_PAIRS = 50\nAPI_REST_INTERVAL = 0\n")
    settings = load_settings(str(path), environ={})
    clock = FrozenClock()
    rest = LimitedRest(settings.ORDERID_PREFIX, clock)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=FakeWs(rest))
    orders = [rest.create_order(BUY if i % 2 else SELL, Decimal(9000 + i), 10) for i in range(100)]
    deferred = exchange.cancel_orders(orders)
    assert ("cancel_batch", tuple(o.order_id for o in orders[:50])) in rest.calls
    singles = rest.count("cancel")
    assert singles == 19 and deferred == 100 - 50 - 19  # 20 a second, one kept in reserve
    assert len(rest.orders) == deferred
    assert 0 < exchange._next_due() <= 1.05  # the loop wakes when the limit allows more
    clock.now += 1.1
    left = [o for o in orders if o.order_id in rest.orders]
    assert exchange.cancel_orders(left, allow_batch=False) == deferred - 19
    assert exchange.cancel_orders([o for o in orders if o.order_id in rest.orders], allow_batch=False) > 0
    clock.now += 1.1
    assert exchange.cancel_orders([o for o in orders if o.order_id in rest.orders], allow_batch=False) == 0
    assert not rest.orders


def test_creates_that_wait_for_deferred_cancels_are_not_sent(tmp_path):
    path = tmp_path / "settings.py"
    path.write_text("ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    settings = load_settings(str(path), environ={})
    rest = FakeRest(settings.ORDERID_PREFIX)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws)
    manager = OrderManager(settings, exchange)
    manager.start()
    manager.step()
    exchange.cancel_orders = lambda orders, allow_batch=True, block=False: len(orders)  # all deferred
    ws.book = Book(bids=((Decimal("10499.5"), 10),), asks=((Decimal("10500.5"), 10),))  # our sells now cross
    before = len(creates(rest))
    manager.step()  # the cancels must go first (our new buys would hit our old sells): nothing is created
    assert len(creates(rest)) == before


@pytest.mark.parametrize("status", [1, 2, 16])
def test_placeholder_orders_are_open_orders_without_an_id(status):
    o = Order(order_id="", client_oid="mm_x", side=BUY, close_flag=0, price=Decimal(1), qty=1, filled_qty=0,
              status=status)
    assert o.is_open and o.is_active


def test_an_order_with_our_prefix_and_another_runs_tag_stops_the_bot(tmp_path):
    from market_maker.market_maker import AnotherInstance
    rest, ws, exchange, manager = make(tmp_path)
    manager.step()
    assert all(o.client_oid.startswith(exchange.prefix + exchange.run_tag) for o in rest.orders.values())
    # an earlier run's create executing late, right after our start: taken over and cancelled
    late = rest.create_order(BUY, Decimal("9000"), 7, client_oid=exchange.prefix + "aaaaaa" + "1" * 20)
    manager.step()
    assert late.order_id not in rest.orders and len(rest.orders) == 6
    # later than any earlier run's create could execute: another bot is using our prefix
    exchange._run_started -= 60
    other = rest.create_order(BUY, Decimal("9000"), 7, client_oid=exchange.prefix + "bbbbbb" + "2" * 20)
    with pytest.raises(AnotherInstance, match="another bot is trading with this prefix"):
        manager.step()
    manager.exit_cancel_timeout, manager.exit_retry_wait = 5, 0.01
    manager.exit()  # cancels this run's orders, never the other bot's
    assert list(rest.orders) == [other.order_id]


def test_no_order_is_created_where_a_create_given_up_may_still_execute(tmp_path):
    # soak finding: a create in doubt at 10145 (225) was replaced by 175 @ 10145 when the ladder's sizes
    # changed; the first one then executed late: two own orders at one level until the next rebuild
    rest, ws, exchange, manager = make(tmp_path)
    rest.doubt = [NEVER]
    manager.step()
    (client_oid,) = rest.in_flight
    doubtful = rest.in_flight[client_oid]
    manager.settings = manager.settings.replace(ORDER_START_SIZE=150)  # same prices, other sizes
    manager._params = None
    manager.step()
    at_level = [o for o in rest.orders.values() if (o.side, o.price) == (doubtful.side, doubtful.price)]
    assert at_level == [] and exchange.tracker.abandoned == 1  # the level waits for the one in doubt
    rest.land(client_oid)
    levels = [(o.side, o.price, o.close_flag) for o in rest.orders.values()]
    assert len(levels) == len(set(levels))  # never two own orders at one level
    exchange.tracker.postpone(client_oid, PAST)
    manager.step()  # it turned up: cancelled; the level is quoted at its new size
    manager.step()
    at_level = [o for o in rest.orders.values() if (o.side, o.price) == (doubtful.side, doubtful.price)]
    assert [o.qty for o in at_level] == [150] and exchange.tracker.doubtful == 0


def test_an_order_table_that_missed_a_final_update_is_found_by_the_audit_and_resynced(tmp_path):
    # soak finding: the last message of a quiet table (an order's final update) was dropped: sequence
    # numbers cannot tell until the table's next message, and the bot saw a filled order as resting
    rest, ws, exchange, manager = make(tmp_path)
    ws.lagging = True
    manager.step()
    ws.echo()
    manager.step()
    filled = next(iter(rest.orders.values()))
    ws.lost[filled.order_id] = filled
    ws.gone.add(filled.order_id)
    del rest.orders[filled.order_id]  # filled at the exchange; its final update never reached us
    exchange.tracker = type(exchange.tracker)()  # nothing of ours in flight
    exchange._audit_at = 0
    manager.step()
    assert ws.resyncs == []  # once could be an echo on its way: checked again a second later
    exchange._audit_at = 0
    manager.step()
    assert [t for t, _ in ws.resyncs] == ["order"]
    assert filled.order_id not in {o.order_id for o in exchange.snapshot().orders}


def test_the_audit_leaves_orders_of_requests_in_flight_alone(tmp_path):
    rest, ws, exchange, manager = make(tmp_path)
    ws.lagging = True  # nothing echoed: every order is a create of ours the socket has not shown yet
    manager.step()
    for _ in range(3):
        exchange._audit_at = 0
        manager.step()
    assert ws.resyncs == []
