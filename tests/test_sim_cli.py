"""Starting the simulator: CLI (subprocess), ``run_simulator`` lifecycle, ``SimConfig``."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from market_maker.sim import SimConfig, SimServer, run_simulator
from market_maker.sim.__main__ import build_parser, config_from_args
from market_maker.sim.config import FLOW_FIELDS

from .sim_helpers import Rest, Ws

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--host", "--port", "--seed", "--symbol", "--asset", "--symbol-id", "--tick-size", "--start-price",
         "--funding-interval-s", "--api-key", "--api-secret", "--balance", "--account", "--no-flow",
         "--taker-rate", "--taker-mean-qty", "--volatility", "--depth-levels", "--speed",
         "--ws-idle-timeout-s", "--position-push-s", "--no-rate-limits",
         "--fault-ws-disconnect-every-s", "--fault-drop-rate", "--fault-dup-rate", "--fault-latency-ms",
         "--fault-5xx-rate", "--fault-lost-response-rate", "--fault-rate-limit-every-s",
         "--fault-rate-limit-duration-s", "--fault-late-create-rate", "--fault-late-create-ms",
         "--ws-max-connections", "--ws-max-per-address", "--ws-max-subs-per-s", "--ws-max-msg-bytes",
         "--ws-send-buffer-bytes", "--max-body-bytes", "--history-limit", "--trade-history"]


def run_cli(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
    """Start ``python -m market_maker.sim`` and read its banner (label -> value)."""
    proc = subprocess.Popen([sys.executable, "-m", "market_maker.sim", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    banner: dict[str, str] = {}
    deadline = time.monotonic() + 15
    while "api key" not in banner or ("api secret" not in banner and "--api-secret" not in args):
        assert time.monotonic() < deadline, "no banner"
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        m = re.match(r"\s+(REST|WebSocket|stats|account|api key|api secret)\s+(\S+)", line)
        if m:
            banner[m.group(1)] = m.group(2)
    return proc, banner


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, out, err


def test_help_lists_every_flag():
    out = subprocess.run([sys.executable, "-m", "market_maker.sim", "--help"], cwd=ROOT, text=True,
                         capture_output=True, timeout=30).stdout
    flow_flags = ["--" + name.replace("_", "-") for name in FLOW_FIELDS] + ["--flow-price-csv"]
    missing = [f for f in FLAGS + flow_flags if f not in out]
    assert not missing


def test_cli_serves_rest_and_ws_with_generated_credentials():
    proc, banner = run_cli("--port", "0", "--no-flow", "--seed", "3", "--account", "extra:xsecret:2.5")
    try:
        rest_url = banner["REST"]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/api", rest_url)
        base = rest_url[: -len("/v1/api")]
        assert banner["WebSocket"] == base.replace("http://", "ws://") + "/ws"
        main = Rest(base, banner["api key"], banner["api secret"])
        [row] = main.get("/v1/api/account/pc/query", {"asset": "BTC"})["data"]["rows"]
        assert row["total"] == "10"
        [row] = Rest(base, "extra", "xsecret").get("/v1/api/account/pc/query")["data"]["rows"]
        assert row["total"] == "2.5"
        ws = Ws(banner["WebSocket"])
        ws.send({"op": "ping"})
        assert ws.recv() == {"op": "pong"}
        ws.close()
    finally:
        code, out, err = stop(proc)
    assert code == 0 and "stopped" in out
    assert banner["api secret"] not in err  # printed once on stdout, never logged


def test_cli_given_credentials_are_not_echoed_and_sigint_stops():
    proc, banner = run_cli("--port", "0", "--speed", "3", "--api-key", "KEY", "--api-secret", "SECRET1234",
                           "--balance", "3", "--fault-latency-ms", "0:1")
    try:
        assert banner["api key"] == "KEY" and "api secret" not in banner
        reply = Rest(banner["REST"][: -len("/v1/api")], "KEY", "SECRET1234").get("/v1/api/account/pc/query")
        assert reply["data"]["rows"][0]["total"] == "3"
    finally:
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0 and "SECRET1234" not in out + err


def test_cli_rejects_bad_values():
    for args in (["--fault-drop-rate", "2"], ["--tick-size", "abc"], ["--account", "nocolon"],
                 ["--ws-max-per-address", "0"], ["--max-body-bytes", "1.5"],
                 ["--fault-latency-ms", "9:1"], ["--fault-late-create-ms", "4000:1000"],
                 ["--fault-late-create-rate", "1.5"]):
        proc = subprocess.run([sys.executable, "-m", "market_maker.sim", "--no-flow", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, args


def test_config_from_args_maps_every_knob():
    args = build_parser().parse_args(["--port", "0", "--no-flow", "--tick-size", "0.1", "--fault-5xx-rate",
                                      "0.25", "--fault-latency-ms", "5:10", "--account", "a:b:1.5",
                                      "--fault-rate-limit-every-s", "30", "--fault-rate-limit-duration-s", "2",
                                      "--fault-late-create-rate", "0.01", "--fault-late-create-ms", "1500:4000"])
    cfg = config_from_args(args)
    assert cfg.port == 0 and cfg.flow is False and cfg.tick_size == Decimal("0.1") and cfg.price_precision == 1
    assert cfg.extra_accounts == (("a", "b", Decimal("1.5")),)
    faults = cfg.fault_config()
    assert faults.http_5xx_rate == Decimal("0.25") and faults.latency_ms == (5, 10)
    assert faults.rate_limit_every_s == 30 and faults.rate_limit_duration_s == 2
    assert faults.late_create_rate == Decimal("0.01") and faults.late_create_ms == (1500, 4000)
    assert config_from_args(build_parser().parse_args([])).fault_late_create_ms == (1000, 4000)
    limits = config_from_args(build_parser().parse_args(["--ws-max-per-address", "3", "--ws-max-connections", "9",
                                                         "--max-body-bytes", "100", "--history-limit", "7"]))
    assert (limits.ws_max_per_address, limits.ws_max_connections, limits.max_body_bytes) == (3, 9, 100)
    assert limits.history_limit == 7 and limits.ws_max_subs_per_s == SimConfig().ws_max_subs_per_s
    with pytest.raises(ValueError, match="ws_max_connections"):
        SimConfig(ws_max_connections=0)


def test_from_settings_reads_sim_attributes():
    settings = SimpleNamespace(SIM_SEED=9, SIM_FAULT_DROP_RATE="0.1", SIM_TICK_SIZE="0.25", SIM_FLOW=False,
                               SIM_FAULT_LATENCY_MS=[1, 2], SIM_EXTRA_ACCOUNTS=[("k", "s", "1")], OTHER=1)
    cfg = SimConfig.from_settings(settings)
    assert cfg.seed == 9 and cfg.fault_drop_rate == Decimal("0.1") and cfg.tick_size == Decimal("0.25")
    assert cfg.price_precision == 2 and cfg.fault_latency_ms == (1, 2) and cfg.flow is False
    assert cfg.extra_accounts == (("k", "s", Decimal("1")),) and cfg.port == 8765
    assert SimConfig.from_settings(SimpleNamespace(), port=0).port == 0


def test_late_create_settings_reach_the_simulator(tmp_path):
    from market_maker.settings import load_settings
    settings = load_settings(None, overrides={"SIM_FAULT_LATE_CREATE_RATE": "0.02",
                                              "SIM_FAULT_LATE_CREATE_MS": (1200, 3000)}, environ={}, cwd=tmp_path)
    faults = SimConfig.from_settings(settings).fault_config()
    assert faults.late_create_rate == Decimal("0.02") and faults.late_create_ms == (1200, 3000)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_run_simulator_stops_cleanly():
    baseline = threading.active_count()
    with run_simulator(SimConfig(port=0, flow=False)) as sim:
        port = sim.port
        assert sim.base_url == f"http://127.0.0.1:{port}" and sim.ws_url == f"ws://127.0.0.1:{port}/ws"
        assert isinstance(sim, SimServer) and sim.account_id and sim.api_key and sim.api_secret
        ws = Ws(sim.ws_url)  # an open WebSocket must not block shutdown
        ws.send({"op": "ping"})
        assert ws.recv() == {"op": "pong"}
        rest = Rest(sim.base_url, sim.api_key, sim.api_secret)
        assert rest.order(1, "9000.0", 1)["code"] == 0  # keep-alive connection left open too
        assert sim.call(lambda ex: len(ex.open_orders_of(sim.account_id))) == 1
        other = sim.add_account("k2", "s2", "1")
        assert sim.call(lambda ex: ex.equity(other)) == Decimal(1)
        assert threading.active_count() > baseline
    assert threading.active_count() == baseline
    assert not _port_open(port)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/v1/api/pc/asset/query", timeout=2)
    assert ws.wait_closed(2)
    ws.close()


def test_fixed_port_in_use_fails_fast():
    with run_simulator(SimConfig(port=0, flow=False)) as sim, pytest.raises(OSError):
        SimServer(SimConfig(port=sim.port, flow=False)).start_in_thread()
