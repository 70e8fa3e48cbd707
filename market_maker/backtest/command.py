"""``python marketmaker backtest [--settings F] [--strategy M:C] [--hours H] [--seed N]
[--market NAME [FILE]] [--latency-ms X | X:Y] [--journal PATH]``.

Runs the strategy against a market in simulated time (``engine.run_backtest``) and prints
the run's figures; the last line is the wall time and the speed-up. A progress bar runs on
stderr when it is a terminal. Exit status: 0 done; 2 a bad argument, setting, strategy,
market or file (one line on stderr naming it); otherwise the bot's own exit status (3: the
kill switch fired).
"""
from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from decimal import Decimal
from typing import List, Optional, Sequence

from ..log import setup_logging
from ..runner import load_strategy
from ..settings import LOG_LEVELS, SettingsError, load_settings, pop_env_secret
from .engine import BacktestError, BacktestResult, run_backtest
from .latency import LatencyError, LatencySpec
from .market import MARKETS, MarketError, build

PROG = "marketmaker backtest"
# market modules: each registers its markets (market.register) when imported
MARKET_MODULES: List[str] = ["synthetic", "replay", "tradecsv"]
DEFAULT_HOURS = 1.0


def _tick(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal(0)
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"--tick {text!r}: a price step greater than 0, such as 0.5")
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 24 * 365:
        raise argparse.ArgumentTypeError(f"--hours {text!r}: a number of hours greater than 0, at most 8760")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 63:
        raise argparse.ArgumentTypeError(f"--seed {text!r}: a whole number from 0 to 2**63 - 1")
    return value


def _latency(text: str) -> LatencySpec:
    try:
        return LatencySpec.parse(text)
    except LatencyError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{PROG}: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run the strategy against a market in simulated time, hundreds of times "
                                       "faster than real time, on the simulator's matching engine and ledger.")
    p.add_argument("--settings", metavar="PATH", help="settings file (default: ./settings.py or $MM_SETTINGS)")
    p.add_argument("--strategy", metavar="MODULE:CLASS", help="OrderManager subclass to run (default: STRATEGY)")
    p.add_argument("--hours", type=_hours, default=DEFAULT_HOURS, help="simulated hours (default %(default)s)")
    p.add_argument("--seed", type=_seed, help="seed of the market, the latencies and the strategy's random "
                                              "numbers (default: SIM_SEED)")
    p.add_argument("--market", nargs="+", metavar=("NAME", "FILE"), default=["synthetic"],
                   help="the other traders: synthetic (default), or a market with its file")
    p.add_argument("--latency-ms", type=_latency, default=LatencySpec(), metavar="X|X:Y",
                   help="one-way latency of every message, constant X or uniform in [X, Y] ms (default 0)")
    p.add_argument("--tick", type=_tick, metavar="SIZE", help="tick size of an `events` file that states none")
    p.add_argument("--journal", metavar="PATH", help="write the run to this journal (read it with `report`)")
    p.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS,
                   help="the bot's log level during the run (default %(default)s)")
    return p


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def load_markets() -> None:
    for name in MARKET_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def summary(result: BacktestResult, currency: str) -> str:
    maker = f" ({100 * result.maker_fills // result.fills} % maker)" if result.fills else ""
    lines = [
        f"Simulated {result.sim_seconds / 3600:.2f} h (seed {result.seed}): {result.fills} fills{maker}, "
        f"{result.volume} contracts, {result.orders_sent} orders sent, {result.orders_cancelled} cancelled",
        f"Net PnL {format(result.net_pnl, 'f')} {currency} (equity {format(result.start_equity, 'f')} -> "
        f"{format(result.end_equity, 'f')}); fees {format(result.fees, 'f')} {currency}",
        f"Sharpe (per minute) {result.sharpe:.3f}; max drawdown {format(result.max_drawdown, 'f')} {currency}; "
        f"inventory std {result.inventory_std:.1f} contracts",
        f"{result.events} market events in {result.market_steps} market steps",
        f"Wall time {result.wall_seconds:.1f}s, speed-up {result.speedup:.0f}x",
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    load_markets()
    name, *rest = args.market
    if len(rest) > 1:
        return fail(f"--market {' '.join(args.market)}: give a market name and at most one file")
    if name not in MARKETS:
        return fail(f"unknown market {name!r}: choose one of {', '.join(sorted(MARKETS))}")
    env_secret = pop_env_secret(os.environ)
    overrides = {"DRY_RUN": False}
    if args.strategy:
        overrides["STRATEGY"] = args.strategy
    try:
        settings = load_settings(args.settings, overrides=overrides, environ={**os.environ, **env_secret})
        manager_cls = load_strategy(settings.STRATEGY, secrets=[settings.API_KEY, settings.API_SECRET,
                                                                *env_secret.values()])
        if args.tick is not None and name != "events":
            return fail(f"--tick applies to the events market only, not to {name!r}")
        options = {"tick": args.tick} if args.tick is not None else {}
        market = build(name, settings, rest[0] if rest else None, **options)
    except SettingsError as exc:
        return fail(f"bad settings: {exc}")
    except MarketError as exc:
        return fail(str(exc))
    seed = settings.SIM_SEED if args.seed is None else args.seed
    setup_logging(args.log_level, stream=sys.stderr, secrets=[settings.API_SECRET, *env_secret.values()])
    try:
        result = run_backtest(settings, manager_cls, market, seed=seed, hours=args.hours, latency=args.latency_ms,
                              journal_path=args.journal, progress=sys.stderr.isatty())
    except (BacktestError, MarketError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    print(summary(result, settings.SETTLECURRENCY), flush=True)
    return result.exit_code


__all__ = ["MARKET_MODULES", "main"]
