#!/usr/bin/env python3
"""Ingest benchmark: replay a JSON-lines file of raw GTE WebSocket messages through
the live client's ``handle_raw`` (no socket) and report messages/s and µs/message.

  python ../shared/bench/gen_stream.py --levels 1000 --messages 200000 --seed 1 --out /tmp/stream.jsonl
  python bench/ws_ingest.py /tmp/stream.jsonl [--repeat 3] [--profile]

Each repeat uses a fresh client; the best run is reported. Exits 1 if any error was
counted (a valid stream must give none).
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from market_maker.gte.ws import GteWebSocket


def replay(lines: list[str], symbol: str, settle: str, tick: Decimal, symbol_id: int,
           profile: bool = False) -> tuple[float, GteWebSocket]:
    """Feed every line to a fresh offline client; returns (seconds, client)."""
    client = GteWebSocket("", symbol, settle, None)
    client.prime_for_replay(tick, symbol_id)
    handle = client.handle_raw
    prof = cProfile.Profile() if profile else None
    gc.collect()
    start = time.perf_counter()
    if prof is not None:
        prof.enable()
    for line in lines:
        handle(line)
    if prof is not None:
        prof.disable()
    elapsed = time.perf_counter() - start
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return elapsed, client


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="JSON lines, one raw WebSocket message per line")
    ap.add_argument("--repeat", type=int, default=1, help="runs (fresh client each); best reported")
    ap.add_argument("--symbol", default="BTC_USD")
    ap.add_argument("--settle", default="BTC")
    ap.add_argument("--tick", default="0.5", help="tick size (the stream has no instrument partial)")
    ap.add_argument("--symbol-id", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="one extra run under cProfile")
    a = ap.parse_args()

    with open(a.file, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    tick = Decimal(a.tick)
    times = []
    client = None
    for _ in range(max(1, a.repeat)):
        elapsed, client = replay(lines, a.symbol, a.settle, tick, a.symbol_id)
        times.append(elapsed)
    assert client is not None
    best = min(times)
    n = len(lines)
    bids, asks = client.book_depth()
    snap = client.snapshot(5)
    print(f"messages:      {n}")
    print(f"best of {len(times)}:     {n / best:,.0f} msgs/s  ({best / n * 1e6:.2f} µs/msg)")
    if len(times) > 1:
        print(f"all runs (s):  {', '.join(f'{t:.3f}' for t in times)}")
    print(f"book depth:    {bids} bids / {asks} asks; best {snap.book.best_bid} / {snap.book.best_ask}")
    print(f"synced:        {snap.synced}; errors: {client.error_count}")
    print(f"stats:         {dict(sorted(client.stats.items()))}")
    if a.profile:
        replay(lines, a.symbol, a.settle, tick, a.symbol_id, profile=True)
    return 1 if client.error_count else 0


if __name__ == "__main__":
    sys.exit(main())
