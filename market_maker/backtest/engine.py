"""``run_backtest``: the unchanged strategy, the live ``Runner`` loop, a market, one simulated clock.

The engine builds the simulator's exchange (``sim.exchange.Exchange``: matching, ledger,
fees, funding, liquidation) from the settings as the embedded simulator does, lets the
market open its accounts, opens the bot's account (``SIM_BALANCE``), and runs the live
``runner.Runner`` with a ``BacktestExchange`` whose clock is a ``SimClock``: the Runner's
waits, debounce, status timer and the manager's pacing all pass in simulated time. The
market steps when it asks to (``next_ms``), each step followed by the exchange's
housekeeping (funding, liquidations) as the simulator's server does it.

Pure of global state (no threads, no sockets, no wall clock but for the wall time it
reports): runs can share a process or go to Dask workers, and the same inputs give the
same result. Figures come from the exchange's own ledger: equity (balance + unrealised
PnL at the mark) sampled every simulated minute.
"""
from __future__ import annotations

import dataclasses
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Sequence, Type, Union

from ..events import Sink
from ..market_maker import OrderManager
from ..runner import FileWatcher, Runner
from ..settings import Settings
from ..sim.exchange import Exchange
from ..sim.server import _build_exchange
from .clock import US, SimClock
from .feed import every
from .latency import Latency, LatencySpec
from .market import MarketModel
from .synthetic import sim_config
from .venue import BacktestExchange

SAMPLE_S = 60  # equity and inventory are sampled every simulated minute
PROGRESS_EVERY_S = 10.0  # simulated seconds between two looks at the wall clock for the progress bar


class BacktestError(ValueError):
    """Inputs a backtest cannot run with (the message names the input)."""


@dataclass
class BacktestResult:
    net_pnl: Decimal  # settle currency: our equity at the exchange at the end minus at the start
    sharpe: float  # mean / standard deviation of the per-minute equity changes (not annualised)
    max_drawdown: Decimal  # largest fall of the per-minute equity from its running peak
    inventory_std: float  # standard deviation of the net position (contracts), per minute
    fills: int
    maker_fills: int
    volume: int  # contracts filled on our orders
    sim_seconds: float
    wall_seconds: float
    events: int  # market events the feed took in (book, trades and our account's, from the market's steps)
    seed: int = 0
    exit_code: int = 0
    start_equity: Decimal = Decimal(0)
    end_equity: Decimal = Decimal(0)
    orders_sent: int = 0
    orders_cancelled: int = 0
    fees: Decimal = Decimal(0)
    market_steps: int = 0

    @property
    def speedup(self) -> float:
        return self.sim_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def build_exchange(settings: Settings, seed: int) -> Exchange:
    """The simulator's exchange for these settings, every instrument, as the embedded simulator builds
    it (the market brings the other traders)."""
    exchange, _ = _build_exchange(dataclasses.replace(sim_config(settings, seed), flow=False))
    if settings.SYMBOL not in exchange.instruments:
        raise BacktestError(f"SYMBOL {settings.SYMBOL!r} is not one of the simulated instruments "
                            f"({', '.join(exchange.instruments)}); list it in SIM_SYMBOLS")
    return exchange


def _latency_spec(latency: Union[str, float, int, LatencySpec]) -> LatencySpec:
    if isinstance(latency, LatencySpec):
        return latency
    return LatencySpec.parse(str(latency))


def _std(values: List[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


class _Progress:
    """A one-line progress bar on stderr: simulated time done and speed-up."""

    def __init__(self, total_s: float, stream: Any = None):
        self.total_s = total_s
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.shown = 0.0

    def __call__(self, sim_s: float) -> None:
        wall = time.perf_counter() - self.started
        if wall - self.shown < 0.2 and sim_s < self.total_s:
            return
        self.shown = wall
        done = min(1.0, sim_s / self.total_s) if self.total_s else 1.0
        bar = "#" * int(done * 30)
        speed = sim_s / wall if wall > 0 else 0.0
        self.stream.write(f"\r[{bar:<30}] {sim_s / 60:7.1f}/{self.total_s / 60:.1f} simulated min, {speed:6.0f}x")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def run_backtest(settings: Settings, manager_cls: Type[OrderManager], market: MarketModel, *, seed: int,
                 hours: float, latency: Union[str, float, int, LatencySpec] = 0, journal_path: Optional[str] = None,
                 progress: bool = False, on_progress: Optional[Callable[[float], None]] = None,
                 sinks: Sequence[Sink] = ()) -> BacktestResult:
    """Run ``manager_cls`` for ``hours`` of simulated time against ``market``; the run's figures.

    ``sinks`` also receive the run's events (events.py), stamped with simulated time."""
    if settings.DRY_RUN:
        raise BacktestError("DRY_RUN is True: a backtest trades on the simulated exchange (set DRY_RUN = False)")
    if not 0 < hours <= 24 * 365:
        raise BacktestError(f"hours {hours!r}: a number of hours greater than 0, at most a year")
    wall_started = time.perf_counter()
    clock = SimClock()
    exchange = build_exchange(settings, seed)
    set_seed = getattr(market, "set_seed", None)
    if set_seed is not None:
        set_seed(seed)
    market.attach(exchange, settings.SYMBOL, clock.start_ms)
    asset = settings.SETTLECURRENCY
    account_id = exchange.open_account("backtest-bot", Decimal(settings.SIM_BALANCE), asset)
    # only the public tables and our account's are read: the market's accounts' rows would be built for nobody
    exchange.silence(a for a in exchange.account_ids() if a != account_id)
    exchange.book_as_count()  # the feed reads the book itself (feed.SimFeed._live_book)
    venue = BacktestExchange(settings, exchange, account_id, clock, Latency(_latency_spec(latency), seed), seed)
    feed = venue.feed
    runner = Runner(settings, venue, manager_cls, duration=hours * 3600, rng=random.Random(seed))
    runner.watcher = FileWatcher([])  # no hot reload in simulated time
    for extra in sinks:
        venue.events.subscribe(extra)
    sink = _open_journal(journal_path, settings, manager_cls, seed, venue, clock)

    steps = [0]

    def market_step() -> None:
        now_ms = clock.now_ms()
        market.step(now_ms)
        exchange.tick(now_ms)
        feed.absorb(exchange.drain_events(), market=True)
        steps[0] += 1
        nxt = market.next_ms()
        if nxt is None:
            runner.stop()  # a recording's end ends the run
        else:
            clock.at(clock.us_of_ms(nxt), market_step)

    first = market.next_ms()
    if first is not None:
        clock.at(clock.us_of_ms(first), market_step)
    config = sim_config(settings, seed)
    every(clock, float(config.instrument_push_s), feed.push_instrument)
    every(clock, float(config.position_push_s), feed.push_account)
    start_equity = exchange.equity(account_id, asset)
    equity: List[Decimal] = [start_equity]
    inventory: List[int] = []

    def sample() -> None:
        equity.append(exchange.equity(account_id, asset))
        long_qty, _ = exchange.position_qty(account_id, settings.SYMBOL, 1)
        short_qty, _ = exchange.position_qty(account_id, settings.SYMBOL, 0)
        inventory.append(long_qty - short_qty)
    every(clock, SAMPLE_S, sample, first_us=SAMPLE_S * US)
    bar = _Progress(hours * 3600) if progress else None
    if bar is not None or on_progress is not None:
        def report() -> None:
            if bar is not None:
                bar(clock.monotonic())
            if on_progress is not None:
                on_progress(clock.monotonic())
        every(clock, PROGRESS_EVERY_S, report, first_us=int(PROGRESS_EVERY_S * US))
    clock.run_until(0)  # the market quotes a book before the bot starts, as the simulator does
    exit_code = 0
    try:
        exit_code = runner.run()
    finally:
        if bar is not None:
            bar(clock.monotonic())
            bar.done()
        end_equity = exchange.equity(account_id, asset)
        if sink is not None:
            sink.close(exit_code)
    equity.append(end_equity)
    changes = [float(b - a) for a, b in zip(equity, equity[1:])]
    sd = _std(changes)
    sharpe = (sum(changes) / len(changes)) / sd if changes and sd > 0 else 0.0
    peak, drawdown = equity[0], Decimal(0)
    for value in equity:
        peak = max(peak, value)
        drawdown = max(drawdown, peak - value)
    counters = venue.counters
    return BacktestResult(
        net_pnl=end_equity - start_equity, sharpe=sharpe, max_drawdown=drawdown,
        inventory_std=_std([float(q) for q in inventory]), fills=feed.true_fills,
        maker_fills=feed.true_maker_fills, volume=feed.true_volume, sim_seconds=clock.monotonic(),
        wall_seconds=time.perf_counter() - wall_started, events=feed.market_events, seed=seed, exit_code=exit_code,
        start_equity=start_equity, end_equity=end_equity, orders_sent=counters["orders_sent"],
        orders_cancelled=counters["orders_cancelled"], fees=feed.fees_paid, market_steps=steps[0])


def _open_journal(path: Optional[str], settings: Settings, manager_cls: Type[OrderManager], seed: int,
                  venue: BacktestExchange, clock: SimClock) -> Any:
    if not path:
        return None
    try:
        from ..journal.recorder import open_journal  # type: ignore[import-not-found]
    except ImportError:
        raise BacktestError("--journal: this build has no journal recorder (market_maker.journal.recorder)") from None
    sink = open_journal(path, settings, mode="backtest", strategy=f"{manager_cls.__module__}:{manager_cls.__qualname__}",
                        sim_seed=seed, run_tag=venue.run_tag, threaded=False, clock=clock)
    venue.events.subscribe(sink)
    return sink
