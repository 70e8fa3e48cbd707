"""The grid, AvellanedaStoikov and GLFT through the backtester, on the default synthetic market and
on a more volatile one: per market, mean and std of net PnL, Sharpe, max drawdown, inventory std,
fills, maker share and volume over seeds.

    python3 bench/strategy_compare.py [--seeds 20] [--hours 6] [--first-seed 1] [--workers 2]
                                      [--markets default,volatile] [--json FILE]

The issue's run is 20 seeds x 6 simulated hours; on a shared 2-core machine use fewer (the
figures in docs/strategies.md say what was run). Every run uses the seed for the market flow
and the manager's rng, so a row is reproducible. The strategies' settings (``STRATEGIES``)
were chosen for a traded volume of the same order as the grid's; the grid runs on the defaults.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MARKETS: Dict[str, Dict[str, Any]] = {
    "default": {},
    "volatile": {"SIM_VOLATILITY": Decimal("0.005")},  # twice the default's sigma
}

# The fitted k (~0.22 per USD on the default market) prices no adverse selection: the synthetic
# takers lean with the last move. Capping k at 0.1 keeps the half spread near 1/k = 10 USD or more.
WIDE = {"INTENSITY_K": Decimal("0.1"), "INTENSITY_K_BOUNDS": (Decimal("0.0001"), Decimal("0.1"))}

STRATEGIES: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "grid": ("", {}),
    "avellaneda": ("market_maker.strategies.avellaneda:AvellanedaStoikov", {
        "ORDER_START_SIZE": 30, "ORDER_STEP_SIZE": 30, "INVENTORY_LIMIT": 600, "AS_GAMMA": Decimal("0.0005"),
        "AS_HORIZON_S": 60, "VOL_WINDOW_S": 60, "INTENSITY_WINDOW_S": 120, **WIDE}),
    # GLFT_GAMMA tuned on seeds 101-108 (docs/strategies.md): at 0.05 the inventory skew (~45 USD per lot
    # on the volatile market) pulled the reducing side to the touch, where the market's moves sweep it
    "glft": ("market_maker.strategies.glft:GLFT", {
        "ORDER_START_SIZE": 30, "ORDER_STEP_SIZE": 30, "INVENTORY_LIMIT": 600, "GLFT_GAMMA": Decimal("0.002"),
        "VOL_WINDOW_S": 60, "INTENSITY_WINDOW_S": 120, **WIDE}),
}

FIELDS = ("net_pnl", "sharpe", "max_drawdown", "inventory_std", "fills", "maker_fills", "volume")


def one_run(market: str, strategy: str, seed: int, hours: float) -> Dict[str, Any]:
    """One backtest; plain floats and ints so it crosses process boundaries."""
    quiet = logging.root.manager.disable
    logging.disable(logging.WARNING)  # one line per decision is the live bot's; here only the figures
    try:
        return _run(market, strategy, seed, hours)
    finally:
        logging.disable(quiet)


def _run(market: str, strategy: str, seed: int, hours: float) -> Dict[str, Any]:
    from market_maker.backtest import market as markets
    from market_maker.backtest import synthetic  # noqa: F401  (registers "synthetic")
    from market_maker.backtest.engine import run_backtest
    from market_maker.runner import load_strategy
    from market_maker.settings import load_settings

    spec, overrides = STRATEGIES[strategy]
    settings = load_settings(None, overrides={**MARKETS[market], **overrides, "STRATEGY": spec}, environ={})
    result = run_backtest(settings, load_strategy(spec), markets.build("synthetic", settings), seed=seed,
                          hours=hours)
    row = {name: getattr(result, name) for name in FIELDS}
    row = {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
    row.update(market=market, strategy=strategy, seed=seed, wall_seconds=result.wall_seconds)
    return row


def summarise(rows: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """market -> strategy -> figures (means over seeds; std of the net PnL; maker share of all fills)."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for market in dict.fromkeys(r["market"] for r in rows):
        out[market] = {}
        for strategy in dict.fromkeys(r["strategy"] for r in rows):
            runs = [r for r in rows if r["market"] == market and r["strategy"] == strategy]
            if not runs:
                continue
            pnl = [r["net_pnl"] for r in runs]
            fills = sum(r["fills"] for r in runs)
            out[market][strategy] = {
                "runs": len(runs),
                "pnl_mean": statistics.fmean(pnl),
                "pnl_std": statistics.stdev(pnl) if len(pnl) > 1 else 0.0,
                "sharpe": statistics.fmean(r["sharpe"] for r in runs),
                "max_drawdown": statistics.fmean(r["max_drawdown"] for r in runs),
                "inventory_std": statistics.fmean(r["inventory_std"] for r in runs),
                "fills": fills / len(runs),
                "maker_share": sum(r["maker_fills"] for r in runs) / fills if fills else math.nan,
                "volume": statistics.fmean(r["volume"] for r in runs),
            }
    return out


def table(summary: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    lines = []
    for market, strategies in summary.items():
        lines.append(f"\nmarket: {market}")
        lines.append(f"| strategy | runs | net PnL mean (BTC) | net PnL std | Sharpe (per min) | max drawdown (BTC) | "
                     f"inventory std (contracts) | fills | maker share | volume (contracts) |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, f in strategies.items():
            lines.append(f"| {name} | {f['runs']} | {f['pnl_mean']:+.6f} | {f['pnl_std']:.6f} | {f['sharpe']:+.3f} | "
                         f"{f['max_drawdown']:.6f} | {f['inventory_std']:.0f} | {f['fills']:.0f} | "
                         f"{f['maker_share']:.0%} | {f['volume']:.0f} |")
        grid, glft = strategies.get("grid"), strategies.get("glft")
        if grid and glft:
            lines.append(f"GLFT vs grid: inventory std {'lower' if glft['inventory_std'] < grid['inventory_std'] else 'NOT lower'}"
                         f", Sharpe {'higher' if glft['sharpe'] > grid['sharpe'] else 'NOT higher'}")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--markets", default=",".join(MARKETS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", metavar="FILE", help="write every run's figures and the summary")
    args = parser.parse_args(argv)
    markets = args.markets.split(",")
    strategies = args.strategies.split(",")
    for name in markets:
        if name not in MARKETS:
            parser.error(f"unknown market {name!r}: choose from {', '.join(MARKETS)}")
    for name in strategies:
        if name not in STRATEGIES:
            parser.error(f"unknown strategy {name!r}: choose from {', '.join(STRATEGIES)}")
    jobs = [(m, s, seed, args.hours) for m in markets for s in strategies
            for seed in range(args.first_seed, args.first_seed + args.seeds)]
    started = time.monotonic()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(one_run, *zip(*jobs)))
    else:
        rows = [one_run(*job) for job in jobs]
    summary = summarise(rows)
    print(f"{args.seeds} seeds x {args.hours:g} simulated hours per strategy and market "
          f"({time.monotonic() - started:.0f}s wall)")
    print(table(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
