"""The sweep machinery with a deterministic stand-in for the engine (tests/sweep_fakes.py): in this
process, in local worker processes and on a real Dask LocalCluster over loopback, with the same files
written each way; and its bad input (a failing run, an unreachable scheduler, a bad output folder)."""
from __future__ import annotations

import contextlib
import csv
import io
import pickle
import socket
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from market_maker import commands
from market_maker.backtest import grid, sweep
from market_maker.backtest.runs import RunSpec, base_values
from market_maker.backtest.sweep_output import FILES, combo_stats, heatmap_grid
from market_maker.settings import load_settings
from tests.sweep_fakes import fake_run

GRID = ["--grid", "INTERVAL=0.001,0.002,0.005", "--grid", "MIN_SPREAD=0.001,0.005"]


@pytest.fixture(autouse=True)
def no_user_settings(tmp_path, monkeypatch):
    """No ./settings.py nor $MM_SETTINGS of the machine leaks into these sweeps."""
    monkeypatch.delenv("MM_SETTINGS", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as local:  # any free port
        yield local


def run_sweep(out: Path, *extra: str, grid_args=GRID, seeds="1-3") -> int:
    return sweep.main([*grid_args, "--seeds", seeds, "--out", str(out), *extra], run=fake_run, check_market=False)


def files_of(out: Path) -> dict:
    return {name: (out / name).read_bytes() for name in FILES}


def read_rows(out: Path) -> list:
    return list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One sweep in this process (--workers 1): its folder, files and what it printed."""
    out = tmp_path_factory.mktemp("reference") / "inline"
    printed, progress = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(progress):
        assert run_sweep(out, "--workers", "1") == 0
    return out, files_of(out), printed.getvalue(), progress.getvalue()


def test_inline_sweep_writes_one_row_per_run_sorted_and_a_summary_that_agrees(reference):
    out, _, printed, progress = reference
    rows = read_rows(out)
    assert list(rows[0]) == ["INTERVAL", "MIN_SPREAD", "seed", "net_pnl", "sharpe", "max_drawdown", "inventory_std",
                             "fills", "maker_fills", "volume", "sim_seconds"]
    assert [(r["INTERVAL"], r["MIN_SPREAD"], r["seed"]) for r in rows] == [
        (i, s, str(seed)) for i in ("0.001", "0.002", "0.005") for s in ("0.001", "0.005") for seed in (1, 2, 3)]
    means = {}
    for r in rows:
        means.setdefault((r["INTERVAL"], r["MIN_SPREAD"]), []).append(Decimal(r["net_pnl"]))
    best = max(means, key=lambda k: sum(means[k]) / 3)
    summary = (out / "summary.txt").read_text()
    by_pnl = summary.split("Ranked by mean net PnL:")[1].split("Ranked by mean Sharpe:")[0].strip().splitlines()
    assert by_pnl[1].split()[:3] == ["1", *best]
    assert f"{sum(means[best]) / 3:.8f}" in by_pnl[1]
    assert "6 combination(s) x 3 seed(s) = 18 runs" in summary
    for name in ("heatmap_pnl.png", "heatmap_sharpe.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert progress.count("/18] ") == 18 and "ETA" in progress  # a progress line per run
    assert "[18/18]" in progress
    assert summary in printed and printed.rstrip().splitlines()[-1].startswith(f"wrote {out}/results.csv")
    assert [p.name for p in out.parent.iterdir()] == ["inline"]  # no staging folder left


def test_the_figures_follow_the_settings_the_worker_rebuilt(reference):
    """Each row's figures are the run function's for that row's settings and seed (nothing mixed up)."""
    base = load_settings(None, environ={})
    for row in read_rows(reference[0]):
        axes = grid.parse_grid([f"INTERVAL={row['INTERVAL']}", f"MIN_SPREAD={row['MIN_SPREAD']}"], base)
        spec = RunSpec(grid.combos(axes, base)[0], int(row["seed"]), base_values(base), "synthetic", None, 1.0)
        assert row["net_pnl"] == f"{fake_run(spec).net_pnl:f}"


def test_local_processes_give_the_same_files_as_inline(tmp_path, reference):
    assert run_sweep(tmp_path / "pool", "--workers", "2") == 0
    assert files_of(tmp_path / "pool") == reference[1]


def test_dask_cluster_gives_the_same_files_as_local(tmp_path, cluster, reference):
    assert run_sweep(tmp_path / "dask", "--dask", cluster.scheduler_address) == 0
    assert files_of(tmp_path / "dask") == reference[1]


@pytest.mark.parametrize("where", [["--workers", "1"], ["--workers", "2"], ["--dask"]])
def test_a_failing_run_fails_the_sweep_and_writes_nothing(tmp_path, capsys, where, request):
    if where == ["--dask"]:
        where = ["--dask", request.getfixturevalue("cluster").scheduler_address]
    out = tmp_path / "out"
    code = run_sweep(out, *where, grid_args=["--grid", "ORDER_PAIRS=6,13"], seeds="1-2")
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "run ORDER_PAIRS=13 seed=" in err and "the fake engine broke" in err and "nothing was written" in err
    assert list(tmp_path.iterdir()) == []  # no output folder, no staging folder


def test_a_failed_sweep_leaves_the_previous_results_as_they_were(tmp_path):
    out = tmp_path / "out"
    assert run_sweep(out, "--workers", "1", grid_args=["--grid", "ORDER_PAIRS=5"], seeds="1") == 0
    before = files_of(out)
    assert run_sweep(out, "--workers", "1", grid_args=["--grid", "ORDER_PAIRS=13"], seeds="1") == 1
    assert files_of(out) == before
    assert run_sweep(out, "--workers", "1", grid_args=["--grid", "ORDER_PAIRS=7"], seeds="1") == 0  # a good one
    assert read_rows(out)[0]["ORDER_PAIRS"] == "7"  # replaces them


def test_unreachable_scheduler_exits_2_with_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert run_sweep(tmp_path / "out", "--dask", f"tcp://127.0.0.1:{port}", "--dask-timeout", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"marketmaker sweep: --dask tcp://127.0.0.1:{port}: cannot reach the scheduler")
    assert "Traceback" not in "".join(err)
    assert not (tmp_path / "out").exists()


def test_a_port_that_is_no_scheduler_times_out_and_exits_2(tmp_path, capsys):
    with socket.socket() as silent:  # accepts connections, never speaks Dask
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = "tcp://127.0.0.1:%d" % silent.getsockname()[1]
        assert run_sweep(tmp_path / "out", "--dask", address, "--dask-timeout", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"marketmaker sweep: --dask {address}: no Dask scheduler answered within 1 s")


@pytest.mark.parametrize("address", ["nonsense:::", "tcp://127.0.0.1:notaport"])
def test_malformed_scheduler_address_exits_2(tmp_path, capsys, address):
    assert run_sweep(tmp_path / "out", "--dask", address, "--dask-timeout", "1") == 2
    assert "not a scheduler address" in capsys.readouterr().err


@pytest.mark.parametrize("args, says", [
    (["--grid", "INTERVL=0.1"], "bad settings: --grid: unknown setting INTERVL; the closest known one is INTERVAL"),
    (["--grid", "INTERVAL=0.1,1.5"], "INTERVAL = '1.5' is not allowed: a number strictly between 0 and 1"),
    (["--seeds", "5-1"], "--seeds '5-1': the range 5-1 runs backwards"),
    (["--strategy", "no_such_module:Cls"], "no module named 'no_such_module'"),
    (["--market", "replay", "a", "b"], "give a market name and at most one file"),
])
def test_bad_input_exits_2_naming_it_and_writes_nothing(tmp_path, capsys, args, says):
    out = tmp_path / "out"
    assert sweep.main([*GRID, "--out", str(out), *args], run=fake_run, check_market=False) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not out.exists()


def test_unknown_market_exits_2(tmp_path, capsys):
    assert sweep.main([*GRID, "--market", "no-such-market", "--out", str(tmp_path / "o")], run=fake_run) == 2
    assert "unknown market 'no-such-market'" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_exits_2(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert run_sweep(tmp_path / "taken", "--workers", "1") == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_missing_extras_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "_matplotlib_missing", lambda: True)
    assert run_sweep(tmp_path / "out", "--workers", "1") == 2
    assert "'sweep' extra" in capsys.readouterr().err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert run_sweep(tmp_path / "out", "--dask", "tcp://127.0.0.1:8786") == 2
    assert "--dask needs dask.distributed, the 'sweep' extra" in capsys.readouterr().err


def test_the_sweep_command_is_registered():
    assert commands.find(["sweep"]) is sweep.main
    assert "sweep" in commands.epilog()


def test_a_run_spec_carries_no_secret_and_rebuilds_the_settings(tmp_path):
    secret = "s3cr3t-never-travels"
    path = tmp_path / "base.py"
    path.write_text(f'BASE_URL = "https://api.example"\nWS_URL = "wss://api.example/ws"\nAPI_KEY = "key-1234"\n'
                    f'API_SECRET = "{secret}"\nORDER_PAIRS = 4\n')
    base = load_settings(str(path), environ={})
    axes = grid.parse_grid(["INTERVAL=0.002"], base)
    spec = RunSpec(grid.combos(axes, base)[0], 7, base_values(base), "synthetic", None, 0.5)
    assert secret.encode() not in pickle.dumps(spec) and b"key-1234" not in pickle.dumps(spec)
    settings = spec.settings()
    assert (settings.ORDER_PAIRS, settings.INTERVAL, settings.SIM_SEED) == (4, Decimal("0.002"), 7)
    assert settings.API_SECRET is None and settings.BASE_URL is None


def test_heatmap_cells_are_means_over_seeds_and_other_parameters(tmp_path):
    base = load_settings(None, environ={})
    for specs, shape in ((["INTERVAL=0.001,0.002"], (1, 2)), ([], (1, 1)),
                         (["INTERVAL=0.001,0.002", "MIN_SPREAD=0.001,0.005,0.01", "ORDER_PAIRS=3,5"], (3, 2))):
        axes = grid.parse_grid(specs, base)
        combos = grid.combos(axes, base)
        results = [fake_run(RunSpec(c, seed, base_values(base), "synthetic", None, 1.0))
                   for c in combos for seed in (1, 2)]
        cols, rows, matrix = heatmap_grid(axes, combo_stats(combos, results), "mean_pnl")
        assert (len(rows), len(cols)) == shape
        picked = [r for r in results if not axes or combos[r.combo_index].labels[0][1] == cols[-1]]
        if len(axes) > 1:
            picked = [r for r in picked if combos[r.combo_index].labels[1][1] == rows[0]]
        expected = sum(float(r.net_pnl) for r in picked) / len(picked)
        assert matrix[0][-1] == pytest.approx(expected)


def test_real_engine_sweep_is_the_same_in_this_process_and_on_dask(tmp_path, cluster):
    """End to end on the backtest engine: 2 combinations x 2 seeds x 36 simulated seconds."""
    args = ["--grid", "INTERVAL=0.002,0.005", "--seeds", "1-2", "--hours", "0.01"]
    assert sweep.main([*args, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert sweep.main([*args, "--dask", cluster.scheduler_address, "--out", str(tmp_path / "dask")]) == 0
    assert files_of(tmp_path / "dask") == files_of(tmp_path / "local")
    rows = read_rows(tmp_path / "local")
    assert [(r["INTERVAL"], r["seed"]) for r in rows] == [("0.002", "1"), ("0.002", "2"), ("0.005", "1"),
                                                          ("0.005", "2")]
    assert all(float(r["sim_seconds"]) == pytest.approx(36.0, abs=0.01) for r in rows)  # up to the last event
    assert sum(int(r["fills"]) for r in rows) > 0  # the default ladder trades on the synthetic market
    assert len({r["net_pnl"] for r in rows}) == 4  # each seed and setting is its own run
