"""The real bot against the local simulator over loopback sockets."""
import io
import logging
import threading
from decimal import Decimal

import pytest

from market_maker.gte import signing
from market_maker.gte.errors import DryRunRefused
from market_maker.cli import build_runner
from market_maker.runner import EXIT_ERROR, EXIT_OK
from market_maker.models import BUY
from market_maker.settings import load_settings
from market_maker.sim import SimConfig, run_simulator
from tests.waiting import wait_until as wait_for

LIVELY = dict(volatility=Decimal("0.001"), taker_rate=Decimal("4"), taker_mean_qty=Decimal("200"),
              depth_levels=30, level_step_ticks=2)
TIGHT = {"ORDER_PAIRS": 4, "ORDER_START_SIZE": 50, "ORDER_STEP_SIZE": 50, "INTERVAL": Decimal("0.001"),
         "MIN_SPREAD": Decimal("0.0005"), "RELIST_INTERVAL": Decimal("0.001"), "LOOP_INTERVAL": 2,
         "API_REST_INTERVAL": 0.1}


def settings_for(sim, tmp_path, **extra):
    overrides = {"BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key,
                 "API_SECRET": sim.api_secret, **TIGHT, **extra}
    return load_settings(overrides=overrides, environ={}, cwd=tmp_path)


@pytest.fixture
def debug_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
def signatures(monkeypatch):
    seen = []

    def recording(fn):
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            seen.append(result)
            return result
        return wrapper
    for name in ("rest_signature", "ws_signature"):
        monkeypatch.setattr(signing, name, recording(getattr(signing, name)))
    return seen


def test_bot_quotes_gets_fills_and_leaves_nothing_behind(tmp_path, debug_log, signatures):
    with run_simulator(SimConfig(port=0, seed=7, **LIVELY)) as sim:
        settings = settings_for(sim, tmp_path, LOG_LEVEL="DEBUG")
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=20)
        peak, agreed = [], []

        def legs(ex):
            rows = ex.position_rows(sim.account_id)
            return (next(int(p["qty"]) for p in rows if p["side"] == "1"),
                    next(int(p["qty"]) for p in rows if p["side"] == "0"))

        def watch(stop):
            while not stop.wait(0.2):
                peak.append(sim.call(lambda ex: len(ex.open_orders_of(sim.account_id))))
                # the bot's view of its positions catches up with the exchange's (pushes are asynchronous:
                # compare at quiet moments, not at one instant that may fall between a fill and its push)
                view = runner.exchange.snapshot().positions
                if any(legs_at) and sim.call(legs) == (view.long.qty, view.short.qty) == legs_at[-1]:
                    agreed.append(legs_at[-1])
                legs_at.append(sim.call(legs))
        legs_at = [(0, 0)]
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(stop,))
        watcher.start()
        try:
            assert runner.run() == EXIT_OK
        finally:
            stop.set()
            watcher.join()
        snap = runner.exchange.snapshot()
        open_at_exchange = sim.call(lambda ex: ex.open_orders_of(sim.account_id))
    assert open_at_exchange == []
    assert max(peak) > 0 and max(peak) <= 2 * settings.ORDER_PAIRS
    assert snap.contracts_traded > 0 and snap.fill_count > 0
    assert any(a != (0, 0) for a in agreed)  # the bot saw a non-flat position as the exchange had it
    # the whole DEBUG session never shows the secret nor any signature
    text = debug_log.getvalue()
    assert "Creating buy order" in text and signatures
    assert sim.api_secret not in text
    assert not [s for s in set(signatures) if s in text]


def test_dry_run_never_reaches_an_order_endpoint(tmp_path):
    with run_simulator(SimConfig(port=0, seed=3)) as sim:
        settings = settings_for(sim, tmp_path, DRY_RUN=True)
        assert settings.API_SECRET is None
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, settings.API_SECRET, duration=3)
        assert runner.run() == EXIT_OK
        # even a strategy calling the exchange directly is refused before anything is sent
        with pytest.raises(DryRunRefused):
            runner.exchange.rest.create_order(BUY, Decimal("9000"), 1)
        with pytest.raises(DryRunRefused):
            runner.exchange.rest.cancel_batch(["1", "2"])
        ever = sim.call(lambda ex: ex.query_orders(sim.account_id, None, None, None, None, None, 100))
    assert ever == []
    assert runner.exchange.rest.stats.requests.get("pc/order/create", 0) == 0


def test_wrong_secret_stops_with_an_authentication_error(tmp_path, caplog):
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, API_SECRET="not-the-secret")
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, "not-the-secret", duration=10)
        before = threading.active_count()
        assert runner.run() == EXIT_ERROR  # a refusal is no fault to wait out: one line, exit 1
        assert threading.active_count() <= before  # the socket thread is gone too
    refused = [r.getMessage() for r in caplog.records if "Authentication failed" in r.getMessage()]
    assert len(refused) == 1 and "Waiting for the exchange" not in caplog.text


def test_reload_with_a_new_leverage_sets_it_at_the_exchange(tmp_path, monkeypatch):
    for name in ("GTE_API_KEY", "GTE_API_SECRET", "MM_SETTINGS"):
        monkeypatch.delenv(name, raising=False)
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        path = tmp_path / "settings.py"
        base = (f"BASE_URL = {sim.base_url!r}\nWS_URL = {sim.ws_url!r}\nAPI_KEY = {sim.api_key!r}\n"
                f"API_SECRET = {sim.api_secret!r}\n")
        path.write_text(base + "LEVERAGE = 10\n")
        settings = load_settings(str(path), environ={})
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret,
                              settings_path=str(path))
        runner.exchange.connect()
        try:
            runner.manager.start(fresh=True)
            assert runner.exchange.rest.setting()["cross_leverage"] == 10
            path.write_text(base + "LEVERAGE = 5\n")
            assert runner.reload() is True
            assert runner.exchange.rest.setting()["cross_leverage"] == 5  # what setting_query reports
        finally:
            runner.exchange.close()


def test_bot_pauses_and_cancels_when_the_book_feed_freezes_while_pongs_arrive(tmp_path):
    # review finding: the stale-data check read the time of the last message of any kind, so pongs (and
    # the periodic instrument push) kept a frozen book "fresh" and the bot quoted blind
    with run_simulator(SimConfig(port=0, seed=7, **LIVELY)) as sim:
        settings = settings_for(sim, tmp_path, STALE_DATA_SECONDS=2, WS_PING_INTERVAL=0.2, LOOP_INTERVAL=0.5)
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=120)
        codes = []
        thread = threading.Thread(target=lambda: codes.append(runner.run()))
        thread.start()

        def own_open():
            return len(sim.call(lambda ex: ex.open_orders_of(sim.account_id)))

        def freeze(ex):  # the exchange stops pushing the book and the trades; pongs, instrument, orders go on
            for session in sim.hub.sessions:
                real = session.push
                session.push = lambda faults, table, *rest, real=real: \
                    None if table in ("order_book", "trade") else real(faults, table, *rest)
        try:
            assert wait_for(lambda: own_open() > 0, 30)
            sim.call(freeze)
            pongs = runner.exchange.ws.stats.get("pongs", 0)
            assert wait_for(lambda: runner.manager.paused == "market data is stale", 30)
            assert wait_for(lambda: own_open() == 0, 15)
            assert runner.exchange.ws.stats.get("pongs", 0) > pongs and runner.exchange.connected
            assert runner.exchange.ws.stats.get("reconnects", 0) == 0
        finally:
            runner.stop()
            thread.join(30)
    assert codes == [EXIT_OK]
