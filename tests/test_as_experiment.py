"""The paper's market and experiment, kept short (the 10 000-run version is the command line's)."""
import json
import math

import pytest

from market_maker.backtest import as_experiment
from market_maker.backtest.as_model import ASModel, simulate
from market_maker.strategies import avellaneda


def test_the_experiment_quotes_with_the_managers_own_function():
    assert as_experiment.as_quote is avellaneda.as_quote


def test_model_fills_at_the_paper_rate():
    # quotes at distance d on both sides: fills per unit time A exp(-k d) per side
    model = ASModel()
    d = 0.5
    out = simulate(model, {"fixed": lambda s, q, t: (s - d, s + d)}, runs=300, seed=4)["fixed"]
    expected = model.A * math.exp(-model.k * d) * model.T * d * 2  # two sides, each fill earns d on average
    assert out.mean_spread == pytest.approx(1.0)
    assert sum(out.profits) / len(out.profits) == pytest.approx(expected, rel=0.05)


def test_seeded_and_the_same_path_for_every_strategy():
    model = ASModel()
    same = {"a": lambda s, q, t: (s - 1, s + 1), "b": lambda s, q, t: (s - 1, s + 1)}
    out = simulate(model, same, runs=20, seed=9)
    assert out["a"].profits == out["b"].profits
    assert simulate(model, same, runs=20, seed=9)["a"].profits == out["a"].profits
    assert simulate(model, same, runs=20, seed=10)["a"].profits != out["a"].profits


def test_inventory_strategy_holds_less_and_varies_less_than_symmetric():
    result = as_experiment.experiment(gamma=0.1, runs=400, seed=3)
    inv, sym = result["inventory"], result["symmetric"]
    assert set(result) == {"gamma", "runs", "inventory", "symmetric"}
    assert set(inv) == set(sym) == {"spread", "profit_mean", "profit_std", "q_mean", "q_std"}
    assert inv["spread"] == pytest.approx(sym["spread"])
    assert inv["spread"] == pytest.approx(0.1 * 4 * 0.5025 + 20 * math.log(1 + 0.1 / 1.5), rel=1e-3)
    assert inv["q_std"] < 0.5 * sym["q_std"]
    assert inv["profit_std"] < 0.7 * sym["profit_std"]
    assert 55 < inv["profit_mean"] < 75  # the paper: 62.94 (1000 runs)


def test_command_line_writes_the_json(tmp_path, capsys):
    path = tmp_path / "out.json"
    assert as_experiment.main(["--gamma", "1", "--runs", "50", "--seed", "2", "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["gamma"] == 1.0 and data["runs"] == 50
    assert "inventory" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        as_experiment.main(["--gamma", "0"])
    with pytest.raises(SystemExit):
        as_experiment.main(["--gamma", "nan"])
