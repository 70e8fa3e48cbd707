"""Prometheus metrics (market_maker/ops/metrics.py) scraped from a bot trading on the simulator."""
import json
import re
import socket
import sys
from pathlib import Path

import pytest
import requests

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from market_maker.ops.parts import Ops, start_ops  # noqa: E402
from market_maker.settings import SettingsError  # noqa: E402
from market_maker.sim import SimConfig, run_simulator  # noqa: E402
from tests.ops_helpers import LIVELY, running_bot, settings_for  # noqa: E402
from tests.waiting import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
families = set()  # every metric family name seen in a scrape (a labelled one may have no sample yet)


def scrape(port):
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def test_scrape_of_a_bot_trading_on_the_simulator(tmp_path):
    with run_simulator(SimConfig(port=0, seed=11, **LIVELY)) as sim:
        settings = settings_for(sim, tmp_path, METRICS_ADDRESS="127.0.0.1:0")
        with running_bot(sim, settings) as ops:
            port = ops.metrics.port
            assert wait_until(lambda: (value(scrape(port), "gte_mm_fills_total") or 0) > 0, timeout=40,
                              interval=0.5), "no fill within 40 s"
            samples = scrape(port)
            snap = ops.view.manager.snap
            view_orders = len(ops.view.own_orders())
    names = {name for name, _ in samples}
    assert all(n.startswith("gte_mm_") for n in names if not n.startswith(("python_", "process_")))
    assert value(samples, "gte_mm_orders_created_total") >= 1
    assert value(samples, "gte_mm_decision_seconds_count") >= 1
    assert value(samples, "gte_mm_decision_seconds_sum") > 0
    assert value(samples, "gte_mm_rest_request_seconds_count", endpoint="pc/order/create") >= 1
    assert value(samples, "gte_mm_volume_contracts_total") >= value(samples, "gte_mm_fills_total") >= 1
    assert value(samples, "gte_mm_ws_connected") == 1
    assert value(samples, "gte_mm_equity", currency="BTC") > 0
    for component in ("realised", "unrealised", "fees", "funding"):
        assert value(samples, "gte_mm_pnl", component=component, currency="BTC") is not None
    for name in ("gte_mm_ws_reconnects_total", "gte_mm_ws_resyncs_total", "gte_mm_ws_seq_gaps_total",
                 "gte_mm_orders_cancelled_total", "gte_mm_orders_rejected_total", "gte_mm_quoting_seconds_total",
                 "gte_mm_quote_uptime_ratio", "gte_mm_open_orders"):
        assert value(samples, name) is not None, name
    assert 0 <= value(samples, "gte_mm_quote_uptime_ratio") <= 1
    assert value(samples, "gte_mm_position_contracts", leg="net") == (value(samples, "gte_mm_position_contracts",
                                                                           leg="long")
                                                                     - value(samples, "gte_mm_position_contracts",
                                                                             leg="short"))
    assert snap is not None and view_orders >= 0
    # every series the Grafana dashboard plots is one the bot exposes
    dashboard = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text())
    plotted = {re.sub(r"_(bucket|sum|count|total)$", "", m) for p in dashboard["panels"] for t in p["targets"]
               for m in re.findall(r"gte_mm_\w+", t["expr"])}
    assert plotted and plotted <= families, plotted - families


def test_rate_limiter_waits_are_observed(tmp_path):
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, METRICS_ADDRESS="127.0.0.1:0")
        from market_maker.cli import build_runner
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
        limiter = runner.exchange.rest.rate_limiter
        now = [0.0]  # cancel_batch: 1 call per 10 s -- a fake clock makes the waits instant

        def advance(seconds):
            now[0] += seconds
        limiter._clock, limiter._sleep = (lambda: now[0]), advance
        ops = Ops(runner, environ={})
        ops.start()  # the metrics wrap the limiter's sleep
        try:
            for _ in range(3):
                limiter.acquire("pc/order/cancel_batch")
            samples = scrape(ops.metrics.port)
        finally:
            ops.stop()
            runner.exchange.close()
    assert value(samples, "gte_mm_rate_limit_wait_seconds_count") == 2
    assert value(samples, "gte_mm_rate_limit_wait_seconds_sum") >= 20 - 1  # two waits of about 10 s


def test_metrics_address_in_use_names_the_setting(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
            settings = settings_for(sim, tmp_path, METRICS_ADDRESS=f"127.0.0.1:{port}")
            from market_maker.cli import build_runner
            runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
            with pytest.raises(SettingsError, match="METRICS_ADDRESS"):
                with start_ops(runner, environ={}):
                    pass


def test_missing_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as if not installed
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, METRICS_ADDRESS="127.0.0.1:0")
        from market_maker.cli import build_runner
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
        with pytest.raises(SettingsError, match=r"METRICS_ADDRESS.*\[ops\]"):
            Ops(runner, environ={}).start()


def test_without_the_journal_nothing_listens_to_the_bus(tmp_path):
    with run_simulator(SimConfig(port=0, seed=3, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, METRICS_ADDRESS="127.0.0.1:0", JOURNAL_PATH="")
        from market_maker.cli import build_runner
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
        ops = Ops(runner, environ={})
        ops.start()
        try:
            assert not runner.exchange.events  # the bot builds no event for the metrics alone
        finally:
            ops.stop()
            runner.exchange.close()
