"""The order manager on the fake exchange (tests/fakes.py), for the tests of market_maker/market_maker.py."""
import time
from market_maker.gte.errors import RateLimited
from market_maker.market_maker import ExchangeInterface, OrderManager
from market_maker.settings import load_settings
from tests.fakes import FakeRest, FakeWs


def make(tmp_path, text="", **overrides):
    path = tmp_path / "settings.py"
    path.write_text(text)
    settings = load_settings(str(path), overrides=overrides, environ={})
    rest = FakeRest(settings.ORDERID_PREFIX)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws)
    return settings, rest, ws, exchange


def started(tmp_path, text="", **overrides):
    """``make``, then a started manager: ``(manager, settings, rest, ws, exchange)``."""
    settings, rest, ws, exchange = make(tmp_path, text, **overrides)
    manager = OrderManager(settings, exchange)
    manager.start()
    return manager, settings, rest, ws, exchange


class SimulatedClock:
    """A simulated clock, as a backtest passes: sleeping moves it, nothing waits; ``during_sleep``
    callbacks run once, at the next sleep (what happens at the exchange meanwhile)."""

    def __init__(self):
        self.now = time.time()
        self.during_sleep = []

    def time(self):
        return self.now

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        for happening in self.during_sleep:
            happening()
        self.during_sleep.clear()


def started_on_clock(tmp_path, text):
    """A started manager whose time is a ``SimulatedClock``, with fresh market data:
    ``(clock, rest, ws, exchange, manager)``."""
    clock = SimulatedClock()
    settings, rest, _, _ = make(tmp_path, text)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws, clock=clock)
    manager = OrderManager(settings, exchange)
    manager.start()
    ws.last_update_ms = int(clock.now * 1000)
    return clock, rest, ws, exchange, manager


def one_of_ours_fills(rest, ws):
    """What happens at the exchange: one of our resting orders fills, and the socket counts the fill."""
    order = next(iter(rest.orders.values()))
    del rest.orders[order.order_id]
    ws.stats["fills"] += 1


def open_orders_refused(rest, times):
    """The exchange refuses the next ``times`` open-order queries (-10053, a rate-limit burst); the list of
    refusals still to come (empty once all were given)."""
    left = [RateLimited(-10053, "too many requests")] * times
    real_open_orders = rest.open_orders

    def open_orders():
        if left:
            raise left.pop()
        return real_open_orders()
    rest.open_orders = open_orders
    return left
