"""Hot reload of the settings and the strategy: what it applies, what it refuses, what it keeps."""
import logging
import sys
from decimal import Decimal

import pytest

from market_maker.market_maker import ExchangeInterface, OrderManager
from market_maker.runner import Runner
from market_maker.settings import load_settings
from tests.fakes import FakeRest, FakeWs
from tests.manager_helpers import make, open_orders_refused


def test_hot_reload_rejects_bad_settings_and_applies_good_ones(tmp_path, caplog):
    settings, rest, ws, exchange = make(tmp_path, "ORDER_PAIRS = 2\nAPI_REST_INTERVAL = 0\n")
    path = tmp_path / "settings.py"
    runner = Runner(settings, exchange, OrderManager, settings_path=str(path))
    runner.manager.start()
    runner.manager.step()
    assert len(rest.orders) == 4
    path.write_text("ORDER_PAIRS = 0\nAPI_REST_INTERVAL = 0\n")
    assert runner.reload() is False
    assert runner.settings.ORDER_PAIRS == 2 and "Reload rejected" in caplog.text and "ORDER_PAIRS" in caplog.text
    path.write_text("ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    assert runner.reload() is True
    runner.manager.step()
    assert runner.settings.ORDER_PAIRS == 3 and len(rest.orders) == 6
    # the old orders were kept where they still fit: no cancel-all rebuild
    assert rest.count("cancel_batch") + rest.count("cancel") <= 2


def test_hot_reload_watches_the_settings_file(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "ORDER_PAIRS = 2\n")
    runner = Runner(settings, exchange, OrderManager, settings_path=str(tmp_path / "settings.py"))
    assert runner.watcher.changed() == []
    (tmp_path / "settings.py").write_text("ORDER_PAIRS = 3\n# changed\n")
    assert runner.watcher.changed() == [tmp_path / "settings.py"]


def test_reload_refuses_connection_changes(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "SYMBOL = 'BTC_USD'\n")
    runner = Runner(settings, exchange, OrderManager, settings_path=str(tmp_path / "settings.py"))
    (tmp_path / "settings.py").write_text("SYMBOL = 'ETH_USD'\n")
    assert runner.reload() is False


def reload_runner(tmp_path, text):
    settings, rest, ws, exchange = make(tmp_path, text)
    runner = Runner(settings, exchange, OrderManager, settings_path=str(tmp_path / "settings.py"))
    runner.manager.start()
    rest.calls.clear()
    return runner, rest, ws


def test_reload_applies_a_new_leverage_through_the_leverage_endpoint(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="market_maker")
    runner, rest, ws = reload_runner(tmp_path, "API_REST_INTERVAL = 0\nLEVERAGE = 10\n")
    (tmp_path / "settings.py").write_text("API_REST_INTERVAL = 0\nLEVERAGE = 5\n")
    assert runner.reload() is True
    assert [c for c in rest.calls if c[0] == "leverage"] == [("leverage", Decimal(5), 1, None)]
    assert runner.settings.LEVERAGE == 5 and "Leverage changed to 5 (applied)" in caplog.text
    (tmp_path / "settings.py").write_text("API_REST_INTERVAL = 0\nLEVERAGE = 5\nORDER_PAIRS = 2\n")
    assert runner.reload() is True
    assert rest.count("leverage") == 1  # unchanged: not sent again


def test_reload_with_a_leverage_the_exchange_refuses_is_rejected(tmp_path, caplog):
    from market_maker.gte.errors import InsufficientMargin
    runner, rest, ws = reload_runner(tmp_path, "API_REST_INTERVAL = 0\nMARGIN_MODE = 'isolated'\n")
    old_manager = runner.manager
    real = rest.change_leverage

    def change_leverage(leverage, mode, long_flag=None):
        real(leverage, mode, long_flag)
        if leverage == 2 and long_flag == 0:  # the long leg went through, the short one is refused
            raise InsufficientMargin(-20008, "insufficient margin for leverage")
    rest.change_leverage = change_leverage
    (tmp_path / "settings.py").write_text("API_REST_INTERVAL = 0\nMARGIN_MODE = 'isolated'\nLEVERAGE = 2\n")
    assert runner.reload() is False
    assert runner.settings.LEVERAGE == 10 and runner.manager is old_manager
    assert "Reload rejected" in caplog.text and "leverage 2" in caplog.text
    # the leg that changed is set back: the exchange agrees with the settings kept
    assert [c for c in rest.calls if c[0] == "leverage"] == [
        ("leverage", Decimal(2), 2, 1), ("leverage", Decimal(2), 2, 0),
        ("leverage", Decimal(10), 2, 1), ("leverage", Decimal(10), 2, 0)]


def test_reload_refuses_a_margin_mode_change(tmp_path, caplog):
    runner, rest, ws = reload_runner(tmp_path, "API_REST_INTERVAL = 0\n")
    (tmp_path / "settings.py").write_text("API_REST_INTERVAL = 0\nMARGIN_MODE = 'isolated'\nLEVERAGE = 5\n")
    assert runner.reload() is False
    assert runner.settings.MARGIN_MODE == "cross" and rest.count("leverage") == 0
    assert "changing MARGIN_MODE needs a restart" in caplog.text


def test_reloaded_manager_keeps_the_pause_the_owed_cancel_and_the_pacing(tmp_path, caplog):
    runner, rest, ws = reload_runner(tmp_path, "API_REST_INTERVAL = 0\n")
    runner.manager.step()
    assert rest.orders
    open_orders_refused(rest, 1)
    ws.connected = False
    runner.manager.step()  # pauses; its cancel-all fails and is owed
    old = runner.manager
    assert old.paused == "WebSocket down" and old._cancel_owed and rest.orders
    old._last_send = 12345.0
    (tmp_path / "settings.py").write_text("API_REST_INTERVAL = 0\nORDER_PAIRS = 3\n")
    assert runner.reload() is True and runner.manager is not old
    new = runner.manager
    assert (new.paused, new._cancel_owed, new._last_send) == ("WebSocket down", True, 12345.0)
    new.step()  # the owed cancel goes through; the pause is not announced again
    assert not rest.orders and caplog.text.count("Pausing") == 1


STRATEGY_OK = """
from market_maker.market_maker import OrderManager

class Strategy(OrderManager):
    pass
"""


@pytest.mark.parametrize("code, said", [
    ("import sys\nsys.exit(0)\n", "it called sys.exit(0)"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("raise SystemExit(3)\n", "it called sys.exit(3)"),
    ("1 / 0\n", "ZeroDivisionError: division by zero"),
])
def test_a_strategy_reload_that_would_exit_is_rejected_and_the_bot_keeps_running(tmp_path, monkeypatch, caplog,
                                                                                    code, said):
    module = f"reload_strategy_{abs(hash(code))}"
    (tmp_path / f"{module}.py").write_text(STRATEGY_OK)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    runner, rest, ws = reload_runner(tmp_path, f"API_REST_INTERVAL = 0\nSTRATEGY = '{module}:Strategy'\n")
    old_manager = runner.manager
    (tmp_path / f"{module}.py").write_text(STRATEGY_OK + code)
    assert runner.reload() is False
    assert runner.manager is old_manager
    message = [r.getMessage() for r in caplog.records if "Reload rejected" in r.getMessage()]
    assert len(message) == 1 and said in message[0] and f"{module}.py" in message[0], message
    runner.manager.step()  # still quoting
    assert rest.count("create") == 2 * runner.settings.ORDER_PAIRS


@pytest.mark.parametrize("text, said", [
    ("import sys\nsys.exit(0)\n", "the file called sys.exit(0)"),
    ("raise KeyboardInterrupt\n", "the file raised KeyboardInterrupt"),
])
def test_a_settings_reload_that_would_exit_is_rejected(tmp_path, caplog, text, said):
    runner, rest, ws = reload_runner(tmp_path, "API_REST_INTERVAL = 0\n")
    old_manager = runner.manager
    (tmp_path / "settings.py").write_text(text)
    assert runner.reload() is False
    assert runner.manager is old_manager and said in caplog.text


def test_a_reload_keeps_the_secret_taken_out_of_the_environment(tmp_path, monkeypatch):
    """GTE_API_SECRET is no longer in os.environ once loaded: the runner hands it to every reload."""
    monkeypatch.delenv("GTE_API_SECRET", raising=False)
    path = tmp_path / "settings.py"
    path.write_text("BASE_URL = 'http://127.0.0.1:1'\nWS_URL = 'ws://127.0.0.1:1/ws'\nAPI_KEY = 'k1'\n")
    env_secret = {"GTE_API_SECRET": "env-s3cr3t"}
    settings = load_settings(str(path), environ=env_secret)
    rest = FakeRest(settings.ORDERID_PREFIX)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "k1", "env-s3cr3t", rest=rest, ws=FakeWs(rest))
    runner = Runner(settings, exchange, OrderManager, settings_path=str(path), env_secret=env_secret)
    path.write_text(path.read_text() + "ORDER_PAIRS = 3\n")
    assert runner.reload() is True
    assert runner.settings.API_SECRET == "env-s3cr3t" and runner.settings.ORDER_PAIRS == 3
