#!/usr/bin/env python3
"""A dense ``events`` market file for the backtest speed benchmark (deterministic, seeded).

    python bench/gen_events.py --out FILE [--hours 1] [--seed 1] [--levels 40]
                               [--updates-per-s 10] [--trades-per-s 2] [--events-per-hour 600000]

A random-walk mid (tick 0.5 around 10000), ``levels`` levels a side one tick apart;
``updates_per_s`` book updates a second, each re-sizing as many levels as it takes to reach
``events_per_hour`` events (about 16 with the defaults) and shifting the ladder when the mid
moves; Poisson trades (``trades_per_s``) at the touch, each followed by its level's new size.
Written lazily as JSON lines (gzip when FILE ends in .gz), in time order, with a header giving
the tick size. ``generate()`` is the function the speed bench calls.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
from pathlib import Path
from typing import IO, Dict

TICK = "0.5"
START_TICKS = 20_000          # 10000.0
SECOND_NS = 1_000_000_000
START_NS = 1_700_000_000 * SECOND_NS


def _open(path: str) -> IO[str]:
    if path.endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", compresslevel=1)
    return open(path, "w", encoding="utf-8")


def generate(path: str, hours: float = 1.0, seed: int = 1, levels: int = 40, updates_per_s: float = 10,
             trades_per_s: float = 2, events_per_hour: int = 600_000) -> int:
    """Write the file; returns the number of book and trade events."""
    rng = random.Random(seed)
    end_ns = START_NS + int(hours * 3600 * SECOND_NS)
    per_update = max(1, round((events_per_hour / 3600 - 2 * trades_per_s) / updates_per_s))
    update_gap = int(SECOND_NS / updates_per_s)
    mid = START_TICKS
    bids: Dict[int, int] = {}
    asks: Dict[int, int] = {}
    count = 0

    def size() -> int:
        return max(1, int(rng.lognormvariate(4, 0.8)))

    with _open(path) as out:
        out.write(json.dumps({"tick_size": float(TICK), "symbol": "BTC_USD"}) + "\n")

        def emit(ts: int, kind: str, side: str, ticks: int, qty: int) -> None:
            nonlocal count
            price = ticks // 2 if ticks % 2 == 0 else ticks / 2
            out.write(f'{{"ts_ns":{ts},"kind":"{kind}","side":"{side}","price":{price},"qty":{qty}}}\n')
            count += 1

        def ladder(ts: int) -> None:
            """Levels mid-1 .. mid-levels and mid+1 .. mid+levels: drop the outside, fill the missing."""
            want_b = set(range(mid - levels, mid))
            want_a = set(range(mid + 1, mid + levels + 1))
            for book, want, side in ((bids, want_b, "bid"), (asks, want_a, "ask")):
                for t in sorted(set(book) - want):
                    del book[t]
                    emit(ts, "book", side, t, 0)
                for t in sorted(want - set(book)):
                    book[t] = size()
                    emit(ts, "book", side, t, book[t])

        ts = START_NS
        ladder(ts)
        next_trade = ts + int(rng.expovariate(trades_per_s) * SECOND_NS)
        next_update = ts + update_gap
        while True:
            ts = min(next_trade, next_update)
            if ts >= end_ns:
                break
            if ts == next_trade:
                buy = rng.random() < 0.5
                book, side = (asks, "ask") if buy else (bids, "bid")
                if book:
                    touch = min(book) if buy else max(book)
                    qty = rng.randint(1, book[touch])
                    emit(ts, "trade", "buy" if buy else "sell", touch, qty)
                    book[touch] -= qty
                    if not book[touch]:
                        del book[touch]
                    emit(ts, "book", side, touch, book.get(touch, 0))
                next_trade = ts + max(1, int(rng.expovariate(trades_per_s) * SECOND_NS))
            else:
                r = rng.random()
                if r < 0.1:
                    mid += 1 if r < 0.05 else -1
                    ladder(ts)
                for _ in range(per_update):
                    book, side = (bids, "bid") if rng.random() < 0.5 else (asks, "ask")
                    if not book:
                        continue
                    t = rng.choice(list(book))
                    book[t] = size()
                    emit(ts, "book", side, t, book[t])
                next_update = ts + update_gap
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--levels", type=int, default=40)
    p.add_argument("--updates-per-s", type=float, default=10)
    p.add_argument("--trades-per-s", type=float, default=2)
    p.add_argument("--events-per-hour", type=int, default=600_000)
    a = p.parse_args(argv)
    n = generate(a.out, a.hours, a.seed, a.levels, a.updates_per_s, a.trades_per_s, a.events_per_hour)
    print(f"wrote {n} events ({a.hours:g} h) to {a.out} ({Path(a.out).stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
