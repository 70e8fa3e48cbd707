"""Edge per fill of a strategy on the synthetic market, by how far from the reference its orders were placed.

For each of our fills: the distance of its order from the reference price when it was placed (positive on
the passive side), the markout (reference minus fill price for a buy, fill price minus reference for a
sell) just after the market step that filled it and ``--horizons`` seconds later, and the fee as the price
move worth as much (negative: the maker rebate; ``fee * price ** 2 / qty`` for the inverse BTC_USD contract,
whose PnL per contract on a move ``m`` is about ``m / price ** 2`` BTC). All in USD of price per contract.

The reference is the synthetic market's exogenous random walk (market_maker/sim/flow.py): equity is marked
to it and its later moves do not depend on our fills, so the markout just after the fill minus the fee is
what the fill adds to the expected PnL. The later markouts only add the walk's noise.

    python3 bench/fill_markout.py [--strategy glft] [--market default] [--seeds 4] [--first-seed 101]
                                  [--hours 0.25] [--set NAME=VALUE ...] [--edges 0,5,10,20,40]

``--strategy`` and ``--market`` are those of bench/strategy_compare.py; ``--set`` overrides one of the
strategy's settings (a number with a point is a Decimal, commas make a tuple).
"""
from __future__ import annotations

import argparse
import bisect
import functools
import importlib.util
import logging
import math
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from market_maker.events import Event  # noqa: E402
from market_maker.models import BUY  # noqa: E402


@dataclass(frozen=True)
class Placed:
    ms: int  # exchange time of the create
    price: Decimal


@dataclass(frozen=True)
class Fill:
    ms: int
    client_oid: str
    side: str
    price: Decimal
    qty: int
    fee: Decimal  # settle currency (BTC for an inverse contract); negative is a rebate


@dataclass(frozen=True)
class FillMarkout:
    placed_distance: Optional[Decimal]  # USD from the reference at the create, positive on the passive side
    age_s: Optional[float]  # from the create to the fill
    qty: int
    markouts: Tuple[Decimal, ...]  # USD per contract: just after the fill, then one per horizon
    fee_usd: Decimal  # the price move worth the fee per contract; negative is a rebate

    @property
    def edge(self) -> Decimal:
        """USD per contract the fill adds to the expected PnL: the markout just after it minus the fee."""
        return self.markouts[0] - self.fee_usd


class ReferencePath:
    """The reference price after each market step, looked up by exchange time."""

    def __init__(self) -> None:
        self.ms: List[int] = []
        self.prices: List[Decimal] = []

    def add(self, ms: int, price: Decimal) -> None:
        self.ms.append(ms)
        self.prices.append(price)

    def at(self, ms: int) -> Decimal:
        """The reference after the last step at or before ``ms`` (the first one before any step)."""
        if not self.ms:
            raise ValueError("no reference price recorded")
        return self.prices[max(bisect.bisect_right(self.ms, ms) - 1, 0)]


class RecordingMarket:
    """The synthetic market (``backtest.synthetic.SyntheticMarket``), writing its reference price to ``path``
    after each step."""

    def __init__(self, market: Any, path: ReferencePath) -> None:
        self.market = market
        self.path = path

    def set_seed(self, seed: int) -> None:
        self.market.set_seed(seed)

    def attach(self, exchange: Any, symbol: str, start_ms: int) -> None:
        self.market.attach(exchange, symbol, start_ms)

    def next_ms(self) -> Optional[int]:
        return self.market.next_ms()

    def step(self, now_ms: int) -> None:
        self.market.step(now_ms)
        self.path.add(now_ms, self.market.flow.reference_price)


class FillLog:
    """An event sink that keeps our accepted creates and our live fills."""

    def __init__(self) -> None:
        self.placed: Dict[str, Placed] = {}
        self.fills: List[Fill] = []

    def handle(self, event: Event) -> None:
        f = event.fields
        if event.kind == "order" and f.get("action") == "create" and f.get("outcome") == "ok":
            self.placed[f["client_oid"]] = Placed(round(event.ts * 1000), Decimal(f["price"]))
        elif event.kind == "execution" and f.get("source") == "live":
            self.fills.append(Fill(int(f["ts_ex_ms"]), f["client_oid"], f["side"], Decimal(f["price"]),
                                   int(f["qty"]), Decimal(f["fee"])))


def markouts(fills: Sequence[Fill], placed: Dict[str, Placed], path: ReferencePath,
             horizons_s: Sequence[float]) -> List[FillMarkout]:
    """Each fill's placement distance, markouts (just after it, then at each horizon) and fee per contract."""
    out = []
    for fill in fills:
        sign = 1 if fill.side == BUY else -1
        order = placed.get(fill.client_oid)
        distance = sign * (path.at(order.ms) - order.price) if order else None
        age = (fill.ms - order.ms) / 1000 if order else None
        after = [path.at(fill.ms)] + [path.at(fill.ms + round(h * 1000)) for h in horizons_s]
        fee_usd = fill.fee * fill.price * fill.price / fill.qty  # the fee is qty / price * rate BTC
        out.append(FillMarkout(distance, age, fill.qty, tuple(sign * (ref - fill.price) for ref in after), fee_usd))
    return out


def by_distance(rows: Sequence[FillMarkout], edges: Sequence[Decimal]) -> List[Dict[str, Any]]:
    """Contract-weighted figures per band of placement distance: ``[-inf, e0), [e0, e1), ..., [eN, inf)``;
    the standard error is that of the per-contract edge (fills weighted by their contracts)."""
    bounds = [-math.inf, *edges, math.inf]
    out = []
    for low, high in zip(bounds, bounds[1:]):
        band = [r for r in rows if r.placed_distance is not None and low <= r.placed_distance < high]
        contracts = sum(r.qty for r in band)
        if not contracts:
            continue
        mean = [sum(r.markouts[i] * r.qty for r in band) / contracts for i in range(len(band[0].markouts))]
        edge = sum(r.edge * r.qty for r in band) / contracts
        spread = sum(r.qty * float(r.edge - edge) ** 2 for r in band) / contracts
        ages = sorted(r.age_s for r in band if r.age_s is not None)
        out.append({"low": low, "high": high, "fills": len(band), "contracts": contracts, "markouts": mean,
                    "fee_usd": sum(r.fee_usd * r.qty for r in band) / contracts, "edge": edge,
                    "edge_se": math.sqrt(spread / len(band)), "median_age_s": ages[len(ages) // 2]})
    return out


def parse_value(text: str) -> Any:
    """A ``--set`` value: an int, a Decimal (a number with a point), a tuple (commas), else the text."""
    if "," in text:
        return tuple(parse_value(part.strip()) for part in text.split(","))
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def run(strategy: str, market: str, seed: int, hours: float, extra: Dict[str, Any],
        horizons_s: Sequence[float]) -> Tuple[Any, List[FillMarkout]]:
    """One backtest of bench/strategy_compare.py's ``strategy`` on ``market``; its result and fill markouts."""
    from market_maker.backtest import market as markets
    from market_maker.backtest import synthetic  # noqa: F401  (registers "synthetic")
    from market_maker.backtest.engine import run_backtest
    from market_maker.runner import load_strategy
    from market_maker.settings import load_settings

    compare = _strategy_compare()
    spec, overrides = compare.STRATEGIES[strategy]
    settings = load_settings(None, overrides={**compare.MARKETS[market], **overrides, **extra, "STRATEGY": spec},
                             environ={})
    path, log = ReferencePath(), FillLog()
    model = RecordingMarket(markets.build("synthetic", settings), path)
    quiet = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        result = run_backtest(settings, load_strategy(spec), model, seed=seed, hours=hours, sinks=[log])
    finally:
        logging.disable(quiet)
    return result, markouts(log.fills, log.placed, path, horizons_s)


@functools.lru_cache(maxsize=1)
def _strategy_compare() -> Any:
    spec = importlib.util.spec_from_file_location("strategy_compare", ROOT / "bench" / "strategy_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def table(bands: Sequence[Dict[str, Any]], horizons_s: Sequence[float]) -> str:
    later = "".join(f" markout {h:g} s |" for h in horizons_s)
    lines = [f"| placed (USD from ref) | fills | contracts | median age (s) | markout at fill |{later} fee | "
             f"edge (USD/contract) |",
             "| --- " * (7 + len(horizons_s)) + "|"]
    for b in bands:
        low = "" if b["low"] == -math.inf else f"{b['low']:g}"
        high = "" if b["high"] == math.inf else f"{b['high']:g}"
        marks = " | ".join(f"{m:+.2f}" for m in b["markouts"])
        lines.append(f"| [{low}, {high}) | {b['fills']} | {b['contracts']} | {b['median_age_s']:.2f} | {marks} | "
                     f"{b['fee_usd']:+.2f} | {b['edge']:+.2f} ± {b['edge_se']:.2f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategy", default="glft")
    parser.add_argument("--market", default="default")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument("--hours", type=float, default=0.25)
    parser.add_argument("--horizons", default="1,5", help="seconds after the fill, comma-separated")
    parser.add_argument("--edges", default="0,5,10,15,20,30,40,60", help="USD, comma-separated, increasing")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: NAME=VALUE")
        extra[name.strip()] = parse_value(value.strip())
    horizons = [float(h) for h in args.horizons.split(",") if h]
    edges = [Decimal(e) for e in args.edges.split(",") if e]
    rows: List[FillMarkout] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        result, fills = run(args.strategy, args.market, seed, args.hours, extra, horizons)
        rows += fills
        print(f"seed {seed}: net PnL {result.net_pnl:+.6f}, Sharpe {result.sharpe:+.3f}, inventory std "
              f"{result.inventory_std:.0f}, fills {result.fills}, volume {result.volume}", flush=True)
    print(f"\n{args.strategy} on the {args.market} market, seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, "
          f"{args.hours:g} h each{''.join(f', {s}' for s in args.set)}")
    print(table(by_distance(rows, edges), horizons))
    contracts = sum(r.qty for r in rows)
    if contracts:
        print(f"all fills: edge {sum(r.edge * r.qty for r in rows) / contracts:+.2f} USD per contract "
              f"over {contracts} contracts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
