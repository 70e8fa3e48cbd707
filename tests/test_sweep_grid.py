"""The sweep's grid and seed lists: parsing, and every bad input named with what is allowed."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.backtest import grid
from market_maker.settings import SettingsError, load_settings


@pytest.fixture(scope="module")
def base():
    return load_settings(None, environ={}, cwd=None, overrides={"BASE_URL": None})


def test_seed_ranges_lists_and_mixes():
    assert grid.parse_seeds("1-20") == list(range(1, 21))
    assert grid.parse_seeds("1,3,5") == [1, 3, 5]
    assert grid.parse_seeds(" 1-3 , 9 ") == [1, 2, 3, 9]
    assert grid.parse_seeds("0") == [0]
    assert grid.parse_seeds(str(grid.MAX_SEED)) == [grid.MAX_SEED]


@pytest.mark.parametrize("text, says", [
    ("", "is not a seed"), ("x", "'x' is not a seed"), ("1-", "'1-' is not a seed"), ("-3", "'-3' is not a seed"),
    ("1.5", "is not a seed"), ("1,,2", "'' is not a seed"), (str(2 ** 63), "is not a seed"),
    ("9-3", "runs backwards; write 3-9"), ("1,2,1", "seed 1 is given twice"), ("1-5,3-7", "seed 3 is given twice"),
    ("0-2000000", "more than 1000000 seeds"),
])
def test_bad_seeds_are_named(text, says):
    with pytest.raises(SettingsError, match="--seeds") as caught:
        grid.parse_seeds(text)
    assert says in str(caught.value)


@given(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=30, unique=True))
def test_any_list_of_distinct_seeds_reads_back(seeds):
    assert grid.parse_seeds(",".join(map(str, seeds))) == seeds


def test_grid_values_take_the_settings_types(base):
    axes = grid.parse_grid(["INTERVAL=0.001,0.002,0.005", "ORDER_PAIRS=6, 30", "MARGIN_MODE=cross,'isolated'",
                            "POST_ONLY=True,False", "SIM_FAULT_LATE_CREATE_MS=(0, 5),(10,20)"], base)
    assert [a.name for a in axes] == ["INTERVAL", "ORDER_PAIRS", "MARGIN_MODE", "POST_ONLY", "SIM_FAULT_LATE_CREATE_MS"]
    assert axes[0].values == (Decimal("0.001"), Decimal("0.002"), Decimal("0.005"))  # exact, never via float
    assert axes[0].labels == ("0.001", "0.002", "0.005")
    assert axes[1].values == (6, 30)
    assert axes[2].values == ("cross", "isolated")
    assert axes[3].values == (True, False)
    assert axes[4].values == ((0, 5), (10, 20))


def test_combinations_in_grid_order_last_axis_fastest(base):
    axes = grid.parse_grid(["INTERVAL=0.001,0.002,0.005", "MIN_SPREAD=0.001,0.005"], base)
    combos = grid.combos(axes, base)
    assert [c.index for c in combos] == list(range(6))
    assert [c.describe() for c in combos[:3]] == ["INTERVAL=0.001 MIN_SPREAD=0.001", "INTERVAL=0.001 MIN_SPREAD=0.005",
                                                  "INTERVAL=0.002 MIN_SPREAD=0.001"]
    assert dict(combos[5].changes) == {"INTERVAL": Decimal("0.005"), "MIN_SPREAD": Decimal("0.005")}
    assert grid.combos([], base)[0].describe() == "(base settings)"


@pytest.mark.parametrize("spec, says", [
    ("INTERVL=0.1", "unknown setting INTERVL; the closest known one is INTERVAL"),
    ("ORDERPAIRS=3", "unknown setting ORDERPAIRS; the closest known one is ORDER_PAIRS"),
    ("interval=0.1", "unknown setting interval; the closest known one is INTERVAL"),
    ("INTERVAL=0.001,2", "INTERVAL = 2 is not allowed: a number strictly between 0 and 1"),
    ("INTERVAL=abc", "INTERVAL = 'abc' is not allowed: a number strictly between 0 and 1"),
    ("ORDER_PAIRS=6.5", "ORDER_PAIRS = '6.5' is not allowed: a whole number from 1 to 50"),
    ("ORDER_PAIRS=0", "ORDER_PAIRS = 0 is not allowed: a whole number from 1 to 50"),
    ("POST_ONLY=yes", "POST_ONLY = 'yes' is not allowed: True or False"),
    ("MARGIN_MODE=cross,portfolio", "MARGIN_MODE = 'portfolio' is not allowed: \"cross\" or \"isolated\""),
    ("INTERVAL=0.1,,0.2", "an empty value"),
    ("INTERVAL=", "an empty value"),
    ("INTERVAL", "expected NAME=VALUE1,VALUE2"),
    ("=1", "expected NAME=VALUE1,VALUE2"),
    ("INTERVAL=0.1,0.10", "the value 0.10 is given twice"),
    ("API_SECRET=abc", "API_SECRET cannot be swept"),
    ("SIM_SEED=1,2", "give the seeds with --seeds"),
])
def test_bad_grid_names_the_setting_value_and_what_is_allowed(base, spec, says):
    with pytest.raises(SettingsError, match="--grid") as caught:
        grid.parse_grid([spec], base)
    assert says in str(caught.value)


def test_a_setting_given_twice_is_refused(base):
    with pytest.raises(SettingsError, match="INTERVAL is given twice"):
        grid.parse_grid(["INTERVAL=0.1", "INTERVAL=0.2"], base)


def test_every_combination_is_checked_as_a_whole(base):
    axes = grid.parse_grid(["MIN_POSITION=-100,50", "MAX_POSITION=40,100"], base)  # each value alone is fine
    with pytest.raises(SettingsError) as caught:
        grid.combos(axes, base)
    message = str(caught.value)
    assert "--grid combination MIN_POSITION=50 MAX_POSITION=40" in message
    assert "MIN_POSITION (50) must be less than MAX_POSITION (40)" in message


def test_too_many_runs_refused_before_anything_runs():
    with pytest.raises(SettingsError, match="more than"):
        grid.check_size(1000, 2000)
    assert grid.check_size(6, 20) == 120


@given(st.lists(st.from_regex(r"[A-Za-z0-9_.]{1,8}", fullmatch=True), min_size=1, max_size=8))
def test_split_values_inverts_a_comma_join(tokens):
    assert grid.split_values(",".join(tokens)) == tokens


def test_split_values_keeps_brackets_and_quotes_whole():
    assert grid.split_values("(1, 2),[3,4], 'a,b' ,c") == ["(1, 2)", "[3,4]", "'a,b'", "c"]


# ----------------------------------------------------------------------------------------------------------------------
# What a sweep writes does not depend on the order its runs finish in


@pytest.fixture(scope="module")
def finished_runs(base):
    from market_maker.backtest.runs import RunSpec, base_values
    from tests.sweep_fakes import fake_run
    axes = grid.parse_grid(["INTERVAL=0.001,0.002", "MIN_SPREAD=0.001,0.005"], base)
    combos = grid.combos(axes, base)
    return axes, combos, [fake_run(RunSpec(c, seed, base_values(base), "synthetic", None, 1.0))
                          for c in combos for seed in (3, 1, 2)]


@given(st.randoms(use_true_random=False))
def test_results_and_summary_do_not_depend_on_finishing_order(finished_runs, rnd):
    from market_maker.backtest.sweep_output import results_csv, summary_text
    axes, combos, results = finished_runs
    shuffled = list(results)
    rnd.shuffle(shuffled)
    about = {"market": "synthetic"}
    assert results_csv(axes, combos, shuffled) == results_csv(axes, combos, results)
    assert summary_text(axes, combos, shuffled, about) == summary_text(axes, combos, results, about)
    seeds = [line.split(",")[2] for line in results_csv(axes, combos, shuffled).splitlines()[1:4]]
    assert seeds == ["1", "2", "3"]  # sorted by seed within a combination


def test_a_write_that_fails_part_way_leaves_nothing(tmp_path, monkeypatch):
    from pathlib import Path

    from market_maker.backtest.sweep_output import publish
    real_write = Path.write_bytes
    written = []

    def failing_write(self, data):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(self.name)
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing_write)
    with pytest.raises(OSError):
        publish(tmp_path / "out", {"results.csv": b"a", "summary.txt": b"b", "heatmap_pnl.png": b"c"})
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.csv").write_text("previous")
    written.clear()
    with pytest.raises(OSError):
        publish(tmp_path / "out", {"results.csv": b"a", "summary.txt": b"b", "heatmap_pnl.png": b"c"})
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "results.csv").read_text() == "previous"
