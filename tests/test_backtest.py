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
    a = run(settings, events=first)
    b = run(settings, events=second)
    assert a.fills > 0 and a.volume > 0 and a.maker_fills <= a.fills
    assert figures(a) == figures(b)
    assert first == second and any(kind == "execution" for kind, _, _ in first)
    assert isinstance(a.net_pnl, Decimal) and a.net_pnl == a.end_equity - a.start_equity
    assert a.sim_seconds == pytest.approx(60, abs=1)
    other = run(settings, seed=4, hours=MINUTE / 2)
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
    result = run(settings_for(tmp_path), OnePair, events=events)
    creates = [f for kind, _, f in events if kind == "order" and f["action"] == "create"]
    assert len(calls) > 100 and result.exit_code == 0
    assert creates and {f["qty"] for f in creates} == {50}
    assert calls[-1] - calls[0] == pytest.approx(60, abs=1)  # the strategy's clock is the simulated one


def test_rate_limits_hold_in_simulated_time(tmp_path):
    events = []
    settings = settings_for(tmp_path, ORDER_PAIRS=30, ORDER_STEP_SIZE=10, INTERVAL=Decimal("0.0005"), MIN_SPREAD=Decimal("0.0005"),
                            RELIST_INTERVAL=Decimal("0.0005"), API_REST_INTERVAL=0)
    result = run(settings, events=events)
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
    fast = run(settings, hours=MINUTE / 2)
    slow = run(settings, latency=50, events=slow_events, hours=MINUTE / 2)
    latencies = {f["latency_ms"] for kind, _, f in slow_events if kind == "order"}
    assert latencies and all(abs(ms - 100.0) < 1e-6 for ms in latencies)  # there and back (float seconds)
    assert figures(fast) != figures(slow)
    spread = run(settings, latency="20:80", hours=MINUTE / 4)
    again = run(settings, latency="20:80", hours=MINUTE / 4)
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
             (["--strategy", "nowhere:Thing"], "no module named 'nowhere'")]
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
        run_backtest(settings, OrderManager, build("synthetic", settings), seed=5, hours=MINUTE / 2,
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
    """15 s of the bot in real time against the embedded simulator and 15 s of backtest, same settings and
    seed: the fill counts agree within the spread of two Poisson counts (3 standard deviations of their
    difference, sqrt(a + b), plus 3 for the timing of the first quotes), and both trade."""
    from market_maker.backtest.agreement import backtest, realtime
    settings = settings_for(tmp_path)
    live = realtime(settings, seed=11, seconds=15)
    simulated = backtest(settings, seed=11, seconds=15)
    assert live.fills > 0 and simulated.fills > 0
    assert abs(live.fills - simulated.fills) <= 3 * (live.fills + simulated.fills) ** 0.5 + 3
