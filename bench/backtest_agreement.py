"""Agreement of the backtest with a real-time run of the bot against the embedded simulator.

    python bench/backtest_agreement.py [--seeds 1-10] [--minutes 10] [--pairs 6]

For each seed, the same settings run (1) in real time against the embedded simulator
(sockets, threads, the wall clock) and (2) in the backtester; it prints fills, volume and
PnL of both per seed, their means and the difference of the means in standard errors
(seed-to-seed spread of both). A real-time run takes its full duration: 10 seeds x 10
minutes is 100 minutes.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from market_maker.backtest.agreement import backtest, realtime, settings_with, table  # noqa: E402


def seeds(text: str) -> list:
    low, _, high = text.partition("-")
    return list(range(int(low), int(high or low) + 1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=seeds, default=seeds("1-10"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--pairs", type=int, default=6)
    args = p.parse_args()
    settings = settings_with({"ORDER_PAIRS": args.pairs})
    rows = {}
    for seed in args.seeds:
        rt = realtime(settings, seed, args.minutes * 60)
        bt = backtest(settings, seed, args.minutes * 60)
        rows[seed] = (bt, rt)
        print(f"seed {seed}: backtest {bt}, real time {rt}", flush=True)
    print("\n".join(table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
