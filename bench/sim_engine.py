"""Throughput of the simulator's matching engine + accounts (``sim.core.Core``).

Builds a book of ``--levels`` price levels per side owned by several accounts, then
runs ``--events`` operations: 60 % resting limit adds, 30 % cancels, 10 % crossing
orders.  By default they go to ``Core`` alone (matching, margin, fills, positions,
fees; the issue's measure).  ``--facade`` sends them through ``Exchange`` instead,
which adds parameter validation, wire rows and events (drained and discarded): what
the REST/WebSocket server pays per order.  The random draws are made before the clock
starts; equity conservation is checked after the run.  The GC policy is the
simulator server's (``market_maker.heap.freeze_startup_heap``: start-up heap frozen,
higher thresholds) unless ``--default-gc``.  ``--repeat N`` runs the same
seeded workload N times on fresh instances and reports the best and the median (the
machine is shared: single runs are noisy).

    python bench/sim_engine.py [--events 300000] [--levels 1000] [--seed 1] [--repeat 1]
                               [--facade] [--profile] [--default-gc]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from market_maker.heap import freeze_startup_heap  # noqa: E402
from market_maker.sim.core import Core, SimError  # noqa: E402
from market_maker.sim.exchange import Exchange, ExchangeConfig  # noqa: E402

SYMBOL = "BTC_USD"
MID_TICKS = 20_000          # 10000.0 with tick 0.5
TICK = Decimal("0.5")
N_ACCOUNTS = 8
OPEN = (1, 2, 16)           # created, new, partially filled


class CoreDriver:
    """Operations straight on ``Core``: account objects, the market object, integer ticks.

    ``place(acct, m, side, close_flag, ticks, qty, client_oid, now) -> (order, fills)`` and
    ``cancel(acct, m, oid)`` are ``Core``'s own methods, so the harness adds no layer."""

    drain = None   # Core queues no events

    def __init__(self) -> None:
        self.core = core = Core(ExchangeConfig())
        self.m: Any = core.market(SYMBOL)
        self.accounts: list[Any] = [core.account(core.open_account(f"acct{i}", Decimal(100000)))
                                    for i in range(N_ACCOUNTS)]
        self.place = core.place
        self.cancel = core.cancel

    def best(self) -> tuple[list[int], list[int]]:
        return self.m.book.bid_keys, self.m.book.ask_keys


class Placed(NamedTuple):
    """What the harness reads of a placed order."""
    oid: int
    status: int


class FacadeDriver:
    """The same operations through ``Exchange`` (Decimal prices, rows, events)."""

    def __init__(self) -> None:
        self.core = ex = Exchange(ExchangeConfig())
        self.m: Any = SYMBOL
        self.accounts: list[Any] = [ex.open_account(f"acct{i}", Decimal(100000))
                                    for i in range(N_ACCOUNTS)]
        self.prices = {t: t * TICK for t in range(1, 2 * MID_TICKS)}

    def place(self, acct: int, symbol: str, side: int, close_flag: int, ticks: int, qty: int,
              client_oid: str | None, now: int) -> tuple[Placed, None]:
        row = self.core.place_order(acct, symbol, side, close_flag, self.prices[ticks], qty,
                                    client_oid, now)
        return Placed(int(row["order_id"]), int(row["status"])), None

    def cancel(self, acct: int, symbol: str, oid: int) -> Any:
        return self.core.cancel_order(acct, symbol, oid, 0)

    def best(self) -> tuple[list[int], list[int]]:
        book = self.core.market(SYMBOL).book   # read-only view of the ticks, as the core's
        return book.bid_keys, book.ask_keys

    def drain(self) -> int:
        return len(self.core.drain_events())


def build(driver: Any, levels: int, rng: random.Random) -> list[list[int]]:
    """Rest ``levels`` levels per side around 10000 (two orders each); open ids per account."""
    place, m, accounts = driver.place, driver.m, driver.accounts
    open_ids: list[list[int]] = [[] for _ in range(N_ACCOUNTS)]
    for i in range(1, levels + 1):
        for side, ticks in ((1, MID_TICKS - i), (0, MID_TICKS + i)):
            for _ in range(2):
                k = rng.randrange(N_ACCOUNTS)
                order = place(accounts[k], m, side, 0, ticks, rng.randint(1, 50), None, 0)[0]
                open_ids[k].append(order.oid)
    if driver.drain:
        driver.drain()
    return open_ids


def make_plan(n: int, levels: int, rng: random.Random) -> list[tuple]:
    """The random draws of ``n`` operations, made up front (outside the timed region)."""
    return [(rng.random(), rng.randrange(N_ACCOUNTS), rng.randrange(2), rng.randint(1, levels),
             rng.randint(1, 50), rng.randint(0, 3), rng.randint(1, 150), rng.random())
            for _ in range(n)]


def run(driver: Any, open_ids: list[list[int]], plan: list[tuple]) -> tuple[int, int]:
    """Run the planned operations; returns (wire events produced, rejected operations)."""
    place, cancel, drain = driver.place, driver.cancel, driver.drain
    m, accounts = driver.m, driver.accounts
    bids, asks = driver.best()
    n_events = rejected = 0
    now = 1
    for r, k, side, off, qty, cross, big, pick in plan:
        now += 1
        try:
            if r < 0.6:                      # rest a limit order near the touch
                if side:
                    t = (-asks[-1] if asks else MID_TICKS) - off
                else:
                    t = (bids[-1] if bids else MID_TICKS) + off
                open_ids[k].append(place(accounts[k], m, side, 0, t, qty, None, now)[0].oid)
            elif r < 0.9:                    # cancel a random order of the account
                ids = open_ids[k]
                if ids:
                    j = int(pick * len(ids))
                    ids[j], ids[-1] = ids[-1], ids[j]
                    cancel(accounts[k], m, ids.pop())
            else:                            # cross the spread by up to 3 ticks
                if side and asks:
                    t = -asks[-1] + cross
                elif not side and bids:
                    t = bids[-1] - cross
                else:
                    continue
                order = place(accounts[k], m, side, 0, t, big, None, now)[0]
                if order.status in OPEN:
                    open_ids[k].append(order.oid)
        except SimError:
            rejected += 1
        if drain:
            n_events += drain()
    return n_events, rejected


def bench_once(args: argparse.Namespace) -> float:
    """One seeded run; prints its figures and returns operations per second."""
    rng = random.Random(args.seed)
    driver = FacadeDriver() if args.facade else CoreDriver()
    open_ids = build(driver, args.levels, rng)
    equity0 = driver.core.total_equity()
    plan = make_plan(args.events, args.levels, rng)
    if not args.default_gc:
        freeze_startup_heap()   # the server's GC policy once it has started (sim/__main__.py)
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    n_events, rejected = run(driver, open_ids, plan)
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - t0
    assert driver.core.total_equity() == equity0, "equity not conserved"
    bids, asks = driver.best()
    what = "Exchange facade (validation + rows + events)" if args.facade else "Core"
    what += ", CPython's default GC" if args.default_gc else ", server GC policy"
    print(f"{what}: {args.events} operations in {elapsed:.2f} s = "
          f"{args.events / elapsed:,.0f} ops/s ({elapsed / args.events * 1e6:.2f} us/op); "
          f"rejected {rejected}; book {len(bids)} bids / {len(asks)} asks"
          + (f"; wire events {n_events} ({n_events / elapsed:,.0f}/s)" if args.facade else ""))
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return args.events / elapsed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--levels", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--facade", action="store_true",
                    help="go through Exchange (validation, rows, events) instead of Core")
    ap.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    ap.add_argument("--default-gc", action="store_true",
                    help="keep CPython's GC thresholds instead of the server's policy "
                         "(market_maker.heap.freeze_startup_heap)")
    ap.add_argument("--repeat", type=int, default=1, help="runs (fresh instance each time)")
    args = ap.parse_args(argv)
    rates = [bench_once(args) for _ in range(max(1, args.repeat))]
    if len(rates) > 1:
        best, typical, worst = max(rates), statistics.median(rates), min(rates)
        print(f"{len(rates)} runs: best {best:,.0f} ops/s ({1e6 / best:.2f} us/op), "
              f"median {typical:,.0f} ops/s ({1e6 / typical:.2f} us/op), worst {worst:,.0f} ops/s")


if __name__ == "__main__":
    main()
