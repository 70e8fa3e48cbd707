"""`python marketmaker report`: markouts, summary figures, HTML, CSV, bad input, the speed bench's generator."""
from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal as D
from pathlib import Path

import pytest

from market_maker.journal.report import command, stats
from market_maker.journal.report.attribution import units_text
from market_maker.journal.report.reader import load_run, open_journal
from market_maker.journal.report.summary import build, summary_rows, text

from .journal_builder import JournalBuilder

ROOT = Path(__file__).resolve().parents[1]


def report_cmd(cwd, *args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "marketmaker"), "report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=env)


def small_journal(path) -> str:
    """Ten minutes: four mids, three fills, a pause, two margins rows, a short position at the end."""
    j = JournalBuilder(path).run(started_ms=0, stopped_ms=600_000)
    for ts, mid in ((0, "10000"), (1000, "10002"), (11_000, "9996"), (61_000, "10010"), (600_000, "10000")):
        j.market(ts, mid, mark=mid)
    j.fill(1000, "buy", 10, "9999", fee="-0.00000025", maker=1)
    j.fill(11_000, "sell", 10, "9997", fee="0.00000075", maker=0)
    j.fill(599_500, "sell", 20, "10000", fee="-0.0000005", maker=1)
    j.position(599_500, "long", 0)
    j.position(599_500, "short", 10)
    j.requote(0, "9999", "10001")
    j.event(120_000, "pause", "stale market data")
    j.event(150_000, "resume")
    j.requote(180_000, "9999", "10001")
    j.requote(300_000, "9999", None)
    j.requote(360_000, "9999", "10001")
    j.event(600_000, "stop")
    j.margin(0, "1", order_margin="0.001", pos_margin="0.002")
    j.margin(300_000, "1.0001", order_margin="0.002", pos_margin="0.004")
    for rid, kind, outcome, oid in ((1, "create", "ok", "o1"), (2, "create", "ok", "o2"),
                                    (3, "create", "refused", None), (4, "create", "in_doubt", None),
                                    (5, "cancel_batch", "ok", "o1"), (5, "cancel_batch", "ok", "o2"),
                                    (6, "cancel", "not_found", "o3"), (7, "create", "deferred", None)):
        j.request(rid * 1000, rid, kind, outcome, oid)
    j.order("o1", price="9999", qty=10, status=32, filled=10, fee="-0.00000025", updated_ms=1000)
    j.order("o2", side="sell", price="10000.5", qty=5, status=8, updated_ms=5000)
    return j.close()


def load(path, run_id=1):
    db = open_journal(str(path))
    try:
        return build(load_run(db, run_id))
    finally:
        db.close()


# ----------------------------------------------------------------------------------------------------------------------
# figures


def test_markouts_on_a_tiny_journal(tmp_path):
    r = load(small_journal(tmp_path / "j.sqlite"))
    m = r.markouts
    # buy at 1 s (mid 10002): +0 after 1 s, 9996 after 10 s (-6), 10010 after 60 s (+8)
    # sell at 11 s (mid 9996): 0, 0, then 10010 after 60 s: -14 for a sell; the last fill has no later mid
    assert [m.move(1000, i) for i in range(3)] == [D(0), D(0), None]
    assert [m.move(10_000, i) for i in range(3)] == [D(-6), D(0), None]
    assert [m.move(60_000, i) for i in range(3)] == [D(8), D(-14), None]
    assert m.price[60_000] == [8.0, -14.0]
    assert m.mean(60_000) == pytest.approx(-3.0) and m.count(60_000) == 2
    assert m.mean_bps(10_000) == pytest.approx((-6 / 10002 * 1e4 + 0) / 2)


def test_summary_figures_of_a_hand_built_journal(tmp_path):
    r = load(small_journal(tmp_path / "j.sqlite"))
    rows = dict(summary_rows(r))
    assert rows["duration"] == "10m 00s"
    # quoted 0-120 s (pause), 180-300 s (bid only from 300 s), 360-600 s: 480 of 600 s
    assert r.uptime == pytest.approx(0.8) and rows["quote uptime (both sides quoted)"] == "80.00 %"
    assert rows["orders sent / cancelled / rejected"] == "4 / 2 / 1"
    assert rows["creates in doubt / errors; cancels not found"] == "1 / 0; 1"
    assert rows["API calls / per fill"] == "6 / 2.00"                 # a cancel_batch is one call
    assert rows["fills / maker share (of fills, of contracts)"] == "3 / 66.67 %, 75.00 %"
    assert r.volume_contracts == 40
    assert rows["volume"] == f"40 contracts, {D(10) / D(9999) + D(10) / D(9997) + D(20) / D(10000):.8f} BTC"
    a = r.attribution
    assert (a.net_start, a.net_end) == (10, -10)
    assert a.exchange_change == D("0.0001") * 10 ** 20 and a.net == a.exchange_change
    assert rows["net PnL"].startswith("0.00010000 BTC = 1.00 USD at mid 10000 ")
    # |net| 10 for 1 s, 20 for 10 s, 10 for 588.5 s, 10 for 0.5 s
    assert r.inventory_max == 20 and r.inventory_avg == pytest.approx(6_100_000 / 600_000)
    assert (r.margin_max, r.margin_avg) == (pytest.approx(0.006), pytest.approx(0.0045))
    assert rows["return on margin (net PnL / max, / average)"] == "1.67 % / 2.22 %"
    assert r.sharpe is not None and r.drawdown >= 0
    out = text(r)
    assert "PnL attribution (BTC, exact)" in out and "unexplained" in out


def test_drawdown_sharpe_and_sampling():
    assert stats.max_drawdown([1, 3, 2, 5, 1, 4]) == 4
    assert stats.max_drawdown([-1, -2]) == 2 and stats.max_drawdown([]) == 0
    assert stats.per_minute([30_000, 90_000], [1.0, 2.0], 0, 180_000) == [0.0, 1.0, 2.0, 2.0]
    assert stats.sharpe([0, 1, 2, 3]) is None                          # no variation
    changes = [1, 2, 1, 2]
    samples = [0]
    for c in changes:
        samples.append(samples[-1] + c)
    mean, sd = 1.5, (sum((c - 1.5) ** 2 for c in changes) / 3) ** 0.5
    assert stats.sharpe(samples) == pytest.approx(mean / sd * (525_600 ** 0.5))


# ----------------------------------------------------------------------------------------------------------------------
# the command: HTML, CSV, default paths


def test_html_is_self_contained_and_csv_round_trips(tmp_path, capsys):
    path = small_journal(tmp_path / "j.sqlite")
    before = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    html, out_dir = tmp_path / "r.html", tmp_path / "csv"
    assert command.main([path, "--html", str(html), "--csv", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "Run 1: live BTC_USD" in printed and f"HTML report: {html}" in printed
    page = html.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?https?://", page) and "http://" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == before           # read-only
    assert sorted(os.listdir(tmp_path)) == ["csv", "j.sqlite", "r.html"]

    db = sqlite3.connect(path)
    with open(out_dir / "fills.csv", newline="") as f:
        fills = list(csv.DictReader(f))
    stored = db.execute("SELECT exec_id, price, qty, fee, side FROM executions ORDER BY ts_ms").fetchall()
    assert [(r["exec_id"], r["price"], int(r["qty"]), r["fee"], r["side"]) for r in fills] == stored
    assert fills[0]["mid"] == "10002" and fills[0]["markout_60s"] == "8" and fills[2]["markout_1s"] == ""
    assert D(fills[0]["spread_capture"]) == D(10) * (D(1) / D(9999) - D(1) / D(10002)).quantize(D("1e-20"))
    with open(out_dir / "orders.csv", newline="") as f:
        orders = list(csv.DictReader(f))
    assert [(o["order_id"], o["price"], o["fee"]) for o in orders] == \
        db.execute("SELECT order_id, price, fee FROM orders ORDER BY updated_ms").fetchall()
    with open(out_dir / "equity.csv", newline="") as f:
        equity = list(csv.DictReader(f))
    db.close()
    assert len(equity) == 5 and [e["mid"] for e in equity] == ["10000", "10002", "9996", "10010", "10000"]
    for e in equity:
        assert D(e["spread_capture"]) + D(e["inventory"]) + D(e["fees"]) + D(e["funding"]) == D(e["equity"])
    r = load(path)
    assert equity[-1]["equity"] == units_text(r.attribution.series.equity(4))


def test_default_journal_and_html_path_and_all_runs(tmp_path):
    j = JournalBuilder(tmp_path / "journal.sqlite")
    for run_id in (1, 2):
        j.run(run_id=run_id, started_ms=run_id * 1_000_000, stopped_ms=run_id * 1_000_000 + 5_000)
        j.market(run_id * 1_000_000, "10000")
    j.close()
    proc = report_cmd(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Run 2:" in proc.stdout and "Run 1:" not in proc.stdout and (tmp_path / "report-2.html").exists()
    proc = report_cmd(tmp_path, "--all", "--no-html")
    assert proc.returncode == 0 and "Run 1:" in proc.stdout and "Run 2:" in proc.stdout
    assert not (tmp_path / "report-all.html").exists()
    proc = report_cmd(tmp_path, "journal.sqlite", "--run", "1", "--no-html")
    assert proc.returncode == 0 and "Run 1:" in proc.stdout and "Run 2:" not in proc.stdout


def test_without_matplotlib_the_summary_still_prints(tmp_path):
    path = small_journal(tmp_path / "j.sqlite")
    fake = tmp_path / "fake"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    proc = report_cmd(tmp_path, path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Run 1:" in proc.stdout and "pip install -e '.[report]'" in proc.stdout
    assert not (tmp_path / "report-1.html").exists()
    proc = report_cmd(tmp_path, path, "--html", "x.html", env=env)
    assert proc.returncode == 1 and "Run 1:" in proc.stdout
    assert proc.stderr.strip().splitlines() == ["The HTML report needs matplotlib: pip install -e '.[report]'"]


# ----------------------------------------------------------------------------------------------------------------------
# bad input: one line, exit 2, no traceback, nothing written


def plain_sqlite(path):
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x)")


def newer_journal(path):
    JournalBuilder(path).run().close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()


@pytest.mark.parametrize("make, args, said", [
    (None, ["missing.sqlite"], "missing.sqlite: no such file"),
    (lambda p: p.write_text("not a database, just text\n" * 100), ["j.sqlite"], "j.sqlite is not an SQLite journal"),
    (lambda p: p.mkdir(), ["j.sqlite"], "j.sqlite is a directory, not a journal"),
    (plain_sqlite, ["j.sqlite"], "is an SQLite file but not a journal"),
    (lambda p: JournalBuilder(p).close(), ["j.sqlite"], "j.sqlite has no runs"),
    (lambda p: JournalBuilder(p).run(run_id=3).close(), ["j.sqlite", "--run", "7"],
     "j.sqlite has no run 7; its runs: 3"),
    (newer_journal, ["j.sqlite"], "j.sqlite: the journal has schema version 99; this report knows up to 1"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make, args, said):
    target = tmp_path / "j.sqlite"
    if make:
        make(target)
    snapshot = sorted(os.listdir(tmp_path))
    proc = report_cmd(tmp_path, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0] and lines[0].startswith("marketmaker report: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(os.listdir(tmp_path)) == snapshot                   # nothing created, nothing migrated
    if make is newer_journal:
        with closing(sqlite3.connect(target)) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 99


def test_the_bot_help_lists_the_commands(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "marketmaker"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "report" in proc.stdout and "--dry-run" in proc.stdout


# ----------------------------------------------------------------------------------------------------------------------
# the speed bench's generator, small


def test_the_speed_bench_journal_is_consistent_with_its_ledger(tmp_path):
    spec = importlib.util.spec_from_file_location("report_speed", ROOT / "bench" / "report_speed.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = str(tmp_path / "j.sqlite")
    records = bench.generate(path, seconds=900, seed=3, funding_every_s=300)
    assert records > 5_000
    r = load(path)
    a = r.attribution
    assert len(r.data.fills) > 50 and len(r.data.funding) >= 2 and a.funding != 0
    assert a.exchange_change is not None and a.unexplained == 0 and a.net == a.exchange_change
    assert 0.9 < r.uptime <= 1 and r.data.requests["api_calls"] > 0
