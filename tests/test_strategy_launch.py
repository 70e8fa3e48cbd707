"""The strategies as a user runs them: `python marketmaker --strategy ...` on the embedded simulator."""
import socket

from tests.test_launcher import launch


def test_glft_trades_on_the_embedded_simulator_and_says_its_estimates(tmp_path):
    (tmp_path / "settings.py").write_text("LOOP_INTERVAL = 1\nVOL_WINDOW_S = 1\n")
    proc = launch(tmp_path, "--duration", "6", "--strategy", "market_maker.strategies.glft:GLFT")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Creating buy order" in out and "Creating sell order" in out
    status = [line for line in out.splitlines() if "GLFT: sigma" in line and "reservation" in line]
    assert status, out[-3000:]
    assert "skew" in status[-1] and " A " in status[-1] and " k " in status[-1]
    assert "Traceback" not in out


def test_a_fair_value_source_that_never_connects_is_exit_2_naming_the_setting(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "settings.py").write_text(
        f'FAIR_VALUE = "binance:BTCUSDT"\nFAIR_VALUE_URL = "ws://127.0.0.1:{port}/ws"\n'
        "FAIR_VALUE_CONNECT_TIMEOUT_S = 0.5\n")
    proc = launch(tmp_path, "--duration", "20", "--strategy", "market_maker.strategies.avellaneda:AvellanedaStoikov",
                  timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "Bad settings: FAIR_VALUE = 'binance:BTCUSDT'" in out and f"127.0.0.1:{port}" in out
    assert "Creating" not in out and "Traceback" not in out
