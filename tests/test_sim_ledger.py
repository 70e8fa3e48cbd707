"""The simulator ledger's integer arithmetic (sim.accounts) and its wire rendering (rows.ustr)."""
from __future__ import annotations

import math
from decimal import Decimal as D
from fractions import Fraction as F

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.sim import accounts as ac
from market_maker.sim.rows import dstr, ustr

amounts = st.decimals(min_value=D("-1e6"), max_value=D("1e6"), allow_nan=False,
                      allow_infinity=False, places=14)


def _nearest_up(x: F) -> int:
    return math.floor(x + F(1, 2))


@given(st.integers(-10**30, 10**30), st.integers(1, 10**25))
def test_rdiv_is_nearest_with_ties_toward_plus_infinity(n: int, d: int) -> None:
    assert ac.rdiv(n, d) == _nearest_up(F(n, d))


def test_rdiv_ties() -> None:
    assert [ac.rdiv(n, 2) for n in (-3, -1, 1, 3)] == [-1, 0, 1, 2]
    assert ac.rdiv(-25, 10) == -2 and ac.rdiv(25, 10) == 3


@given(st.integers(-10**20, 10**20), st.integers(-10**15, 10**15), st.integers(1, 10**15))
def test_times_applies_the_rate(x: int, num: int, den: int) -> None:
    assert ac.times(x, ac.make_rate(num, den)) == ac.rdiv(x * num, den)


@given(amounts)
def test_units_round_trip_and_whole_units(amount: D) -> None:
    units = ac.to_units(amount)
    assert units == _nearest_up(F(amount) * 10**12)
    assert ac.is_whole_units(amount) == (F(amount) * 10**12 == units)
    assert ac.to_decimal(units) == F(units, 10**12)
    if ac.is_whole_units(amount):
        assert ac.to_decimal(units) == amount


@given(st.integers(-10**22, 10**22))
def test_ustr_renders_units_as_dstr_renders_the_decimal(units: int) -> None:
    assert ustr(units) == dstr(ac.to_decimal(units))


def test_whole_units_is_exact_beyond_the_decimal_context_precision() -> None:
    assert ac.is_whole_units(D("1.000000000001")) and ac.is_whole_units(D("-7"))
    assert not ac.is_whole_units(D("1.0000000000000000000000000000001"))   # 32 digits
    assert not ac.is_whole_units(D("0.0000000000005"))


def test_ustr_examples() -> None:
    assert [ustr(u) for u in (0, 10**12, -5 * 10**11, 860_215_054, 1, -1)] == \
        ["0", "1", "-0.5", "0.000860215054", "0.000000000001", "-0.000000000001"]


@given(st.decimals(min_value=D("0.01"), max_value=D("1e7"), places=2))
def test_inverse_mark_is_face_over_mark_in_mark_units(mark: D) -> None:
    assert ac.inverse_mark(D(1), mark) == _nearest_up(F(1) / F(mark) * 10**20)
    assert ac.inverse_mark(D("0.1"), mark) == _nearest_up(F(1, 10) / F(mark) * 10**20)


@pytest.mark.parametrize("leverage", [D(1), D(3), D("12.5"), D(100)])
def test_position_margin_is_cost_over_leverage(leverage: D) -> None:
    for cost in (0, 1, 7, 10**11 + 3, 123_456_789_012):
        assert ac.pos_margin(cost, leverage) == _nearest_up(F(cost) / F(leverage))


@given(st.integers(-10**25, 10**25), st.integers(0, 10**17),
       st.sampled_from([D("0.005"), D("0.0125"), D("0.1"), D(0)]))
def test_maintenance_comparison_is_exact(equity: int, cost: int, mmr: D) -> None:
    # equity in mark units (1e-20), cost in ledger units (1e-12)
    exact = F(equity, 10**20) <= F(mmr) * F(cost, 10**12)
    assert ac.at_or_below(equity, cost, mmr.as_integer_ratio()) == exact


def test_upnl_long_gains_and_short_loses_when_the_mark_rises() -> None:
    cost = 10 * 10**12 // 10_000                    # 10 contracts bought at 10000: 0.001
    im = ac.inverse_mark(D(1), D(12_500))           # 1 / 12500 = 0.00008 per contract
    assert ac.upnl(True, 10, cost, im) == (10**9 - 8 * 10**8) * ac.FINE   # +0.0002
    assert ac.upnl(False, 10, cost, im) == -ac.upnl(True, 10, cost, im)
