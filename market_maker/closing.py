"""Two-way positions (hedge mode): which part of a side's quotes closes the opposite leg.

GTE holds a long and a short position on one contract at once; each order says whether it
opens or closes (``close_flag``). Pure functions, no I/O. A level straddling the boundary
between what may close and what opens becomes two orders at the same price and side (close
part first, then open part): the only case where a ladder holds two orders at one (side,
price).
"""
from __future__ import annotations

from collections.abc import Sequence

from .models import ACTIVE_STATUSES, OPEN_STATUSES, SELL, DesiredOrder, Order, Positions

__all__ = ["close_capacity", "split_close_open"]

# ``DesiredOrder(side, price, qty, close_flag)`` without the named tuple's Python-level ``__new__``
# (the same tuple, built in a third of the time)
_TUPLE_NEW = tuple.__new__


def close_capacity(side: str, positions: Positions, own_orders: Sequence[Order]) -> int:
    """Contracts that new close orders of ``side`` may take: sells close the long, buys the short.

    The exchange's ``avail_qty`` excludes what every resting close order locks. The
    ladder re-plans our *active* close orders (kept or cancelled before a new close
    is sent), so their remaining quantity is added back; an order whose cancel is
    pending is not re-planned and keeps its lock until it is final (the same
    ``Order.is_active`` rule converge plans with). Also capped at the leg's ``qty``
    less those pending cancels, in case ``avail_qty`` lags our own order view.
    """
    leg = positions.long if side == SELL else positions.short
    if leg.qty <= 0:
        return 0  # nothing to close, whatever rests
    active = pending = 0
    for o in own_orders:
        if o.close_flag == 1 and o.side == side:
            status = o.status
            if status in ACTIVE_STATUSES:  # o.is_active, inlined
                active += o.qty - o.filled_qty
            elif status in OPEN_STATUSES:
                pending += o.qty - o.filled_qty
    return max(0, min(leg.qty - pending, leg.avail_qty + active))


def split_close_open(orders: Sequence[DesiredOrder], capacity: int) -> tuple[DesiredOrder, ...]:
    """Give ``close_flag=1`` to the innermost quantity up to ``capacity``, 0 to the rest.

    ``orders`` is one side, innermost first. A level straddling the boundary
    is split into a close part followed by an open part at the same price.
    """
    left = max(0, capacity)
    if not left:
        for o in orders:
            if not (o.close_flag == 0 and o.qty > 0 and type(o) is DesiredOrder):
                break
        else:
            return tuple(orders)  # no position to close: every order stays as it is
    out = []
    for o in orders:
        qty = o.qty
        close_qty = min(qty, left)
        left -= close_qty
        if close_qty:
            out.append(_TUPLE_NEW(DesiredOrder, (o.side, o.price, close_qty, 1)))
        if qty - close_qty:
            out.append(_TUPLE_NEW(DesiredOrder, (o.side, o.price, qty - close_qty, 0)))
    return tuple(out)
