import logging
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from market_maker.log import setup_logging
from market_maker.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, text, name="settings.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path, text=None, environ=None, **kw):
    path = write(tmp_path, text) if text is not None else None
    return load_settings(str(path) if path else None, environ=environ or {}, cwd=tmp_path, **kw)


def test_no_settings_file_gives_defaults_and_simulator(tmp_path):
    s = load(tmp_path)
    assert s.source is None
    assert s.ORDER_PAIRS == 6
    assert s.INTERVAL == Decimal("0.005")
    assert s.use_simulator


def test_good_file_overrides_and_converts_numbers(tmp_path):
    s = load(tmp_path, "ORDER_PAIRS = 3\nINTERVAL = 0.01\nMIN_SPREAD = '0.02'\nlower_case_helper = 5\n")
    assert s.ORDER_PAIRS == 3
    assert s.INTERVAL == Decimal("0.01") and isinstance(s.INTERVAL, Decimal)
    assert s.MIN_SPREAD == Decimal("0.02")
    assert "lower_case_helper" not in s


def test_settings_py_in_current_directory_is_found(tmp_path):
    write(tmp_path, "ORDER_PAIRS = 2\n")
    assert load_settings(environ={}, cwd=tmp_path).ORDER_PAIRS == 2


def test_mm_settings_env_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, "ORDER_PAIRS = 4\n", "custom.py")
    monkeypatch.setenv("MM_SETTINGS", str(path))
    assert load_settings(environ={}, cwd=tmp_path).ORDER_PAIRS == 4


def test_settings_are_immutable(tmp_path):
    s = load(tmp_path)
    with pytest.raises(AttributeError):
        s.ORDER_PAIRS = 3
    assert s.replace(ORDER_PAIRS=3).ORDER_PAIRS == 3 and s.ORDER_PAIRS == 6


@pytest.mark.parametrize("line, setting, allowed", [
    ("ORDER_PAIRS = 0", "ORDER_PAIRS", "1 to 50"),
    ("ORDER_PAIRS = 2.5", "ORDER_PAIRS", "whole number"),
    ("ORDER_PAIRS = True", "ORDER_PAIRS", "whole number"),
    ("INTERVAL = 1", "INTERVAL", "strictly between 0 and 1"),
    ("INTERVAL = 0", "INTERVAL", "strictly between 0 and 1"),
    ("INTERVAL = 'abc'", "INTERVAL", "strictly between 0 and 1"),
    ("ORDERID_PREFIX = 'this_prefix_is_too_long'", "ORDERID_PREFIX", "1 to 13 characters"),
    ("ORDERID_PREFIX = 'bad prefix'", "ORDERID_PREFIX", "1 to 13 characters"),
    ("POST_ONLY = 'yes'", "POST_ONLY", "True or False"),
    ("LOG_LEVEL = 'LOUD'", "LOG_LEVEL", "DEBUG INFO WARNING ERROR CRITICAL"),
    ("LEVERAGE = 101", "LEVERAGE", "1 to 100"),
    ("LEVERAGE = '10.001'", "LEVERAGE", "2 decimals"),
    ("MARGIN_MODE = 'hedge'", "MARGIN_MODE", '"cross" or "isolated"'),
    ("SYMBOL = 'btcusd'", "SYMBOL", "BTC_USD"),
    ("BASE_URL = 'ftp://x'", "BASE_URL", "http://"),
    ("STRATEGY = 'no_colon'", "STRATEGY", "module:Class"),
    ("SIM_FAULT_DROP_RATE = 2", "SIM_FAULT_DROP_RATE", "0 to 1"),
    ("SIM_FAULT_LATE_CREATE_RATE = -1", "SIM_FAULT_LATE_CREATE_RATE", "0 to 1"),
    ("SIM_FAULT_LATE_CREATE_MS = (4000, 1000)", "SIM_FAULT_LATE_CREATE_MS", "0 <= min <= max"),
    ("SIM_FAULT_LATE_CREATE_MS = 1000", "SIM_FAULT_LATE_CREATE_MS", "(min, max) whole milliseconds"),
    ("SIM_FAULT_LATE_CREATE_MS = (1.5, 2)", "SIM_FAULT_LATE_CREATE_MS", "(min, max) whole milliseconds"),
    ("TIMEOUT = -1", "TIMEOUT", "greater than 0"),
])
def test_each_kind_of_bad_value_names_setting_value_and_allowed(tmp_path, line, setting, allowed):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, line + "\n")
    message = str(info.value)
    assert setting in message and allowed in message
    assert repr(line.split(" = ", 1)[1].strip("'")) in message or line.split(" = ", 1)[1] in message


def test_min_position_must_be_below_max(tmp_path):
    with pytest.raises(SettingsError, match="MIN_POSITION .* must be less than MAX_POSITION"):
        load(tmp_path, "MIN_POSITION = 10\nMAX_POSITION = 10\n")


def test_min_order_size_not_above_max(tmp_path):
    with pytest.raises(SettingsError, match="MIN_ORDER_SIZE"):
        load(tmp_path, "MIN_ORDER_SIZE = 300\nMAX_ORDER_SIZE = 200\n")


def test_real_exchange_needs_ws_url_and_keys(tmp_path):
    with pytest.raises(SettingsError, match="WS_URL"):
        load(tmp_path, "BASE_URL = 'https://api.gte.io'\n")
    with pytest.raises(SettingsError, match="API_KEY and API_SECRET"):
        load(tmp_path, "BASE_URL = 'https://api.gte.io'\nWS_URL = 'wss://td.gte.io/ws'\n")


def test_typo_is_reported_with_closest_name(tmp_path):
    with pytest.raises(SettingsError, match="unknown setting ORDER_PAIR; did you mean ORDER_PAIRS"):
        load(tmp_path, "ORDER_PAIR = 3\n")


def test_syntax_error_reports_file_and_line(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, "ORDER_PAIRS = 3\nINTERVAL = = 2\n")
    assert "settings.py, line 2" in str(info.value) and "syntax error" in str(info.value)


def test_runtime_error_in_file_reports_line(tmp_path):
    with pytest.raises(SettingsError, match=r"settings.py, line 2: NameError"):
        load(tmp_path, "ORDER_PAIRS = 3\nINTERVAL = undefined_name\n")


def test_env_overrides_win_over_file(tmp_path):
    s = load(tmp_path, "API_KEY = 'file-key'\nAPI_SECRET = 'file-secret'\n",
             environ={"GTE_API_KEY": "env-key", "GTE_API_SECRET": "env-secret-123"})
    assert s.API_KEY == "env-key" and s.API_SECRET == "env-secret-123"


def test_dry_run_never_holds_the_secret(tmp_path):
    s = load(tmp_path, "DRY_RUN = True\nAPI_SECRET = 'top-secret-value'\n")
    assert s.API_SECRET is None


def test_secret_masked_in_repr_and_errors(tmp_path):
    s = load(tmp_path, "API_KEY = 'key1'\nAPI_SECRET = 'super-secret-abc'\n")
    assert "super-secret-abc" not in repr(s) and "super-secret-abc" not in str(s)
    assert "API_SECRET='<hidden>'" in repr(s)
    with pytest.raises(SettingsError) as info:
        load(tmp_path, "API_SECRET = 12345678\n")
    assert "12345678" not in str(info.value) and "API_SECRET" in str(info.value)


def test_logger_redacts_registered_secret(capsys):
    import io
    stream = io.StringIO()
    logger = setup_logging("DEBUG", stream=stream, secrets=["s3cr3t-value-xyz"])
    for handler in logger.handlers:
        if getattr(handler, "_mm_handler", False):
            handler.setStream(stream)
    logging.getLogger("market_maker.test").info("leaked s3cr3t-value-xyz here")
    out = stream.getvalue()
    assert "s3cr3t-value-xyz" not in out and "<hidden>" in out
    assert "INFO" in out and "market_maker.test" in out


def test_launcher_reports_bad_settings_without_traceback_and_exits_2(tmp_path):
    write(tmp_path, "ORDER_PAIRS = (\n")
    proc = subprocess.run([sys.executable, str(ROOT / "marketmaker")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "settings.py, line 1" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
