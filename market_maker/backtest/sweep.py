"""``python marketmaker sweep --grid NAME=V1,V2 [--grid ...] [--seeds 1-20] [--market NAME [FILE]] [--hours H]
[--strategy M:C] [--settings F] [--workers N | --dask ADDRESS] --out DIR``: one backtest per grid
combination and seed, in local processes or on a Dask cluster, with the same results either way.

Exit status: 0 done; 1 a run failed (nothing written); 2 bad input (a setting, value, seed list,
market or output folder), a missing extra or an unreachable scheduler (one line on stderr);
130 interrupted (nothing written).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, TextIO

from ..settings import LOG_LEVELS, SettingsError, load_settings
from ..settings_file import ENV_OVERRIDES
from . import grid
from .runs import EXTRA_HINT, RunFunction, RunResult, RunSpec, SweepError, backtest_run, base_values, dask_client, \
    load_markets, run_dask, run_local, specs_for

PROG = "marketmaker sweep"
DEFAULT_DASK_TIMEOUT = 5.0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number greater than 0")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1024")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Backtest every combination of settings of a grid with "
                                "every seed, locally or on a Dask cluster; write results.csv, summary.txt and "
                                "heatmaps of mean PnL and Sharpe.")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="a setting and the values to try (repeat for more settings; the first two are the "
                        "heatmaps' axes)")
    p.add_argument("--seeds", default="1", help="seeds of each combination: 1-20, 1,3,5 or 1-5,9 (default: 1)")
    p.add_argument("--market", nargs="+", default=["synthetic"], metavar=("NAME", "FILE"),
                   help="the market of every run, as for `backtest` (default: synthetic)")
    p.add_argument("--hours", type=_positive, default=1.0, help="simulated hours of each run (default: 1)")
    p.add_argument("--latency-ms", metavar="X|X:Y", help="one-way latency of every message, as for `backtest` "
                                                          "(default: the engine's, 0)")
    p.add_argument("--strategy", metavar="MODULE:CLASS", help="OrderManager subclass to run (default: STRATEGY)")
    p.add_argument("--settings", metavar="PATH", help="base settings file (default: ./settings.py or $MM_SETTINGS)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_count, default=os.cpu_count() or 1,
                       help="local worker processes (default: the CPU count)")
    where.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS (tcp://host:8786)")
    p.add_argument("--dask-timeout", type=_positive, default=DEFAULT_DASK_TIMEOUT, metavar="SECONDS",
                   help=f"how long to try to reach the scheduler (default: {DEFAULT_DASK_TIMEOUT:g})")
    p.add_argument("--log-level", default="ERROR", choices=LOG_LEVELS,
                   help="the bot's log level in each run (default %(default)s)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the results (created if missing)")
    return p


@dataclass(frozen=True)
class Plan:
    axes: List[grid.Axis]
    combos: List[grid.Combo]
    seeds: List[int]
    specs: List[RunSpec]
    about: dict


def make_plan(args: argparse.Namespace, check_market: bool = True) -> Plan:
    """Every run of the sweep, checked before any runs: settings, grid, seeds, strategy and market."""
    from ..runner import load_strategy
    # a backtest trades on the simulated exchange and holds no secret
    overrides = {"BASE_URL": None, "API_KEY": None, "API_SECRET": None, "DRY_RUN": False}
    if args.strategy:
        overrides["STRATEGY"] = args.strategy
    environ = {k: v for k, v in os.environ.items() if k not in ENV_OVERRIDES}
    base = load_settings(args.settings, overrides=overrides, environ=environ)
    axes = grid.parse_grid(args.grid, base)
    combos = grid.combos(axes, base)
    seeds = grid.parse_seeds(args.seeds)
    grid.check_size(len(combos), len(seeds))
    for strategy in {dict(c.changes).get("STRATEGY", base.STRATEGY) for c in combos}:
        load_strategy(strategy)  # a strategy the grid names must load too
    market, market_arg = args.market[0], " ".join(args.market[1:]) or None
    if len(args.market) > 2:
        raise SweepError(f"--market {' '.join(args.market)}: give a market name and at most one file", 2)
    if check_market:
        _check_market(market, market_arg, base)
    if args.latency_ms is not None:
        _check_latency(args.latency_ms)
    specs = specs_for(combos, seeds, base_values(base), market, market_arg, args.hours, args.latency_ms,
                      args.log_level)
    about = {"market": " ".join(args.market), "simulated hours per run": f"{args.hours:g}",
             "latency (ms)": args.latency_ms or "0",
             "strategy": base.STRATEGY or "market_maker.market_maker:OrderManager (the default grid)"}
    return Plan(axes, combos, seeds, specs, about)


def _check_latency(text: str) -> None:
    try:
        from .latency import LatencyError, LatencySpec
    except ImportError:
        return
    try:
        LatencySpec.parse(text)
    except LatencyError as exc:
        raise SweepError(str(exc), 2) from None


def _check_market(name: str, arg: Optional[str], base) -> None:
    from .market import MarketError, build
    load_markets()
    try:
        build(name, base, arg)
    except MarketError as exc:
        raise SweepError(f"--market: {exc}", 2) from None


class Progress:
    """A line per finished run: done/total, the run's figures, elapsed time and ETA."""

    def __init__(self, total: int, stream: TextIO):
        self.total, self.stream, self.done, self.start = total, stream, 0, time.monotonic()

    def __call__(self, spec: RunSpec, result: RunResult) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = len(str(self.total))
        print(f"[{self.done:>{width}}/{self.total}] {spec.describe()}: PnL {result.net_pnl:.8f}, "
              f"Sharpe {result.sharpe:.2f}, {result.fills} fills | elapsed {_clock(elapsed)}, ETA {_clock(eta)}",
              file=self.stream, flush=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def collect(specs: Sequence[RunSpec], results: Iterable[RunResult], progress: Progress) -> List[RunResult]:
    """All results, sorted by (combination, seed); each reported as it arrives."""
    by_key = {(s.combo.index, s.seed): s for s in specs}
    gathered = []
    for result in results:
        progress(by_key[result.key], result)
        gathered.append(result)
    if len(gathered) != len(specs):
        raise SweepError(f"{len(specs) - len(gathered)} run(s) gave no result")
    return sorted(gathered, key=lambda r: r.key)


def execute(plan: Plan, run: RunFunction, workers: int, dask: Optional[str], dask_timeout: float,
            progress: Progress) -> List[RunResult]:
    if dask is None:
        return collect(plan.specs, run_local(plan.specs, run, workers), progress)
    client = dask_client(dask, dask_timeout)
    try:
        stream: Iterator[RunResult] = run_dask(plan.specs, run, client)
        return collect(plan.specs, stream, progress)
    finally:
        client.close()


def write(plan: Plan, results: Sequence[RunResult], out: Path) -> None:
    from .sweep_output import figures, publish, results_csv, summary_text
    files = {"results.csv": results_csv(plan.axes, plan.combos, results).encode(),
             "summary.txt": summary_text(plan.axes, plan.combos, results, plan.about).encode(),
             **figures(plan.axes, plan.combos, results)}
    publish(out, files)


def fail(message: str, code: int = 2) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def _matplotlib_missing() -> bool:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError:
        return True
    return False


def main(argv: Optional[Sequence[str]] = None, run: RunFunction = backtest_run, check_market: bool = True) -> int:
    """Run the sweep command; returns the exit status. ``run`` and ``check_market`` are for tests."""
    from .sweep_output import check_out_dir
    args = parser().parse_args(argv)
    out = Path(args.out)
    if _matplotlib_missing():
        return fail(f"the heatmaps need matplotlib, the 'sweep' extra: {EXTRA_HINT}")
    problem = check_out_dir(out)
    if problem:
        return fail(problem)
    try:
        plan = make_plan(args, check_market)
        progress = Progress(len(plan.specs), sys.stderr)
        where = f"on the Dask cluster at {args.dask}" if args.dask else f"in {min(args.workers, len(plan.specs))} " \
                                                                         f"local process(es)"
        print(f"{PROG}: {len(plan.combos)} combination(s) x {len(plan.seeds)} seed(s) = {len(plan.specs)} runs "
              f"{where}", file=sys.stderr, flush=True)
        results = execute(plan, run, args.workers, args.dask, args.dask_timeout, progress)
        write(plan, results, out)
    except SettingsError as exc:
        return fail(f"bad settings: {exc}")
    except SweepError as exc:
        return fail(f"{exc}{'' if exc.code == 2 else '; nothing was written'}", exc.code)
    except KeyboardInterrupt:
        return fail("interrupted; nothing was written", 130)
    with open(out / "summary.txt", encoding="utf-8") as summary:
        print(summary.read(), end="")
    elapsed = time.monotonic() - progress.start
    print(f"wrote {out}/results.csv, summary.txt, heatmap_pnl.png, heatmap_sharpe.png: {len(results)} runs in "
          f"{elapsed:.1f} s")
    return 0
