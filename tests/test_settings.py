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


def test_every_setting_reads_the_same_as_attribute_and_item(tmp_path):
    s = load(tmp_path).replace(ORDER_PAIRS=3)
    assert all(getattr(s, name) is s[name] for name in s)
    with pytest.raises(AttributeError):
        s.NO_SUCH_SETTING


def test_a_setting_named_like_a_method_does_not_hide_the_method():
    from market_maker.settings import Settings
    s = Settings({"keys": 1, "ORDER_PAIRS": 2})
    assert list(s.keys()) == ["keys", "ORDER_PAIRS"] and s["keys"] == 1 and s.ORDER_PAIRS == 2


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


# ----------------------------------------------------------------------------------------------------------------------
# Upper bounds: a value a duration, a size or an amount can never sensibly take is refused, naming what is allowed


@pytest.mark.parametrize("line, setting, allowed", [
    ('TIMEOUT = "1e400"', "TIMEOUT", "at most 300"),
    ("LOOP_INTERVAL = 10**400", "LOOP_INTERVAL", "at most 3600"),
    ("API_ERROR_INTERVAL = 10**12", "API_ERROR_INTERVAL", "at most 3600"),
    ('WS_SILENCE_TIMEOUT = "1e400"', "WS_SILENCE_TIMEOUT", "at most 3600"),
    ("WS_PING_INTERVAL = 301", "WS_PING_INTERVAL", "at most 300"),
    ("STALE_DATA_SECONDS = 86401", "STALE_DATA_SECONDS", "at most 86400"),
    ("API_REST_INTERVAL = 61", "API_REST_INTERVAL", "at most 60"),
    ("REQUOTE_DEBOUNCE_MS = 60001", "REQUOTE_DEBOUNCE_MS", "from 0 to 60000"),
    ("ORDER_START_SIZE = 10**30", "ORDER_START_SIZE", "from 1 to 10000000"),
    ("ORDER_STEP_SIZE = 10**40", "ORDER_STEP_SIZE", "from 0 to 10000000"),
    ("MIN_ORDER_SIZE = 10**8", "MIN_ORDER_SIZE", "from 1 to 10000000"),
    ("MAX_ORDER_SIZE = 10**8", "MAX_ORDER_SIZE", "from 1 to 10000000"),
    ("MIN_POSITION = -10**10", "MIN_POSITION", "from -1000000000 to 1000000000"),
    ("MAX_POSITION = 10**10", "MAX_POSITION", "from -1000000000 to 1000000000"),
    ('DRY_BTC = "1e30"', "DRY_BTC", "at most 1000000"),
    ("MAX_DRAWDOWN = 10**7", "MAX_DRAWDOWN", "at most 1000000"),
    ("SIM_SEED = 2**64", "SIM_SEED", "from 0 to 2**63 - 1"),
    ("SIM_START_PRICE = 10**8", "SIM_START_PRICE", "at most 10000000"),
    ('SIM_TICK_SIZE = "1e-30"', "SIM_TICK_SIZE", "from 0.00000001 to 1000"),
    ("SIM_BALANCE = 10**7", "SIM_BALANCE", "at most 1000000"),
    ("SIM_SPEED = 10**6", "SIM_SPEED", "at most 1000"),
    ("SIM_VOLATILITY = 2", "SIM_VOLATILITY", "from 0 to 0.1"),
    ("SIM_TAKER_RATE = 10**6", "SIM_TAKER_RATE", "from 0 to 1000"),
    ("SIM_TAKER_MEAN_QTY = 10**9", "SIM_TAKER_MEAN_QTY", "at most 10000000"),
    ("SIM_LEVEL_STEP_TICKS = 10**6", "SIM_LEVEL_STEP_TICKS", "from 1 to 10000"),
    ("SIM_FUNDING_INTERVAL = 0.5", "SIM_FUNDING_INTERVAL", "from 1 to 604800"),
    ("SIM_FUNDING_INTERVAL = 10**9", "SIM_FUNDING_INTERVAL", "from 1 to 604800"),
    ("SIM_FAULT_WS_DISCONNECT_EVERY_S = 10**9", "SIM_FAULT_WS_DISCONNECT_EVERY_S", "at most 86400"),
])
def test_each_setting_has_an_upper_bound(tmp_path, line, setting, allowed):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, line + "\n")
    message = str(info.value)
    assert message.startswith(f"{setting} = ") and "is not allowed" in message and allowed in message


def test_a_number_too_long_to_print_is_still_reported(tmp_path):
    with pytest.raises(SettingsError, match="ORDER_START_SIZE = <a number too long to show> is not allowed"):
        load(tmp_path, "ORDER_START_SIZE = 10**5000\n")


def test_the_ladder_outermost_order_is_bounded_too(tmp_path):
    with pytest.raises(SettingsError, match=r"outermost order of the ladder.* = 15000100 contracts.*\(10000000\)"):
        load(tmp_path, "ORDER_PAIRS = 6\nORDER_START_SIZE = 100\nORDER_STEP_SIZE = 3000000\n")
    # random sizes do not use the step: only MIN/MAX_ORDER_SIZE apply then
    s = load(tmp_path, "RANDOM_ORDER_SIZE = True\nORDER_STEP_SIZE = 3000000\n")
    assert s.ORDER_STEP_SIZE == 3000000


def test_the_simulator_start_price_must_fit_its_tick_grid(tmp_path):
    with pytest.raises(SettingsError, match="SIM_START_PRICE .* ticks of SIM_TICK_SIZE"):
        load(tmp_path, 'SIM_TICK_SIZE = "0.0001"\n')


def test_urls_must_name_a_host_and_a_valid_port(tmp_path):
    for line in ('BASE_URL = "http://127.0.0.1:99999"', 'BASE_URL = "http://"', 'WS_URL = "ws://:80/ws"'):
        with pytest.raises(SettingsError, match="naming a host"):
            load(tmp_path, line + "\n")


def test_the_defaults_are_within_every_bound(tmp_path):
    assert load(tmp_path).TIMEOUT == 7


# ----------------------------------------------------------------------------------------------------------------------
# A settings file that stops the interpreter is a settings error


@pytest.mark.parametrize("text, said", [
    ("import sys\nsys.exit(0)\n", "line 2: the file called sys.exit(0)"),
    ("import sys\nsys.exit()\n", "line 2: the file called sys.exit()"),
    ("ORDER_PAIRS = 2\nraise KeyboardInterrupt\n", "line 2: the file raised KeyboardInterrupt"),
    ("raise SystemError('boom')\n", "line 1: SystemError: boom"),
])
def test_a_file_that_exits_or_interrupts_is_a_settings_error(tmp_path, text, said):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, text)
    assert str(info.value) == f"{tmp_path / 'settings.py'}, {said}"


# ----------------------------------------------------------------------------------------------------------------------
# Secrets never appear in a settings error


def test_api_key_is_masked_in_errors_too(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, "API_KEY = 987654321\n")
    assert "987654321" not in str(info.value) and "API_KEY = '<hidden>'" in str(info.value)


def test_an_error_raised_by_the_file_never_echoes_a_secret_it_defined(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, "API_SECRET = 'not-a-number-s3cr3t'\nX = int(API_SECRET)\n")
    assert "not-a-number-s3cr3t" not in str(info.value)
    assert "line 2: ValueError: invalid literal for int() with base 10: '<hidden>'" in str(info.value)


def test_an_error_raised_by_the_file_never_echoes_a_secret_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GTE_API_SECRET", "env-s3cr3t-value")
    monkeypatch.setenv("GTE_API_KEY", "env-k3y-value")
    with pytest.raises(SettingsError) as info:
        load_settings(str(write(tmp_path, "import os\nX = int(os.environ['GTE_API_SECRET'] + os.environ['GTE_API_KEY'])\n")),
                      cwd=tmp_path)
    assert "env-s3cr3t-value" not in str(info.value) and "env-k3y-value" not in str(info.value)
    assert "<hidden>" in str(info.value)


def test_a_secret_given_as_another_setting_is_hidden(tmp_path):
    with pytest.raises(SettingsError) as info:
        load(tmp_path, "API_SECRET = 'pasted-s3cr3t'\nSYMBOL = API_SECRET\n")
    assert "pasted-s3cr3t" not in str(info.value) and "SYMBOL = '<hidden>'" in str(info.value)


def test_pop_env_secret_takes_the_secret_and_leaves_the_key():
    from market_maker.settings import pop_env_secret
    environ = {"GTE_API_KEY": "the-key", "GTE_API_SECRET": "the-secret", "HOME": "/root"}
    assert pop_env_secret(environ) == {"GTE_API_SECRET": "the-secret"}
    assert environ == {"GTE_API_KEY": "the-key", "HOME": "/root"}
    assert pop_env_secret(environ) == {}


# ----------------------------------------------------------------------------------------------------------------------
# A settings path that is no regular file is reported as what it is (and a FIFO never blocks)


def test_a_directory_is_reported_as_a_directory(tmp_path):
    (tmp_path / "conf").mkdir()
    with pytest.raises(SettingsError, match=r"conf is a directory, not a settings file"):
        load_settings(str(tmp_path / "conf"), environ={}, cwd=tmp_path)
    (tmp_path / "settings.py").mkdir()  # the default place: not silently ignored either
    with pytest.raises(SettingsError, match=r"settings.py is a directory, not a settings file"):
        load_settings(environ={}, cwd=tmp_path)


def settings_error_within(seconds, call):
    """The SettingsError ``call`` raises, failing (not hanging) if it blocks (opening a FIFO does)."""
    import threading
    outcome = []

    def target():
        try:
            call()
        except SettingsError as exc:
            outcome.append(exc)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    assert outcome, "no SettingsError"
    return str(outcome[0])


def test_a_fifo_is_reported_without_blocking(tmp_path, monkeypatch):
    import os
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    message = settings_error_within(10, lambda: load_settings(str(fifo), environ={}, cwd=tmp_path))
    assert message.endswith("settings.fifo is a named pipe (FIFO), not a settings file")
    monkeypatch.setenv("MM_SETTINGS", str(fifo))
    message = settings_error_within(10, lambda: load_settings(environ={}, cwd=tmp_path))
    assert message.endswith("(from MM_SETTINGS) is a named pipe (FIFO), not a settings file")


def test_a_fifo_swapped_in_after_the_check_does_not_block_either(tmp_path):
    import os
    from market_maker.settings import read_settings_file
    fifo = tmp_path / "settings.py"
    os.mkfifo(fifo)
    assert "is a named pipe" in settings_error_within(10, lambda: read_settings_file(fifo))


def test_a_device_is_reported_as_a_device(tmp_path):
    with pytest.raises(SettingsError, match=r"/dev/null is a character device, not a settings file"):
        load_settings("/dev/null", environ={}, cwd=tmp_path)


def test_a_missing_file_is_still_reported_as_missing(tmp_path):
    with pytest.raises(SettingsError, match=r"settings file .*nope.py does not exist"):
        load_settings(str(tmp_path / "nope.py"), environ={}, cwd=tmp_path)
