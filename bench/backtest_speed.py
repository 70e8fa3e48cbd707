"""Speed of the backtester: simulated seconds per wall second (and per CPU second), market events per second.

(Market events: the exchange events of the market's steps that the bot's feed takes in -- the book,
the trades and its own account's; a backtest does not produce the market accounts' private ones.)

    python bench/backtest_speed.py [--minutes 5] [--pairs 6,30] [--seed 1] [--market NAME [FILE]] [--profile]

Runs the default grid (``OrderManager``, default settings but ORDER_PAIRS) on the default
synthetic market for each ORDER_PAIRS given, then -- when a dense ``events`` file is given
with ``--market events FILE`` (the market registered by the btdata work) -- on that market.
The CPU-second figure is the one to compare on a shared machine (other processes steal wall
time, not CPU time). ``--profile`` prints the run's top functions (cProfile).

The issue's floor is 200x real time (a simulated day in under 7.2 minutes).
"""
from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from market_maker.backtest.command import MARKET_MODULES  # noqa: E402
from market_maker.backtest.engine import run_backtest  # noqa: E402
from market_maker.backtest.market import MARKETS, build  # noqa: E402
from market_maker.market_maker import OrderManager  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402

FLOOR = 200


def measure(pairs: int, minutes: float, seed: int, market_args: list, profile: bool) -> None:
    settings = load_settings(overrides={"ORDER_PAIRS": pairs, "ORDER_STEP_SIZE": 100 if pairs <= 10 else 20},
                             environ={}, cwd=Path(tempfile.mkdtemp()))
    market = build(market_args[0], settings, market_args[1] if len(market_args) > 1 else None)
    profiler = cProfile.Profile() if profile else None
    cpu = time.process_time()
    if profiler:
        profiler.enable()
    result = run_backtest(settings, OrderManager, market, seed=seed, hours=minutes / 60)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu
    label = " ".join(market_args)
    print(f"{label:<12} ORDER_PAIRS={pairs:<3} {result.sim_seconds:7.0f} simulated s in {result.wall_seconds:6.1f} "
          f"wall s ({cpu:6.1f} CPU s): {result.speedup:5.0f}x wall, {result.sim_seconds / cpu:5.0f}x CPU "
          f"(floor {FLOOR}x); {result.events / result.wall_seconds:8.0f} market events/s "
          f"({result.events} events, {result.market_steps} steps); {result.fills} fills, "
          f"{result.orders_sent} orders", flush=True)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=5.0, help="simulated minutes per run (default %(default)s)")
    p.add_argument("--pairs", default="6,30", help="ORDER_PAIRS values, comma separated (default %(default)s)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--market", nargs="+", default=["synthetic"], metavar=("NAME", "FILE"))
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    for name in MARKET_MODULES:
        importlib.import_module(f"market_maker.backtest.{name}")
    if args.market[0] not in MARKETS:
        p.error(f"unknown market {args.market[0]!r}: this build has {', '.join(sorted(MARKETS))}")
    for pairs in [int(v) for v in args.pairs.split(",")]:
        measure(pairs, args.minutes, args.seed, args.market, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
