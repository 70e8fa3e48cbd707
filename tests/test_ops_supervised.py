"""Under the multi-symbol supervisor each bot gets its own control and metrics port; one reads Telegram."""
from market_maker.ops.supervisor import Supervisor, child_ops_settings
from market_maker.settings import load_settings


def test_each_bot_its_own_ports_and_one_telegram_reader(tmp_path):
    settings = load_settings(overrides={"CONTROL_ADDRESS": "0.0.0.0:8765", "METRICS_ADDRESS": "[::1]:9108",
                                        "CONTROL_TELEGRAM_CHATS": [42]}, environ={}, cwd=tmp_path)
    assert child_ops_settings(settings, 0) == {}
    assert child_ops_settings(settings, 2) == {"CONTROL_ADDRESS": "0.0.0.0:8767", "METRICS_ADDRESS": "[::1]:9110",
                                               "CONTROL_TELEGRAM_CHATS": []}
    for name, value in child_ops_settings(settings, 2).items():  # what the bot reads back from --set
        assert load_settings(overrides={name: value}, environ={}, cwd=tmp_path)[name] is not None
    supervisor = Supervisor(settings, {"BTC_USD": "BTC", "ETH_USD": "BTC"}, "http://127.0.0.1:9", "ws://127.0.0.1:9",
                            None, None)
    first, second = (supervisor._command(child) for child in supervisor.children)
    assert "CONTROL_ADDRESS='0.0.0.0:8766'" in second and "METRICS_ADDRESS='[::1]:9109'" in second
    assert "CONTROL_TELEGRAM_CHATS=[]" in second
    assert not any(arg.startswith(("CONTROL_", "METRICS_")) for arg in first)


def test_any_free_port_and_off_stay_as_they_are(tmp_path):
    settings = load_settings(overrides={"METRICS_ADDRESS": "127.0.0.1:0"}, environ={}, cwd=tmp_path)
    assert child_ops_settings(settings, 3) == {}
