"""AvellanedaStoikov and GLFT as OrderManagers, on the in-memory fakes with a controlled clock."""
import dataclasses
import logging
from decimal import Decimal

import pytest

from market_maker.market_maker import ExchangeInterface
from market_maker.models import BUY, SELL, Book, Trade
from market_maker.settings import SettingsError, load_settings
from market_maker.strategies.avellaneda import AvellanedaStoikov, as_quote
from market_maker.strategies.glft import GLFT, glft_quote
from tests.fakes import FakeRest, FakeWs

BASE = ("ORDER_PAIRS = 3\nORDER_START_SIZE = 100\nORDER_STEP_SIZE = 0\nAPI_REST_INTERVAL = 0\n"
        "QUOTE_SPACING_TICKS = 2\nINVENTORY_LIMIT = 300\n")


class Clock:
    def __init__(self, t=1_000_000.0):
        self.t = t

    def time(self):
        return self.t

    def monotonic(self):
        return self.t

    def sleep(self, seconds):
        self.t += seconds


class TradingWs(FakeWs):
    """The fake socket plus a public trade tape, timestamped by the test's clock."""

    def __init__(self, rest, clock):
        super().__init__(rest, bid="9990", ask="10010")
        self.clock = clock
        self.trades = []

    def snapshot(self, depth=50, watch=()):
        self.last_update_ms = int(self.clock.time() * 1000)
        return dataclasses.replace(super().snapshot(depth, watch), recent_trades=tuple(self.trades[-200:]))


def make(tmp_path, cls, text=""):
    path = tmp_path / "settings.py"
    path.write_text(BASE + text)
    settings = load_settings(str(path), environ={})
    clock = Clock()
    rest = FakeRest(settings.ORDERID_PREFIX)
    ws = TradingWs(rest, clock)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws, clock=clock)
    manager = cls(settings, exchange)
    manager.start()
    return settings, rest, ws, clock, manager


def resting(rest, side):
    return sorted(((o.price, o.qty, o.close_flag) for o in rest.orders.values() if o.side == side),
                  reverse=side == BUY)


def test_glft_flat_quotes_symmetric_ladder_from_the_fallbacks(tmp_path):
    settings, rest, ws, clock, manager = make(tmp_path, GLFT)
    manager.step()
    sigma = 0.0025 * 10000  # VOL_FALLBACK relative -> USD per sqrt(s)
    expected = glft_quote(10000.0, 0, 0.02, sigma, 1.0, 0.1)
    assert manager.quote == expected
    buys, sells = resting(rest, BUY), resting(rest, SELL)
    assert len(buys) == 3 and len(sells) == 3
    # the optimal quotes are inside the touch here: the innermost sits there, snapped on the safe side
    assert buys[0][0] == Decimal(int(expected.bid * 2)) / 2
    assert [p for p, _, _ in buys] == [buys[0][0] - i for i in range(3)]
    assert 10000 - buys[0][0] == sells[0][0] - 10000


def test_glft_long_inventory_skews_down_and_the_bound_stops_the_buys(tmp_path):
    settings, rest, ws, clock, manager = make(tmp_path, GLFT)
    manager.step()
    flat = manager.quote
    ws.set_position("long", 200, "10000")
    clock.t += 1
    manager.step()
    assert manager.quote.reservation < flat.reservation and manager.quote.skew(10000.0) < 0
    assert manager.quote.ask < flat.ask
    assert sum(q for _, q, _ in resting(rest, BUY)) == 100  # 300 - 200
    sells = resting(rest, SELL)
    assert sells[0][2] == 1 and sum(q for _, q, c in sells if c == 1) == 200  # closes the long first


def test_as_uses_the_same_quote_function_and_the_horizon(tmp_path):
    settings, rest, ws, clock, manager = make(tmp_path, AvellanedaStoikov, "AS_HORIZON_S = 100\n")
    ws.set_position("short", 100, "10000")
    clock.t += 30
    manager.step()
    assert manager.quote == as_quote(10000.0, -1.0, 0.02, 25.0, 0.1, 70.0)
    clock.t += 100  # a new horizon: 70 s left again
    manager.step()
    assert manager.quote == as_quote(10000.0, -1.0, 0.02, 25.0, 0.1, 70.0)


def test_microprice_fair_value(tmp_path):
    settings, rest, ws, clock, manager = make(tmp_path, GLFT, 'FAIR_VALUE = "microprice"\n')
    ws.book = Book(bids=((Decimal("9990"), 30),), asks=((Decimal("10010"), 10),))
    manager.step()
    assert manager.fair == Decimal("10005")  # (9990 * 10 + 10010 * 30) / 40
    assert manager.quote.reservation == pytest.approx(10005.0)


def test_trades_feed_the_intensity_once_and_the_status_line_says_it(tmp_path, caplog):
    settings, rest, ws, clock, manager = make(tmp_path, GLFT, "INTENSITY_WINDOW_S = 10\nINTENSITY_BUCKET = 1\n")
    manager.step()
    for i in range(40):
        clock.t += 0.5
        ws.trades.append(Trade(BUY if i % 2 else SELL, Decimal(10000 + (i % 2 * 2 - 1) * (i % 7)), 1, i))
        manager.step()
        manager.step()  # the same tape again: nothing new
    times = [t for t, _ in manager.intensity._trades]
    assert len(times) == len(set(times)) == 21  # each trade once; the last 10 s of them (ends included)
    assert manager.intensity.fit() is not None
    caplog.set_level(logging.INFO, logger="market_maker.manager")
    manager.print_status()
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("GLFT:")][-1]
    for word in ("sigma", "A ", "k ", "reservation", "skew"):
        assert word in line


def test_a_strategy_never_quotes_on_a_missing_mid(tmp_path):
    settings, rest, ws, clock, manager = make(tmp_path, GLFT)
    manager.step()
    assert rest.orders
    ws.book = Book(bids=((Decimal("9990"), 10),), asks=())
    clock.t += 1
    manager.step()  # the grid's sanity check pauses and cancels
    assert not rest.orders


@pytest.mark.parametrize("text, name", [
    ("GLFT_GAMMA = 0\n", "GLFT_GAMMA"), ("AS_GAMMA = -0.5\n", "AS_GAMMA"),
    ("AS_HORIZON_S = float('nan')\n", "AS_HORIZON_S"), ("INTENSITY_K = 0\n", "INTENSITY_K"),
    ("INTENSITY_A = 'many'\n", "INTENSITY_A"), ("INVENTORY_LIMIT = 99\n", "INVENTORY_LIMIT"),
    ('FAIR_VALUE = "kraken:XBT"\n', "FAIR_VALUE"), ("VOL_BOUNDS = (0, 1)\n", "VOL_BOUNDS"),
])
def test_bad_strategy_settings_name_themselves(tmp_path, text, name):
    path = tmp_path / "settings.py"
    path.write_text(BASE + text)
    with pytest.raises(SettingsError, match=name):
        load_settings(str(path), environ={})
