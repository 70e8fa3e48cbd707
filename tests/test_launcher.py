"""`python marketmaker` as a newcomer runs it: no settings file, embedded simulator."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def launch(tmp_path, *args, timeout=90):
    return subprocess.run([sys.executable, str(ROOT / "marketmaker"), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout)


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


def wait_for(predicate, timeout, interval=0.2):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


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
