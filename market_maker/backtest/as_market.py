"""``--market as-model``: the market of Avellaneda & Stoikov (2008) on the simulated exchange.

The paper's market (:mod:`.as_model`) played by other traders, so that the unchanged bot runs
on it through the backtester:

* the mid ``s`` moves up or down by ``sigma sqrt(dt)`` every step (probability 1/2);
* a far liquidity provider keeps one bid and one ask ``WIDTH`` away from ``s`` (the bot reads
  ``s`` as the mid of the book; orders that far are practically never reached);
* on each side, with probability ``A dt`` per step, a taker arrives whose reach ``d`` is
  exponential with rate ``k``: it buys (sells) one lot of ``ORDER_START_SIZE`` contracts up to
  ``s + d`` (down to ``s - d``). An order of the bot resting ``delta`` from ``s`` is thus filled
  with probability ``A exp(-k delta) dt``, at most one lot per side per step, as in the paper.

The paper's time unit is mapped to ``TIME_UNIT_S`` seconds of simulated time (T = 1 is one
minute): sigma = 2 per sqrt(minute), A = 140 per minute, dt = 0.005 minute = 0.3 s, k = 1.5 per
price unit. The market starts at the exchange's mark price (``SIM_START_PRICE``; the paper: 100,
with ``SIM_TICK_SIZE`` 0.01). The bot should know A and k (its trade-based fit sees only the
trades that hit an order): pin them with equal bounds, e.g.
``INTENSITY_A_BOUNDS = (140/60, 140/60)`` and ``INTENSITY_K_BOUNDS = (1.5, 1.5)``.
"""
from __future__ import annotations

import math
import random
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Dict, Optional

from .as_model import ASModel
from .market import MarketError, register

if TYPE_CHECKING:
    from ..settings import Settings
    from ..sim.exchange import Exchange

TIME_UNIT_S = 60.0
WIDTH = Decimal(5)  # price units between s and the far provider's quotes
PROVIDER_QTY = 1_000_000
BALANCE = Decimal(10) ** 9  # the other traders never run out of margin


class ASMarket:
    """The paper's market as a ``MarketModel`` (seeded)."""

    def __init__(self, lot: int, tick: Decimal, model: ASModel = ASModel(), time_unit_s: float = TIME_UNIT_S,
                 seed: int = 1):
        if lot < 1:
            raise MarketError("as-model: the lot (ORDER_START_SIZE) must be at least 1 contract")
        self.model, self.lot, self.tick, self.seed = model, lot, Decimal(tick), seed
        self.step_ms = max(1, int(round(model.dt * time_unit_s * 1000)))
        self.move = model.sigma * math.sqrt(model.dt)
        self.arrival = min(1.0, model.A * model.dt)
        self.exchange: Optional["Exchange"] = None
        self.symbol = ""
        self.s = 0.0
        self.quotes: Dict[int, str] = {}
        self._next: Optional[int] = None
        self.rng = random.Random(seed)

    def set_seed(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def attach(self, exchange: "Exchange", symbol: str, start_ms: int) -> None:
        self.exchange, self.symbol = exchange, symbol
        self.s = float(exchange.mark_price(symbol))
        self.provider = exchange.open_account("as-provider", BALANCE)
        self.taker = exchange.open_account("as-taker", BALANCE)
        self._provide(start_ms)
        self._next = start_ms + self.step_ms

    def next_ms(self) -> Optional[int]:
        return self._next

    def _price(self, value: float, rounding: str) -> Decimal:
        ticks = (Decimal(repr(value)) / self.tick).to_integral_value(rounding)
        return max(ticks, Decimal(1)) * self.tick

    def _provide(self, now_ms: int) -> None:
        ex = self.exchange
        alive = ex.open_order_ids(self.provider)
        for oid in self.quotes.values():
            if oid in alive:
                ex.cancel_order(self.provider, self.symbol, oid, now_ms)
        width = float(WIDTH)
        self.quotes = {
            1: ex.place_order(self.provider, self.symbol, 1, 0, self._price(self.s - width, ROUND_FLOOR),
                              PROVIDER_QTY, None, now_ms)["order_id"],
            0: ex.place_order(self.provider, self.symbol, 0, 0, self._price(self.s + width, ROUND_CEILING),
                              PROVIDER_QTY, None, now_ms)["order_id"],
        }
        ex.set_mark_price(self.symbol, self._price(self.s, ROUND_FLOOR), now_ms)

    def _take(self, side: int, now_ms: int) -> None:
        reach = self.rng.expovariate(self.model.k)
        price = self._price(self.s + reach, ROUND_FLOOR) if side == 1 else self._price(self.s - reach, ROUND_CEILING)
        ex = self.exchange
        _, closable = ex.position_qty(self.taker, self.symbol, 0 if side == 1 else 1)
        row = ex.place_order(self.taker, self.symbol, side, 1 if closable >= self.lot else 0, price, self.lot,
                             None, now_ms)
        if row["status"] in ("1", "2", "16"):  # not (wholly) filled: the rest goes, as a market order's would
            ex.cancel_order(self.taker, self.symbol, row["order_id"], now_ms)

    def step(self, now_ms: int) -> None:
        draw_bid, draw_ask, draw_move = self.rng.random(), self.rng.random(), self.rng.random()
        if draw_bid < self.arrival:
            self._take(0, now_ms)  # a seller reaching down to the bids
        if draw_ask < self.arrival:
            self._take(1, now_ms)
        self.s += self.move if draw_move < 0.5 else -self.move
        self._provide(now_ms)
        self._next = now_ms + self.step_ms


def _factory(settings: "Settings", arg: Optional[str]) -> ASMarket:
    if arg is not None:
        raise MarketError(f"the as-model market takes no file (got {arg!r})")
    return ASMarket(lot=settings.ORDER_START_SIZE, tick=settings.SIM_TICK_SIZE, seed=settings.SIM_SEED)


register("as-model", _factory)
