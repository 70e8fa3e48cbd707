"""Two bots with the same ORDERID_PREFIX on one account: detected, one stops, nothing left behind."""
import io
import logging
import threading
import time
from decimal import Decimal

from market_maker.cli import build_runner
from market_maker.runner import EXIT_ERROR, EXIT_OK
from market_maker.settings import load_settings
from market_maker.sim import SimConfig, run_simulator

LIVELY = dict(volatility=Decimal("0.0005"), taker_rate=Decimal("1"), depth_levels=20, level_step_ticks=2)
SETTINGS = {"ORDER_PAIRS": 3, "ORDER_START_SIZE": 10, "ORDER_STEP_SIZE": 10, "INTERVAL": Decimal("0.002"),
            "MIN_SPREAD": Decimal("0.002"), "LOOP_INTERVAL": 1, "API_REST_INTERVAL": 0.1}


def test_a_second_bot_with_our_prefix_is_detected_and_the_first_stops(tmp_path):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("market_maker").addHandler(handler)
    try:
        with run_simulator(SimConfig(port=0, seed=4, **LIVELY)) as sim:
            settings = load_settings(overrides={"BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key,
                                                "API_SECRET": sim.api_secret, **SETTINGS}, environ={}, cwd=tmp_path)
            first = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=120)
            second = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=120)
            results = {}
            a = threading.Thread(target=lambda: results.setdefault("first", first.run()))
            a.start()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not sim.call(lambda ex: ex.open_orders_of(sim.account_id)):
                time.sleep(0.1)
            # the first bot's window for late leftovers is over: a newcomer's orders can only be another bot's
            time.sleep(8)
            b = threading.Thread(target=lambda: results.setdefault("second", second.run()))
            b.start()
            # each bot sees the other's orders; usually the first stops, but the second may see the first's
            # requotes (after its start-up cancelled the first's orders as leftovers) as early and stop too
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not results:
                time.sleep(0.1)
            assert EXIT_ERROR in results.values()
            first.stop()
            second.stop()
            a.join(60)
            b.join(60)
            assert not a.is_alive() and not b.is_alive()
            assert set(results.values()) <= {EXIT_OK, EXIT_ERROR}
            left = sim.call(lambda ex: ex.open_orders_of(sim.account_id))
    finally:
        logging.getLogger("market_maker").removeHandler(handler)
    assert left == []
    text = stream.getvalue()
    assert "another bot is trading with this prefix" in text
    assert first.exchange.run_tag != second.exchange.run_tag
