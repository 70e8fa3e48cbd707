"""`python marketmaker` as a newcomer runs it: no settings file, embedded simulator."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tests.waiting import wait_until as wait_for

ROOT = Path(__file__).resolve().parents[1]


def launch(tmp_path, *args, timeout=90, env=None):
    return subprocess.run([sys.executable, str(ROOT / "marketmaker"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_fresh_machine_run_trades_on_the_embedded_simulator_and_exits_clean(tmp_path):
    proc = launch(tmp_path, "--duration", "6")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Trading on the embedded GTE simulator" in out
    assert "Creating buy order" in out and "Creating sell order" in out
    assert "Ticker BTC_USD" in out and "Summary:" in out
    assert "Traceback" not in out


def test_custom_strategy_and_dry_run_flags(tmp_path):
    proc = launch(tmp_path, "--duration", "4", "--dry-run", "--strategy",
                  "market_maker.custom_strategy:CustomOrderManager")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Would create buy order" in out and "Creating" not in out
    assert "Traceback" not in out


def test_unknown_strategy_is_a_settings_error(tmp_path):
    proc = launch(tmp_path, "--strategy", "market_maker.custom_strategy:NoSuchClass", timeout=30)
    assert proc.returncode == 2
    assert "NoSuchClass" in proc.stderr and "Traceback" not in proc.stderr


def test_hot_reload_and_sigterm_against_a_running_simulator(tmp_path):
    import os
    import signal
    import threading

    from market_maker.sim import SimConfig, run_simulator

    with run_simulator(SimConfig(port=0, seed=5, flow=True)) as sim:
        settings = tmp_path / "settings.py"
        base = (f"BASE_URL = {sim.base_url!r}\nWS_URL = {sim.ws_url!r}\nAPI_KEY = {sim.api_key!r}\n"
                "API_REST_INTERVAL = 0.05\nLOOP_INTERVAL = 1\n")
        settings.write_text(base + "ORDER_PAIRS = 2\n")
        env = {**os.environ, "GTE_API_SECRET": sim.api_secret}
        proc = subprocess.Popen([sys.executable, str(ROOT / "marketmaker")], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()

        def own_open():
            return len(sim.call(lambda ex: ex.open_orders_of(sim.account_id)))
        try:
            assert wait_for(lambda: own_open() == 4, 30), "".join(lines)[-3000:]
            settings.write_text(base + "ORDER_PAIRS = 0\n")  # invalid: rejected, keeps running
            assert wait_for(lambda: any("Reload rejected" in line for line in lines), 15), "".join(lines)[-3000:]
            assert own_open() == 4
            settings.write_text(base + "import sys\nsys.exit(0)\n")  # would end the bot: rejected too
            assert wait_for(lambda: any("Reload rejected" in line and "sys.exit(0)" in line for line in lines),
                            15), "".join(lines)[-3000:]
            assert proc.poll() is None and own_open() == 4
            settings.write_text(base + "ORDER_PAIRS = 3\n# now three\n")
            assert wait_for(lambda: own_open() == 6, 20), "".join(lines)[-3000:]
            assert any("Reloaded" in line for line in lines)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            reader.join(timeout=5)
        out = "".join(lines)
        assert code == 0, out[-3000:]
        assert "Summary:" in out and "Traceback" not in out
        assert sim.api_secret not in out
        assert own_open() == 0


# ----------------------------------------------------------------------------------------------------------------------
# Settings problems: exit 2, one line naming the setting or the file, never a traceback


def write_settings(tmp_path, text):
    (tmp_path / "settings.py").write_text(text)


@pytest.mark.parametrize("line, setting", [
    ('TIMEOUT = "1e400"', "TIMEOUT"),
    ("LOOP_INTERVAL = 10**400", "LOOP_INTERVAL"),
    ("API_ERROR_INTERVAL = 10**12", "API_ERROR_INTERVAL"),
    ('WS_SILENCE_TIMEOUT = "1e400"', "WS_SILENCE_TIMEOUT"),
    ("ORDER_START_SIZE = 10**30", "ORDER_START_SIZE"),
    ("ORDER_STEP_SIZE = 10**40", "ORDER_STEP_SIZE"),
])
def test_a_value_beyond_its_bound_is_exit_2_naming_the_setting(tmp_path, line, setting):
    write_settings(tmp_path, line + "\n")
    proc = launch(tmp_path, "--duration", "5", timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert f"marketmaker: bad settings: {setting} = " in proc.stderr and "is not allowed: " in proc.stderr
    assert "Traceback" not in out and "Trading on" not in out


@pytest.mark.parametrize("text, said", [
    ("import sys\nsys.exit(0)\n", "line 2: the file called sys.exit(0)"),
    ("raise KeyboardInterrupt\n", "line 1: the file raised KeyboardInterrupt"),
    ("raise RuntimeError('no')\n", "line 1: RuntimeError: no"),
])
def test_a_settings_file_that_exits_is_exit_2_naming_the_file(tmp_path, text, said):
    write_settings(tmp_path, text)
    proc = launch(tmp_path, "--duration", "5", timeout=30)
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-3000:]
    assert f"{tmp_path / 'settings.py'}, {said}" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("code, said", [
    ("import sys\nsys.exit(0)\n", "it called sys.exit(0)"),
    ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
    ("import nonexistent_module_xyz\n", "ModuleNotFoundError: No module named 'nonexistent_module_xyz'"),
    ("x = = 1\n", "syntax error"),
])
def test_a_strategy_module_that_exits_at_import_is_exit_2_naming_the_file(tmp_path, code, said):
    (tmp_path / "bad_strategy.py").write_text(code)
    proc = launch(tmp_path, "--duration", "5", "--strategy", "bad_strategy:Strategy", timeout=30,
                  env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 2, (proc.stdout + proc.stderr)[-3000:]
    assert "STRATEGY = 'bad_strategy:Strategy': importing bad_strategy failed" in proc.stderr
    assert str(tmp_path / "bad_strategy.py") in proc.stderr and said in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_missing_strategy_module_is_exit_2(tmp_path):
    proc = launch(tmp_path, "--strategy", "no_such_module_abc:Strategy", timeout=30)
    assert proc.returncode == 2
    assert "STRATEGY = 'no_such_module_abc:Strategy': no module named 'no_such_module_abc'" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_settings_error_never_echoes_the_secret(tmp_path):
    write_settings(tmp_path, "API_SECRET = 'file-s3cr3t-value'\nX = int(API_SECRET)\n")
    proc = launch(tmp_path, timeout=30, env={**os.environ, "GTE_API_SECRET": "env-s3cr3t-value"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "ValueError" in proc.stderr and "<hidden>" in proc.stderr
    assert "s3cr3t" not in out and "Traceback" not in out


def test_a_fifo_as_settings_file_is_named_and_never_blocks(tmp_path):
    os.mkfifo(tmp_path / "settings.fifo")
    proc = launch(tmp_path, "--settings", "settings.fifo", timeout=30)
    assert proc.returncode == 2
    assert "settings.fifo is a named pipe (FIFO), not a settings file" in proc.stderr


# ----------------------------------------------------------------------------------------------------------------------
# The API secret leaves the process environment once loaded


SPY = """
import json, os, subprocess, sys
from market_maker.market_maker import OrderManager
AT_IMPORT = dict(os.environ)

class Spy(OrderManager):
    def __init__(self, settings, exchange, *args, **kwargs):
        super().__init__(settings, exchange, *args, **kwargs)
        child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                               capture_output=True, text=True, check=True).stdout
        credentials = exchange.rest.credentials
        with open("spy.json", "w") as out:
            json.dump({"import": AT_IMPORT, "init": dict(os.environ), "child": json.loads(child),
                       "signing_secret": credentials.api_secret if credentials else None}, out)
"""


@pytest.mark.parametrize("flags", [(), ("--dry-run",)])
def test_a_strategy_and_its_children_never_see_the_api_secret(tmp_path, flags):
    (tmp_path / "spy_strategy.py").write_text(SPY)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "GTE_API_SECRET": "env-s3cr3t-value"}
    env.pop("GTE_API_KEY", None)  # the embedded simulator then makes up its own key pair
    proc = launch(tmp_path, "--duration", "1", "--strategy", "spy_strategy:Spy", *flags, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    seen = json.loads((tmp_path / "spy.json").read_text())
    secrets = ["env-s3cr3t-value"] + ([seen["signing_secret"]] if seen["signing_secret"] else [])
    assert bool(seen["signing_secret"]) == (not flags)  # the simulator's generated secret signs (not in a dry run)
    for when in ("import", "init", "child"):
        assert "GTE_API_SECRET" not in seen[when], when
        assert not [v for v in seen[when].values() for s in secrets if s in v], when


# ----------------------------------------------------------------------------------------------------------------------
# Start-up: wait for an exchange that is not up yet; stop at once on a refusal


def free_port():
    import socket
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def start_bot(tmp_path, port, key="launch-key", secret="launch-s3cr3t"):
    write_settings(tmp_path, f"BASE_URL = 'http://127.0.0.1:{port}'\nWS_URL = 'ws://127.0.0.1:{port}/ws'\n"
                             f"API_KEY = {key!r}\nORDER_PAIRS = 2\nAPI_REST_INTERVAL = 0.05\nLOOP_INTERVAL = 1\n")
    proc = subprocess.Popen([sys.executable, str(ROOT / "marketmaker")], cwd=tmp_path,
                            env={**os.environ, "GTE_API_SECRET": secret},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    return proc, lines, reader


def test_a_bot_started_before_the_exchange_waits_for_it_and_says_so_once(tmp_path):
    from market_maker.sim import SimConfig, run_simulator
    port = free_port()
    proc, lines, reader = start_bot(tmp_path, port)
    waiting = f"Waiting for the exchange at ws://127.0.0.1:{port}/ws: connection refused; retrying"
    try:
        assert wait_for(lambda: any(waiting in line for line in lines), 30), "".join(lines)[-3000:]
        with run_simulator(SimConfig(port=port, seed=5, api_key="launch-key", api_secret="launch-s3cr3t")) as sim:
            def own_open():
                return len(sim.call(lambda ex: ex.open_orders_of(sim.account_id)))
            assert wait_for(lambda: own_open() == 4, 60), "".join(lines)[-3000:]
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
            reader.join(timeout=5)
            assert own_open() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert code == 0, out[-3000:]
    assert out.count("Waiting for the exchange") == 1 and "The exchange answered after" in out
    assert "Summary:" in out and "Traceback" not in out


def test_ctrl_c_while_waiting_for_the_exchange_exits_clean(tmp_path):
    proc, lines, reader = start_bot(tmp_path, free_port())
    try:
        assert wait_for(lambda: any("Waiting for the exchange" in line for line in lines), 30), "".join(lines)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert code == 0, out[-3000:]
    assert "Stopped before the start completed; no order was sent" in out and "Traceback" not in out


def test_an_unlisted_symbol_ends_with_one_line_and_exit_1(tmp_path):
    write_settings(tmp_path, "SYMBOL = 'ETH_USD'\n")
    proc = launch(tmp_path, "--duration", "20", timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    refused = [line for line in out.splitlines() if "ERROR" in line]
    assert len(refused) == 1 and "The exchange refused to start" in refused[0] and "ETH_USD" in refused[0]
    assert "Waiting for the exchange" not in out and "Traceback" not in out


@pytest.mark.parametrize("value", ["nan", "-1", "0", "1e400", "abc"])
def test_a_duration_that_is_no_positive_number_is_refused(tmp_path, value):
    proc = launch(tmp_path, "--duration", value, timeout=30)
    assert proc.returncode == 2
    assert f"argument --duration: '{value}' is not a number of seconds greater than 0" in proc.stderr
    assert "Trading on" not in proc.stdout
