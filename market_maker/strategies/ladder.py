"""Pure: from the model's optimal bid and ask (floats) to the ladder of orders we want resting.

ORDER_PAIRS levels per side, the innermost at the optimal quote, each further one
QUOTE_SPACING_TICKS further out and ORDER_STEP_SIZE contracts larger (the first one
ORDER_START_SIZE). Then, in this order:

1. prices snap to the tick grid on the safe side: bids down, asks up;
2. the inventory bound: a side stops where its fills would take the net position past
   +-INVENTORY_LIMIT (the last level that fits is cut to what is left);
3. the client-side post-only clamp (:func:`market_maker.quoting.clamp_post_only`);
4. the close/open split of two-way positions (:func:`market_maker.closing.split_close_open`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any, List, Sequence, Tuple

from .. import quoting
from ..models import BUY, SELL, Book, DesiredOrder, Order, Positions

__all__ = ["LadderParams", "build", "side_levels"]


@dataclass(frozen=True)
class LadderParams:
    order_pairs: int
    start_size: int
    step_size: int
    spacing_ticks: int
    tick_size: Decimal
    inventory_limit: int  # contracts, both ways
    post_only: bool

    @classmethod
    def from_settings(cls, settings: Any, tick_size: Decimal) -> "LadderParams":
        return cls(order_pairs=settings.ORDER_PAIRS, start_size=settings.ORDER_START_SIZE,
                   step_size=settings.ORDER_STEP_SIZE, spacing_ticks=settings.QUOTE_SPACING_TICKS,
                   tick_size=Decimal(tick_size), inventory_limit=settings.INVENTORY_LIMIT,
                   post_only=settings.POST_ONLY)


def side_levels(side: str, price: float, room: int, params: LadderParams) -> Tuple[DesiredOrder, ...]:
    """One side's levels from the optimal ``price``, at most ``room`` contracts in all."""
    if not math.isfinite(price):
        raise ValueError(f"the optimal {side} price is not a number: {price!r}")
    tick = params.tick_size
    first = quoting.snap_price(Fraction(price), tick, side)
    step = tick * params.spacing_ticks * (-1 if side == BUY else 1)
    out: List[DesiredOrder] = []
    left = room
    for i in range(params.order_pairs):
        qty = min(params.start_size + i * params.step_size, left)
        level = first + step * i
        if qty <= 0 or level <= 0:
            break
        out.append(DesiredOrder(side, level, qty, 0))
        left -= qty
    return tuple(out)


def build(bid: float, ask: float, book: Book, own_orders: Sequence[Order], positions: Positions,
          params: LadderParams) -> Tuple[Tuple[DesiredOrder, ...], Tuple[DesiredOrder, ...]]:
    """``(buys, sells)``, each best first, ready for ``OrderManager.converge_orders``."""
    if not bid < ask:
        raise ValueError(f"the optimal bid {bid!r} is not below the optimal ask {ask!r}")
    net = positions.net
    buys = side_levels(BUY, bid, params.inventory_limit - net, params)
    sells = side_levels(SELL, ask, params.inventory_limit + net, params)
    if params.post_only:
        buys = quoting.clamp_post_only(buys, book, params.tick_size)
        sells = quoting.clamp_post_only(sells, book, params.tick_size)
    pairs = params.order_pairs
    buys = quoting.split_close_open(buys, quoting.close_capacity(BUY, positions, own_orders))[:pairs]
    sells = quoting.split_close_open(sells, quoting.close_capacity(SELL, positions, own_orders))[:pairs]
    return buys, sells
