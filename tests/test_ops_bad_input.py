"""Bad operations settings stop the bot at start with exit status 2, naming the setting."""
import socket

import pytest

from market_maker.cli import run_bot
from market_maker.runner import EXIT_SETTINGS
from market_maker.sim import SimConfig, run_simulator
from tests.ops_helpers import settings_for


@pytest.fixture
def sim():
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        yield sim


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


@pytest.mark.parametrize("setting, env, named", [
    ({"CONTROL_ADDRESS": "127.0.0.1:0"}, {}, "CONTROL_ADDRESS needs the environment variable MM_CONTROL_TOKEN"),
    ({"CONTROL_ADDRESS": "127.0.0.1:0"}, {"MM_CONTROL_TOKEN": "too-short"}, "of at least 16 characters"),
    ({"NOTIFY_URLS": ["discord://"]}, {}, "MM_DISCORD_WEBHOOK"),
    ({"NOTIFY_URLS": ["telegram://42"]}, {}, "MM_TELEGRAM_TOKEN"),
    ({"CONTROL_TELEGRAM_CHATS": [42]}, {}, "CONTROL_TELEGRAM_CHATS: Telegram needs the bot token"),
    ({"CONTROL_ADDRESS": "busy"}, {"MM_CONTROL_TOKEN": "a" * 16}, "CONTROL_ADDRESS = '127.0.0.1:"),
    ({"METRICS_ADDRESS": "busy"}, {}, "METRICS_ADDRESS = '127.0.0.1:"),
])
def test_exit_2_naming_the_setting(sim, busy_port, tmp_path, monkeypatch, capsys, setting, env, named):
    for name in ("MM_CONTROL_TOKEN", "MM_DISCORD_WEBHOOK", "MM_TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    setting = {k: (f"127.0.0.1:{busy_port}" if v == "busy" else v) for k, v in setting.items()}
    settings = settings_for(sim, tmp_path, **setting)
    assert run_bot(settings, duration=5, install_signals=False) == EXIT_SETTINGS
    err = capsys.readouterr().err
    assert named in err and "too-short" not in err
    assert sim.call(lambda ex: ex.open_orders_of(sim.account_id)) == []  # stopped before trading


def test_malformed_urls_and_addresses_are_settings_errors(tmp_path):
    from market_maker.settings import SettingsError, load_settings
    for bad in ({"NOTIFY_URLS": ["discord:/x"]}, {"NOTIFY_URLS": "https://one.example"},
                {"NOTIFY_URLS": ["ftp://x.example"]}, {"NOTIFY_URLS": ["telegram://abc"]},
                {"CONTROL_ADDRESS": "localhost"}, {"METRICS_ADDRESS": "1.2.3.4:70000"},
                {"CONTROL_TELEGRAM_CHATS": ["42"]}, {"FLATTEN_SLIPPAGE": "0.5"}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            load_settings(overrides=bad, environ={}, cwd=tmp_path)
