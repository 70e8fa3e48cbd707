"""Throughput of the simulator core (matching engine + accounts + event rows).

Builds a book of ``--levels`` price levels per side owned by several accounts, then
runs ``--events`` operations through the ``Exchange`` facade: 60 % resting limit
adds, 30 % cancels, 10 % crossing orders; events are drained and discarded.
The random draws are made before the clock starts.  ``--repeat N`` runs the same
seeded workload N times on fresh exchanges and reports the best and the median
(the machine is shared: single runs are noisy).

    python bench/sim_engine.py [--events 300000] [--levels 1000] [--seed 1] [--repeat 1]
                               [--profile]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from market_maker.sim.exchange import Exchange, ExchangeConfig, SimError  # noqa: E402

SYMBOL = "BTC_USD"
MID_TICKS = 20_000          # 10000.0 with tick 0.5
N_ACCOUNTS = 8


def build(levels: int, rng: random.Random) -> tuple[Exchange, list[int], list[list[str]]]:
    """An exchange whose book holds ``levels`` levels per side around 10000."""
    ex = Exchange(ExchangeConfig())
    accounts = [ex.open_account(f"acct{i}", Decimal("100000")) for i in range(N_ACCOUNTS)]
    open_ids: list[list[str]] = [[] for _ in accounts]
    tick = Decimal("0.5")
    for i in range(1, levels + 1):
        for side, ticks in ((1, MID_TICKS - i), (0, MID_TICKS + i)):
            for _ in range(2):
                k = rng.randrange(N_ACCOUNTS)
                row = ex.place_order(accounts[k], SYMBOL, side, 0, ticks * tick,
                                     rng.randint(1, 50), None, 0)
                open_ids[k].append(row["order_id"])
    ex.drain_events()
    return ex, accounts, open_ids


def make_plan(n: int, levels: int, rng: random.Random) -> list[tuple]:
    """The random draws of ``n`` operations, made up front (outside the timed region)."""
    return [(rng.random(), rng.randrange(N_ACCOUNTS), rng.randrange(2), rng.randint(1, levels),
             rng.randint(1, 50), rng.randint(0, 3), rng.randint(1, 150), rng.random())
            for _ in range(n)]


def run(ex: Exchange, accounts: list[int], open_ids: list[list[str]], plan: list[tuple],
        levels: int) -> tuple[int, int]:
    """Run the planned operations; returns (number of events produced, rejected operations)."""
    tick = Decimal("0.5")
    prices = {t: t * tick for t in range(MID_TICKS - 3 * levels, MID_TICKS + 3 * levels)}
    ticks_of = {p: t for t, p in prices.items()}
    n_events = rejected = 0
    now = 1
    place, cancel, best, drain = ex.place_order, ex.cancel_order, ex.best_prices, ex.drain_events
    for r, k, side, off, qty, cross, big, pick in plan:
        now += 1
        acct = accounts[k]
        try:
            if r < 0.6:
                bid, ask = best(SYMBOL)
                if side:
                    t = (ticks_of[ask] if ask is not None else MID_TICKS) - off
                else:
                    t = (ticks_of[bid] if bid is not None else MID_TICKS) + off
                open_ids[k].append(place(acct, SYMBOL, side, 0, prices[t], qty, None, now)["order_id"])
            elif r < 0.9:
                ids = open_ids[k]
                if ids:
                    j = int(pick * len(ids))
                    ids[j], ids[-1] = ids[-1], ids[j]
                    cancel(acct, SYMBOL, ids.pop(), now)
            else:
                bid, ask = best(SYMBOL)
                if side and ask is not None:
                    t = ticks_of[ask] + cross
                elif not side and bid is not None:
                    t = ticks_of[bid] - cross
                else:
                    continue
                row = place(acct, SYMBOL, side, 0, prices[t], big, None, now)
                if row["status"] in ("2", "16"):
                    open_ids[k].append(row["order_id"])
        except SimError:
            rejected += 1
        n_events += len(drain())
    return n_events, rejected


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--levels", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print the top cProfile entries")
    ap.add_argument("--repeat", type=int, default=1, help="runs (fresh exchange each time)")
    args = ap.parse_args(argv)
    rates = []
    for _ in range(max(1, args.repeat)):
        rates.append(bench_once(args))
    if len(rates) > 1:
        best, typical, worst = max(rates), statistics.median(rates), min(rates)
        print(f"{len(rates)} runs: best {best:,.0f} ops/s ({1e6 / best:.2f} us/op), "
              f"median {typical:,.0f} ops/s ({1e6 / typical:.2f} us/op), worst {worst:,.0f} ops/s")


def bench_once(args: argparse.Namespace) -> float:
    """One seeded run; prints its figures and returns operations per second."""
    rng = random.Random(args.seed)
    ex, accounts, open_ids = build(args.levels, rng)
    equity0 = ex.total_equity()
    plan = make_plan(args.events, args.levels, rng)
    prof = cProfile.Profile() if args.profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    n_events, rejected = run(ex, accounts, open_ids, plan, args.levels)
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - t0
    assert ex.total_equity() == equity0, "equity not conserved"
    book = ex.order_book(SYMBOL, 10**9)
    bids, asks = len(book["bids"]), len(book["asks"])
    print(f"events (operations): {args.events}  elapsed: {elapsed:.2f} s  "
          f"events/s: {args.events / elapsed:,.0f}  us/event: {elapsed / args.events * 1e6:.2f}")
    print(f"wire events produced: {n_events} ({n_events / elapsed:,.0f}/s)  rejected ops: {rejected}  "
          f"book levels: {bids} bids / {asks} asks")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return args.events / elapsed

if __name__ == "__main__":
    main()
