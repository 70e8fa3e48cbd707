"""The as-model market on the simulator's exchange: the paper's fill probability for a resting order."""
import math
from decimal import Decimal

import pytest

from market_maker.backtest import market as markets
from market_maker.backtest.as_market import ASMarket
from market_maker.backtest.as_model import ASModel
from market_maker.sim.market import ExchangeConfig, InstrumentSpec
from market_maker.sim.exchange import Exchange

TICK = Decimal("0.01")


def exchange():
    spec = InstrumentSpec(tick_size=TICK, price_precision=2)
    return Exchange(ExchangeConfig(instruments=(spec,), start_price=Decimal(100)))


def test_an_order_resting_delta_away_fills_at_the_papers_rate():
    ex = exchange()
    market = ASMarket(lot=1, tick=TICK, seed=3)
    market.attach(ex, "BTC_USD", 0)
    bot = ex.open_account("bot", Decimal(100))
    delta, steps, fills = 0.5, 1200, 0
    now = market.next_ms()
    for _ in range(steps):
        # one ask delta above the mid, replaced after each step (the paper's quote, one lot)
        price = (Decimal(repr(market.s + delta)) / TICK).to_integral_value() * TICK
        row = ex.place_order(bot, "BTC_USD", 0, 0, price, 1, None, now)
        market.step(now)
        if row["order_id"] in ex.open_order_ids(bot):
            ex.cancel_order(bot, "BTC_USD", row["order_id"], now)
        else:
            fills += 1
        now = market.next_ms()
    model = ASModel()
    expected = model.A * math.exp(-model.k * delta) * model.dt * steps  # about 397
    assert fills == pytest.approx(expected, rel=0.15)
    assert market.step_ms == 300  # dt = 0.005 of a one-minute T


def test_the_book_is_centred_on_the_mid_and_follows_it():
    ex = exchange()
    market = ASMarket(lot=1, tick=TICK, seed=1)
    market.attach(ex, "BTC_USD", 0)
    for i in range(50):
        market.step(market.next_ms())
        bid, ask = ex.best_prices("BTC_USD")
        assert abs(float(bid + ask) / 2 - market.s) <= 0.01
        assert float(ask - bid) == pytest.approx(10, abs=0.02)


def test_registered_and_refuses_a_file(tmp_path):
    from market_maker.settings import load_settings
    settings = load_settings(None, overrides={"SIM_START_PRICE": Decimal(100), "SIM_TICK_SIZE": TICK}, environ={})
    assert isinstance(markets.build("as-model", settings), ASMarket)
    with pytest.raises(markets.MarketError):
        markets.build("as-model", settings, "some.csv")


def paper_settings(spec):
    from market_maker.settings import load_settings
    a, k = Decimal(140) / 60, Decimal("1.5")
    return load_settings(None, environ={}, overrides=dict(
        SIM_START_PRICE=Decimal(100), SIM_TICK_SIZE=TICK, ORDER_PAIRS=1, ORDER_START_SIZE=1, ORDER_STEP_SIZE=0,
        INVENTORY_LIMIT=1000, RELIST_INTERVAL=Decimal(0), AS_GAMMA=Decimal("0.1"), AS_HORIZON_S=60,
        INTENSITY_A=a, INTENSITY_K=k, INTENSITY_A_BOUNDS=(a, a), INTENSITY_K_BOUNDS=(k, k),
        VOL_FALLBACK=Decimal("0.0026"), STRATEGY=spec))


def test_avellaneda_stoikov_through_the_backtester_on_the_papers_market():
    from market_maker.backtest.engine import run_backtest
    from market_maker.strategies.avellaneda import AvellanedaStoikov
    settings = paper_settings("market_maker.strategies.avellaneda:AvellanedaStoikov")
    result = run_backtest(settings, AvellanedaStoikov, markets.build("as-model", settings), seed=2, hours=1 / 60)
    # the paper's strategy fills about 90 times per T (one minute here), every fill as maker
    assert 50 <= result.fills <= 130 and result.maker_fills == result.fills
    # earning the spread: about 0.65 USD per T per contract of face value, ~0.0065 BTC at 100
    assert result.net_pnl > 0
