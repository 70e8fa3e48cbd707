"""The file markets through the real backtest engine and command: an events file with and without
its tick, a recording's end ends the run, fills come from the queue model, bad files exit 2 with
nothing written."""
from __future__ import annotations

import importlib.util
import json
from decimal import Decimal
from pathlib import Path

from market_maker.backtest import command, replay  # noqa: F401  (registers the markets)
from market_maker.backtest.engine import run_backtest
from market_maker.backtest.market import build
from market_maker.market_maker import OrderManager
from market_maker.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
TIGHT = {"ORDER_PAIRS": 3, "ORDER_START_SIZE": 20, "ORDER_STEP_SIZE": 10, "INTERVAL": Decimal("0.0001"),
         "MIN_SPREAD": Decimal("0.0001"), "RELIST_INTERVAL": Decimal("0.0002")}


def gen_events():
    spec = importlib.util.spec_from_file_location("gen_events", ROOT / "bench" / "gen_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_an_events_file_backtest_fills_through_the_queue_and_is_deterministic(tmp_path):
    path = str(tmp_path / "dense.jsonl")
    count = gen_events().generate(path, hours=2 / 60, seed=4)
    assert count > 15_000
    settings = load_settings(overrides=TIGHT, environ={}, cwd=tmp_path)
    results = []
    for _ in range(2):
        market = build("events", settings, path)
        results.append(run_backtest(settings, OrderManager, market, seed=1, hours=1))
    a, b = (r.as_dict() for r in results)
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b                                     # same file, same seed: the same run
    result = results[0]
    assert 119 <= result.sim_seconds <= 121           # the file's end ended the one-hour run
    assert result.fills > 0 and result.maker_fills > 0
    assert market.fills > 0 and result.maker_fills >= market.fills   # queue-model fills are maker fills


def test_the_command_with_tick_and_bad_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"ts_ns": i * 10**8, "kind": "book", "side": side, "price": price, "qty": 50}
            for i in range(3) for side, price in (("bid", 9999.5 - i), ("ask", 10000.5 + i))]
    rows.append({"ts_ns": 30 * 10**9, "kind": "trade", "side": "sell", "price": 9999.5, "qty": 5})
    plain = tmp_path / "e.jsonl"
    plain.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert command.main(["--market", "events", str(plain), "--tick", "0.5", "--hours", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("Wall time") and "Simulated 0.01 h" in out[0]
    journal = tmp_path / "j.sqlite"
    assert command.main(["--market", "events", str(plain), "--hours", "1", "--journal", str(journal)]) == 2
    err = capsys.readouterr().err
    assert f"{plain}, line 1: the file gives no tick size: pass --tick" in err and err.count("\n") == 1
    plain.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]) + '{"ts_ns": 1, "kind"\n')
    assert command.main(["--market", "events", str(plain), "--tick", "0.5", "--journal", str(journal)]) == 2
    assert f"{plain}, line 4: not a JSON object" in capsys.readouterr().err
    assert command.main(["--market", "replay", str(plain)]) == 2
    assert "line 1: not a recording" in capsys.readouterr().err
    assert command.main(["--market", "trades-csv", str(tmp_path / "none.csv")]) == 2
    assert "none.csv: cannot read" in capsys.readouterr().err
    assert not journal.exists()
