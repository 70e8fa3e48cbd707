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
