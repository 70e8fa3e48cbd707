"""The backtester: the unchanged manager on the simulated exchange in simulated time."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from market_maker.backtest import command
from market_maker.backtest.clock import SimClock
from market_maker.backtest.engine import BacktestError, run_backtest
from market_maker.backtest.latency import LatencyError, LatencySpec
from market_maker.backtest.market import MarketError, build
from market_maker.events import CallbackSink
from market_maker.market_maker import OrderManager
from market_maker.models import DesiredOrder
from market_maker.settings import load_settings
from market_maker.backtest import synthetic  # noqa: F401  (registers the market)

MINUTE = 1 / 60


def settings_for(tmp_path, **overrides):
    return load_settings(overrides=overrides, environ={}, cwd=tmp_path)


def run(settings, cls=OrderManager, *, seed=3, hours=MINUTE, latency=0, events=None):
    """A backtest; ``events`` (a list) collects the bus's events (kind, simulated time, fields)."""
    sinks = [CallbackSink(lambda e: events.append((e.kind, e.ts, e.fields)))] if events is not None else []
    return run_backtest(settings, cls, build("synthetic", settings), seed=seed, hours=hours, latency=latency,
                        sinks=sinks)


def figures(result):
    values = result.as_dict()
    values.pop("wall_seconds")
    return values


def test_sim_clock_runs_what_is_due_in_time_order():
    clock, seen = SimClock(), []
    clock.at(3_000_000, lambda: seen.append(("b", clock.monotonic())))
    clock.at(1_000_000, lambda: seen.append(("a", clock.monotonic())))
    clock.at(3_000_000, lambda: seen.append(("c", clock.monotonic())))
    clock.sleep(2.5)
    assert seen == [("a", 1.0)] and clock.monotonic() == 2.5
    assert clock.run_until(10_000_000, stop=lambda: len(seen) == 2) and clock.monotonic() == 3.0
    clock.sleep(1)
    assert seen[-1] == ("c", 3.0) and clock.monotonic() == 4.0
    assert clock.now_ms() == clock.start_ms + 4000 and clock.time() == clock.start_ms / 1000 + 4


def test_same_inputs_same_run_and_events(tmp_path):
    settings = settings_for(tmp_path)
    first, second = [], []
    a = run(settings, events=first, hours=MINUTE * 2 / 3)
    b = run(settings, events=second, hours=MINUTE * 2 / 3)
    assert a.fills > 0 and a.volume > 0 and a.maker_fills <= a.fills
    assert figures(a) == figures(b)
    assert first == second and any(kind == "execution" for kind, _, _ in first)
    assert isinstance(a.net_pnl, Decimal) and a.net_pnl == a.end_equity - a.start_equity
    assert a.sim_seconds == pytest.approx(40, abs=1)
    other = run(settings, seed=4, hours=MINUTE / 3)
    assert figures(other) != figures(a)


def test_a_subclass_strategy_runs_unchanged(tmp_path):
    calls = []

    class OnePair(OrderManager):
        """Quotes one order a side, ten ticks outside the touch."""

        def place_orders(self):
            calls.append(self.clock.time())
            tick, book = self.tick_size, self.snap.book
            self.converge_orders([DesiredOrder("buy", book.best_bid - 10 * tick, 50)],
                                 [DesiredOrder("sell", book.best_ask + 10 * tick, 50)])

    events = []
    result = run(settings_for(tmp_path), OnePair, events=events, hours=MINUTE * 2 / 3)
    creates = [f for kind, _, f in events if kind == "order" and f["action"] == "create"]
    assert len(calls) > 100 and result.exit_code == 0
    assert creates and {f["qty"] for f in creates} == {50}
    assert calls[-1] - calls[0] == pytest.approx(40, abs=1)  # the strategy's clock is the simulated one


def test_rate_limits_hold_in_simulated_time(tmp_path):
    events = []
    settings = settings_for(tmp_path, ORDER_PAIRS=30, ORDER_STEP_SIZE=10, INTERVAL=Decimal("0.0005"), MIN_SPREAD=Decimal("0.0005"),
                            RELIST_INTERVAL=Decimal("0.0005"), API_REST_INTERVAL=0)
    result = run(settings, events=events, hours=MINUTE / 2)
    sent = defaultdict(list)
    for kind, ts, f in events:
        if kind == "order" and f["outcome"] == "ok":
            sent[f["action"]].append(ts)
    creates = sorted(sent["create"])
    assert len(creates) > 60  # 60 at the start alone: the limiter had to spread them
    for i in range(len(creates) - 20):
        assert creates[i + 20] - creates[i] >= 1.0 - 1e-9  # never 21 creates within one second
    batches = sorted(set(sent["cancel_batch"]))
    assert all(b - a >= 10 for a, b in zip(batches, batches[1:]))
    assert result.exit_code == 0


def test_latency_delays_orders_and_shifts_fills(tmp_path):
    settings = settings_for(tmp_path)
    slow_events = []
    fast = run(settings, hours=MINUTE / 3)
    slow = run(settings, latency=50, events=slow_events, hours=MINUTE / 3)
    latencies = [f["latency_ms"] for kind, _, f in slow_events if kind == "order" and f["latency_ms"] is not None]
    assert latencies and all(v == pytest.approx(100.0) for v in latencies)  # there and back
    assert figures(fast) != figures(slow)
    spread = run(settings, latency="20:80", hours=MINUTE / 6)
    again = run(settings, latency="20:80", hours=MINUTE / 6)
    assert figures(spread) == figures(again)


def test_latency_text():
    assert LatencySpec.parse("5") == LatencySpec(5, 5) and LatencySpec.parse("1:2.5") == LatencySpec(1, 2.5)
    for bad in ("-1", "5:1", "x", "1:2:3", "", "70000"):
        with pytest.raises(LatencyError):
            LatencySpec.parse(bad)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [(["--market", "nope"], "unknown market 'nope'"),
             (["--market", "synthetic", "x.csv"], "takes no file"),
             (["--latency-ms", "9:1"], "--latency-ms"),
             (["--hours", "0"], "--hours"),
             (["--seed", "-3"], "--seed"),
             (["--strategy", "nowhere:Thing"], "no module named 'nowhere'"),
             (["--hours", "0.001", "--journal", str(tmp_path / "no" / "j.sqlite")], "does not exist")]
    for argv, text in cases:
        with pytest.raises(SystemExit) as exit_info:
            code = command.main(argv)
            raise SystemExit(code)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, argv
        assert text in err and err.count("\n") == 1 and "Traceback" not in err, err
    bad = tmp_path / "bad.py"
    bad.write_text("ORDER_PAIRS = 99\n")
    assert command.main(["--settings", str(bad)]) == 2
    assert "ORDER_PAIRS" in capsys.readouterr().err
    with pytest.raises(MarketError):
        build("nope", settings_for(tmp_path))
    with pytest.raises(BacktestError, match="ETH_USD"):
        run_backtest(settings_for(tmp_path, SYMBOL="ETH_USD"), OrderManager, build("synthetic", settings_for(tmp_path)),
                     seed=1, hours=0.01)
    with pytest.raises(BacktestError):
        run_backtest(settings_for(tmp_path, ORDER_PAIRS=2, DRY_RUN=True), OrderManager,
                     build("synthetic", settings_for(tmp_path)), seed=1, hours=0.01)


def test_command_prints_figures_and_speed_up_last(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert command.main(["--hours", "0.005", "--seed", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("Wall time ") and out[-1].endswith("x") and "speed-up" in out[-1]
    assert any(line.startswith("Net PnL ") for line in out)


def test_journal_rows_are_the_same_run_after_run_and_report_reads_them(tmp_path, capsys):
    import sqlite3
    from market_maker.journal.report import command as report
    settings = settings_for(tmp_path)
    paths = [str(tmp_path / "a.sqlite"), str(tmp_path / "b.sqlite")]
    for path in paths:
        run_backtest(settings, OrderManager, build("synthetic", settings), seed=5, hours=MINUTE / 3,
                     journal_path=path)
    dumps = []
    for path in paths:
        db = sqlite3.connect(path)
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables if t != "runs"}
        run = db.execute("SELECT mode, started_ms, sim_seed, run_tag FROM runs").fetchall()
        dumps.append((rows, run))
        db.close()
    assert dumps[0] == dumps[1]
    rows, run = dumps[0]
    assert run[0][0] == "backtest" and run[0][2] == 5
    assert sum(len(v) for v in rows.values()) > 100
    assert report.main([paths[0], "--no-html"]) == 0
    out = capsys.readouterr().out
    assert "backtest" in out and "fills" in out


def test_agreement_with_a_real_time_run_of_the_same_seed(tmp_path):
    """12 s of the bot in real time against the embedded simulator and 12 s of backtest, same settings (a tight
    ladder: ~6 fills a second) and seed. Fill counts agree within 3 standard deviations of the difference of two
    Poisson counts, 3 * sqrt(a + b), plus 3 for the real-time start (connecting, subscribing); volumes within the
    same relative margin. Measured: 78 / 81 and 74 / 78 fills (seeds 11, 12)."""
    from market_maker.backtest.agreement import backtest, realtime
    settings = settings_for(tmp_path, ORDER_PAIRS=4, ORDER_START_SIZE=50, ORDER_STEP_SIZE=50, INTERVAL=Decimal("0.001"),
                            MIN_SPREAD=Decimal("0.0005"), RELIST_INTERVAL=Decimal("0.001"))
    live = realtime(settings, seed=11, seconds=12)
    simulated = backtest(settings, seed=11, seconds=12)
    assert live.fills >= 10 and simulated.fills >= 10
    margin = 3 * (live.fills + simulated.fills) ** 0.5 + 3
    assert abs(live.fills - simulated.fills) <= margin
    mean_fills, mean_volume = (live.fills + simulated.fills) / 2, (live.volume + simulated.volume) / 2
    assert abs(live.volume - simulated.volume) / mean_volume <= margin / mean_fills


def test_same_result_in_processes_with_different_string_hashing(tmp_path):
    """Dask workers and local processes hash strings differently (PYTHONHASHSEED): a run must not depend on it."""
    import os
    import subprocess
    import sys
    script = (
        "import hashlib, pathlib, tempfile\n"
        "from market_maker.settings import load_settings\n"
        "from market_maker.market_maker import OrderManager\n"
        "from market_maker.backtest import synthetic\n"
        "from market_maker.backtest.market import build\n"
        "from market_maker.backtest.engine import run_backtest\n"
        "s = load_settings(overrides={}, environ={}, cwd=pathlib.Path(tempfile.mkdtemp()))\n"
        "r = run_backtest(s, OrderManager, build('synthetic', s), seed=9, hours=8 / 3600, latency='1:30')\n"
        "d = r.as_dict(); d.pop('wall_seconds')\n"
        "print(sorted(d.items()))\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": root}
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and "fills" in outputs[0]


def test_funding_payments_are_told_as_the_exchange_books_them(tmp_path):
    events = []
    run(settings_for(tmp_path, SIM_FUNDING_INTERVAL=10), events=events, seed=3, hours=MINUTE * 2 / 3)
    paid = [f for kind, _, f in events if kind == "funding"]
    assert len(paid) >= 2 and all(f["ts_ex_ms"] % 10_000 == 0 for f in paid)
    markets = [f for kind, _, f in events if kind == "market" and f["mark"] is not None]
    mark = markets[-1]["mark"]
    for f in paid:  # longs pay, shorts receive qty * face / mark * rate (face 1 USD), booked to 1e-12
        assert (f["amount"] > 0) == (f["side"] == "short") and f["rate"] == Decimal("0.0001")
        assert abs(abs(f["amount"]) - f["qty"] / mark * f["rate"]) < abs(f["amount"]) * Decimal("0.05")
