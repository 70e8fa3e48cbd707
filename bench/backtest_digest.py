"""Digests of what a backtest and the simulator's market produce, to show a speed change changed no result.

    python bench/backtest_digest.py [--seeds 1,2,3] [--pairs 6,30] [--hours 0.05] [--flow-steps 2000]
                                    [--market NAME [FILE]]

For each seed and ORDER_PAIRS (the settings of ``bench/backtest_speed.py``) it runs a backtest
on the default synthetic market with a journal and prints three SHA-256 digests (12 hex digits):

* ``journal``: every row of every journal table, the run's ``started_ms``/``stopped_ms`` left out;
* ``consumed``: the exchange's events that anyone in a backtest reads -- the public ones (book,
  trades) and those of the bot's account -- each with its wire row, in order, and at each drain the
  count of book changes the exchange counted instead of queuing (``Exchange.book_as_count``);
* ``all``: every event of the exchange with its row, the market's own accounts' included (and
  that count).

(``--market`` runs another market instead of the synthetic one.) Then, for each seed, ``flow``: the event stream (rows included) of the synthetic market alone on
the exchange as the real-time simulator builds it, ``--flow-steps`` steps of 50 ms: what its
WebSocket fan-out turns into pushes.

Run it before and after a change and compare the output line by line. A change that drops
events nobody reads (the market accounts' private ones) in a backtest changes ``all`` and
nothing else.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from market_maker.backtest.command import MARKET_MODULES  # noqa: E402
from market_maker.backtest.engine import run_backtest  # noqa: E402
from market_maker.backtest.market import build  # noqa: E402
from market_maker.market_maker import OrderManager  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402
from market_maker.sim.config import SimConfig  # noqa: E402
from market_maker.sim.exchange import Exchange  # noqa: E402
from market_maker.sim.server import _build_exchange  # noqa: E402

BOT_ACCOUNT_NAME = "backtest-bot"


def _event_text(event: Any) -> bytes:
    return repr((event.kind, event.account_id, event.symbol, event.action, list(event.row.items()))).encode()


class StreamDigest:
    """Wraps ``Exchange.drain_events`` and ``open_account`` (for every exchange of this process)."""

    def __init__(self) -> None:
        self.all = hashlib.sha256()
        self.consumed = hashlib.sha256()
        self.bot: int | None = None
        self._drain = Exchange.drain_events
        self._open = Exchange.open_account

    def __enter__(self) -> "StreamDigest":
        digest = self

        def drain_events(exchange: Exchange) -> list:
            events = digest._drain(exchange)
            digest.add(events, exchange.book_changes)
            return events

        def open_account(exchange: Exchange, name: str, *args: Any, **kwargs: Any) -> int:
            account_id = digest._open(exchange, name, *args, **kwargs)
            if name == BOT_ACCOUNT_NAME:
                digest.bot = account_id
            return account_id

        Exchange.drain_events = drain_events  # type: ignore[method-assign]
        Exchange.open_account = open_account  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        Exchange.drain_events = self._drain  # type: ignore[method-assign]
        Exchange.open_account = self._open  # type: ignore[method-assign]

    def add(self, events: Iterable[Any], book_changes: int = 0) -> None:
        """Events drained, after ``book_changes`` book changes counted so far (``Exchange.book_as_count``)."""
        if book_changes:
            counted = f"book_changes {book_changes}\n".encode()
            self.all.update(counted)
            self.consumed.update(counted)
        for event in events:
            text = _event_text(event)
            self.all.update(text)
            if event.account_id is None or event.account_id == self.bot:
                self.consumed.update(text)


def journal_digest(path: str) -> str:
    h = hashlib.sha256()
    con = sqlite3.connect(path)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        for table in tables:
            cur = con.execute(f"SELECT * FROM {table} ORDER BY rowid")
            names = [d[0] for d in cur.description]
            h.update(f"{table}:{names}".encode())
            for row in cur:
                values = dict(zip(names, row))
                if table == "runs":
                    values.pop("started_ms", None)
                    values.pop("stopped_ms", None)
                h.update(repr(sorted(values.items())).encode())
    finally:
        con.close()
    return h.hexdigest()[:12]


def backtest_digests(seed: int, pairs: int, hours: float, market: list[str]) -> str:
    work = Path(tempfile.mkdtemp())
    settings = load_settings(overrides={"ORDER_PAIRS": pairs, "ORDER_STEP_SIZE": 100 if pairs <= 10 else 20},
                             environ={}, cwd=work)
    journal = str(work / "journal.sqlite")
    with StreamDigest() as stream:
        result = run_backtest(settings, OrderManager, build(market[0], settings, *market[1:]), seed=seed,
                              hours=hours, journal_path=journal)
    return (f"journal {journal_digest(journal)}  consumed {stream.consumed.hexdigest()[:12]}  "
            f"all {stream.all.hexdigest()[:12]}  ({result.fills} fills, {result.orders_sent} orders, "
            f"net {result.net_pnl})")


def flow_digest(seed: int, steps: int) -> str:
    with StreamDigest() as stream:
        exchange, flows = _build_exchange(SimConfig(seed=seed))
        now = 1_700_000_000_000
        for _ in range(steps):
            exchange.tick(now)
            for flow in flows:
                flow.step(now)
            exchange.drain_events()
            now += 50
    return f"flow {stream.all.hexdigest()[:12]}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--pairs", default="6,30")
    p.add_argument("--hours", type=float, default=0.05)
    p.add_argument("--flow-steps", type=int, default=2000)
    p.add_argument("--market", nargs="+", default=["synthetic"], metavar=("NAME", "FILE"))
    args = p.parse_args()
    for name in MARKET_MODULES:
        importlib.import_module(f"market_maker.backtest.{name}")
    seeds = [int(v) for v in args.seeds.split(",")]
    for seed in seeds:
        for pairs in [int(v) for v in args.pairs.split(",")]:
            print(f"seed {seed} ORDER_PAIRS={pairs:<3} {backtest_digests(seed, pairs, args.hours, args.market)}",
                  flush=True)
    for seed in seeds:
        print(f"seed {seed} {flow_digest(seed, args.flow_steps)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
