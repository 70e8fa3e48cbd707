"""The experiment of Avellaneda & Stoikov (2008), through our own quote function.

``python3 -m market_maker.backtest.as_experiment --gamma 0.1 --runs 10000 --seed 1 --json out.json``

Two strategies on the paper's market (:mod:`.as_model`): "inventory" quotes with
:func:`market_maker.strategies.avellaneda.as_quote`, the very function the
``AvellanedaStoikov`` manager calls; "symmetric" quotes the inventory strategy's average
spread centred on the mid. Prints, per strategy, the mean spread, the mean and standard
deviation of the profit and of the final inventory.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Dict, List, Optional

from ..strategies.avellaneda import as_quote
from .as_model import ASModel, simulate

__all__ = ["experiment", "main"]


def experiment(gamma: float, runs: int, seed: int, model: ASModel = ASModel()) -> Dict[str, object]:
    """The result as the JSON the command writes."""
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, not {gamma!r}")

    def inventory(s: float, q: float, t: float):
        quote = as_quote(s, q, gamma, model.sigma, model.k, model.T - t)
        return quote.bid, quote.ask

    # the inventory strategy's spread depends on time only, not on q or s: its average over the grid
    times = model.times()
    spread = sum(as_quote(model.s0, 0.0, gamma, model.sigma, model.k, model.T - t).spread for t in times) / len(times)
    half = spread / 2

    def symmetric(s: float, q: float, t: float):
        return s - half, s + half

    outcomes = simulate(model, {"inventory": inventory, "symmetric": symmetric}, runs, seed)
    return {"gamma": gamma, "runs": runs,
            "inventory": outcomes["inventory"].summary(), "symmetric": outcomes["symmetric"].summary()}


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m market_maker.backtest.as_experiment", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gamma", type=_positive_float, default=0.1, help="risk aversion (the paper: 0.1, 0.01, 1)")
    parser.add_argument("--runs", type=_positive_int, default=1000, help="simulated paths (the paper: 1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the paths (same seed, same figures)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = experiment(args.gamma, args.runs, args.seed)
    print(f"gamma {args.gamma:g}, {args.runs} runs, seed {args.seed} ({time.monotonic() - started:.1f}s)")
    print(f"{'strategy':<10} {'spread':>7} {'profit':>8} {'std(profit)':>11} {'final q':>8} {'std(q)':>7}")
    for name in ("inventory", "symmetric"):
        row = result[name]
        print(f"{name:<10} {row['spread']:7.2f} {row['profit_mean']:8.2f} {row['profit_std']:11.2f} "
              f"{row['q_mean']:8.2f} {row['q_std']:7.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
