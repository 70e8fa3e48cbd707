"""A deterministic stand-in for the backtest engine, for the tests of the sweep machinery only.

Its figures depend on the run's settings (as the worker rebuilt them) and seed, so a sweep that
mixed up settings, seeds or results would give different numbers. It runs in worker processes
and on Dask workers, which import it by name.
"""
from __future__ import annotations

import random
from decimal import Decimal

from market_maker.backtest.runs import RunResult, RunSpec

FAILING_ORDER_PAIRS = 13  # a run with this ORDER_PAIRS raises, like an engine that breaks


class FakeBacktestResult:
    def __init__(self, **fields):
        self.__dict__.update(fields)


def fake_run(spec: RunSpec) -> RunResult:
    settings = spec.settings()
    if settings.ORDER_PAIRS == FAILING_ORDER_PAIRS:
        raise RuntimeError("the fake engine broke")
    rng = random.Random(f"{settings.SIM_SEED}/{settings.INTERVAL}/{settings.MIN_SPREAD}/{settings.ORDER_PAIRS}")
    edge = settings.MIN_SPREAD * 1000 - settings.INTERVAL * 2000 + settings.ORDER_PAIRS
    pnl = (edge + Decimal(rng.randint(-500, 500)) / 100).quantize(Decimal("0.00000001")) / Decimal(10 ** 6)
    fills = rng.randint(0, 400)
    return RunResult.of(spec, FakeBacktestResult(
        net_pnl=pnl, sharpe=rng.gauss(float(edge), 1.0), max_drawdown=abs(pnl) / 3, inventory_std=rng.random() * 50,
        fills=fills, maker_fills=fills // 2, volume=fills * 7, sim_seconds=spec.hours * 3600.0,
        wall_seconds=rng.random()))
