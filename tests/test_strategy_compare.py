"""bench/strategy_compare.py, kept short: a few simulated seconds per strategy."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("strategy_compare", ROOT / "bench" / "strategy_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_runs_the_strategies_through_the_backtester(tmp_path, capsys):
    bench = load_bench()
    out = tmp_path / "cmp.json"
    assert bench.main(["--seeds", "1", "--hours", "0.005", "--markets", "default", "--strategies", "grid,glft",
                       "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| grid | 1 |" in printed and "| glft | 1 |" in printed and "GLFT vs grid:" in printed
    data = json.loads(out.read_text())
    glft = [r for r in data["runs"] if r["strategy"] == "glft"][0]
    assert glft["fills"] > 0 and glft["maker_fills"] <= glft["fills"]
    assert data["summary"]["default"]["glft"]["runs"] == 1


def test_summary_figures():
    bench = load_bench()
    rows = [dict(market="m", strategy="s", seed=i, net_pnl=p, sharpe=sh, max_drawdown=0.1, inventory_std=q,
                 fills=10, maker_fills=m, volume=100) for i, (p, sh, q, m) in
            enumerate([(1.0, 0.5, 100, 10), (3.0, 1.5, 300, 5)])]
    f = bench.summarise(rows)["m"]["s"]
    assert f["pnl_mean"] == 2.0 and abs(f["pnl_std"] - 2 ** 0.5) < 1e-12
    assert f["sharpe"] == 1.0 and f["inventory_std"] == 200 and f["maker_share"] == 0.75
