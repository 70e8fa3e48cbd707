"""bench/fill_markout.py: the markout arithmetic on made-up fills, and one short run through the backtester."""
import importlib.util
import math
import sys
from decimal import Decimal as D
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("fill_markout", ROOT / "bench" / "fill_markout.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def path_of(bench, *points):
    path = bench.ReferencePath()
    for ms, price in points:
        path.add(ms, D(price))
    return path


def test_reference_is_the_last_step_at_or_before_the_time(bench):
    path = path_of(bench, (1000, "100"), (1050, "101"))
    assert path.at(900) == D(100) and path.at(1000) == D(100) and path.at(1049) == D(100)
    assert path.at(1050) == D(101) and path.at(99999) == D(101)
    with pytest.raises(ValueError):
        bench.ReferencePath().at(0)


def test_markouts_sign_by_side_distance_from_the_placement_and_fee_as_a_price_move(bench):
    path = path_of(bench, (0, "10000"), (500, "10010"), (1500, "10004"), (5500, "9990"))
    placed = {"b": bench.Placed(0, D("9990")), "s": bench.Placed(0, D("10005"))}
    rebate = D("-0.00025") * 30 / D("10008")  # an inverse contract's fee: qty / price * rate BTC
    fills = [bench.Fill(500, "s", "sell", D("10005"), 30, D("-0.00025") * 30 / D("10005")),
             bench.Fill(600, "b", "buy", D("10008"), 30, rebate)]
    sell, buy = bench.markouts(fills, placed, path, [1, 5])
    assert sell.placed_distance == 5 and buy.placed_distance == 10  # both on the passive side
    assert sell.markouts == (-5, 1, 15)  # sold at 10005 with the reference at 10010, 10004, 9990
    assert buy.markouts == (2, -4, -18)  # bought at 10008 (a better price than ours: a taker's fill)
    assert sell.age_s == 0.5 and buy.age_s == 0.6
    assert abs(sell.fee_usd - D("-2.50125")) < D("1e-20")  # 0.025 % of 10005 as a price move
    assert sell.edge == sell.markouts[0] - sell.fee_usd


def test_a_fill_of_an_order_not_seen_created_has_no_distance_and_no_band(bench):
    path = path_of(bench, (0, "100"))
    (row,) = bench.markouts([bench.Fill(0, "x", "buy", D("99"), 1, D(0))], {}, path, [])
    assert row.placed_distance is None and row.age_s is None and row.markouts == (1,)
    assert bench.by_distance([row], [D(0)]) == []


def test_bands_are_contract_weighted_with_the_standard_error_of_the_edge(bench):
    def row(distance, qty, markout, fee="-2"):
        return bench.FillMarkout(D(distance), 1.0, qty, (D(markout), D(0)), D(fee))
    rows = [row("-1", 10, "3"), row("2", 10, "-4"), row("3", 30, "0"), row("12", 5, "-1")]
    near, middle, far = bench.by_distance(rows, [D(0), D(10)])
    assert (near["high"], near["fills"], near["edge"]) == (0, 1, 5)
    assert (middle["low"], middle["high"], middle["contracts"]) == (0, 10, 40)
    assert middle["markouts"][0] == D(-1)  # (10 * -4 + 30 * 0) / 40
    assert middle["edge"] == 1  # the rebate, 2, on top
    # edges -2 and 2 around 1, weights 10 and 30: variance (10 * 9 + 30 * 1) / 40 = 3, over 2 fills
    assert math.isclose(middle["edge_se"], math.sqrt(3 / 2))
    assert far["low"] == 10 and far["high"] == math.inf and far["edge"] == 1


def test_set_values(bench):
    assert bench.parse_value("1") == 1 and bench.parse_value("0.0002") == D("0.0002")
    assert bench.parse_value("0.0001, 0.1") == (D("0.0001"), D("0.1"))
    assert bench.parse_value("microprice") == "microprice"


def test_a_short_run_of_glft_gives_its_fills_markouts(bench, capsys):
    result, rows = bench.run("glft", "default", 101, 0.01, {"RELIST_INTERVAL": D("0.0002")}, [1])
    assert result.fills > 0 and len(rows) == result.fills
    assert all(len(r.markouts) == 2 for r in rows)
    assert sum(r.fee_usd < 0 for r in rows) == result.maker_fills  # the rebate; a taker fill pays
    assert bench.main(["--seeds", "1", "--hours", "0.005", "--set", "RELIST_INTERVAL=0.0002"]) == 0
    assert "| placed (USD from ref) |" in capsys.readouterr().out
