"""The market of Avellaneda & Stoikov (2008), section 4: the paper's own simulation, seeded and pure.

The mid moves up or down by ``sigma sqrt(dt)`` with probability 1/2 each step. A strategy
quotes a bid and an ask every step; each is filled (one unit) with probability
``A exp(-k delta) dt`` (capped at 1), ``delta`` its distance from the mid: at most one fill per
side per step. After ``T`` the profit is the cash plus the inventory at the final mid,
``x + q S_T``. Defaults are the paper's: s0 = 100, T = 1, sigma = 2, dt = 0.005, A = 140, k = 1.5.

Every strategy of one run sees the same price path and the same fill draws (common random
numbers), so their differences are the strategies', not the dice's. Floats throughout: this
is the paper's statistics, not money.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Tuple

__all__ = ["ASModel", "Outcome", "QuoteFn", "simulate"]

QuoteFn = Callable[[float, float, float], Tuple[float, float]]  # (mid, inventory, time) -> (bid, ask)


@dataclass(frozen=True)
class ASModel:
    s0: float = 100.0
    T: float = 1.0
    sigma: float = 2.0
    dt: float = 0.005
    A: float = 140.0
    k: float = 1.5

    def __post_init__(self) -> None:
        for name in ("s0", "T", "sigma", "dt", "A", "k"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, not {value!r}")
        if self.dt > self.T:
            raise ValueError("dt must not exceed T")

    @property
    def steps(self) -> int:
        return int(round(self.T / self.dt))

    def times(self) -> List[float]:
        return [i * self.dt for i in range(self.steps)]


@dataclass
class Outcome:
    """One strategy's results over the runs."""

    profits: List[float] = field(default_factory=list)
    final_q: List[float] = field(default_factory=list)
    spread_sum: float = 0.0
    quotes: int = 0

    @property
    def mean_spread(self) -> float:
        return self.spread_sum / self.quotes if self.quotes else math.nan

    def summary(self) -> Dict[str, float]:
        def std(values: List[float]) -> float:
            return statistics.stdev(values) if len(values) > 1 else 0.0
        return {"spread": self.mean_spread, "profit_mean": statistics.fmean(self.profits),
                "profit_std": std(self.profits), "q_mean": statistics.fmean(self.final_q),
                "q_std": std(self.final_q)}


def simulate(model: ASModel, strategies: Mapping[str, QuoteFn], runs: int, seed: int) -> Dict[str, Outcome]:
    """Run every strategy over ``runs`` seeded paths of ``model``."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    rng = random.Random(seed)
    names = list(strategies)
    fns = [strategies[n] for n in names]
    outcomes = [Outcome() for _ in names]
    times = model.times()
    move = model.sigma * math.sqrt(model.dt)
    a_dt, k = model.A * model.dt, model.k
    exp, uniform = math.exp, rng.random
    for _ in range(runs):
        state = [[0.0, 0.0] for _ in names]  # per strategy: cash, inventory
        s = model.s0
        for t in times:
            draw_bid, draw_ask, draw_move = uniform(), uniform(), uniform()
            for fn, st, out in zip(fns, state, outcomes):
                bid, ask = fn(s, st[1], t)
                out.spread_sum += ask - bid
                out.quotes += 1
                if draw_bid < a_dt * exp(-k * (s - bid)):
                    st[0] -= bid
                    st[1] += 1.0
                if draw_ask < a_dt * exp(-k * (ask - s)):
                    st[0] += ask
                    st[1] -= 1.0
            s += move if draw_move < 0.5 else -move
        for st, out in zip(state, outcomes):
            out.profits.append(st[0] + st[1] * s)
            out.final_q.append(st[1])
    return dict(zip(names, outcomes))
