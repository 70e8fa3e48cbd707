"""Pure converge planning: from our live orders to the desired ladder in few calls.

GTE has no amend, so an order is either kept as is or replaced (cancel +
create). :func:`plan_converge` decides which, :func:`ordered_steps` decides
in which order to send the calls. No I/O, no clock, no logging.

Matching. Per side, live orders are matched to desired orders by price
proximity. A live order can be *kept* for a desired order only when

* close_flag matches and the live REMAINING quantity (qty - filled) equals
  the desired qty;
* ``|live - desired| / desired <= relist_interval``;
* keeping it cannot make a mess: a kept order that is not at its desired
  price must not sit on the price of another desired order of the same side
  (that would put two orders at one side/price), and must not cross the
  desired orders of the other side (kept buy < every desired sell, kept sell
  > every desired buy).

Live orders already exactly at a desired order (side, price, close_flag,
remaining qty) are kept first; a live order sitting on the price of another
desired order of its side cannot be kept for anything else, so this is always
optimal. The other candidates form an interval structure within each
(close_flag, qty) class, where a dynamic programme over the price-sorted
orders finds the matching with the most kept orders, then the smallest total
``|price difference|``. Because close_flag is part of the match, the two
halves of a split level (same side and price, close_flag 1 and 0) are one
(side, price) group whose members are matched independently, never confused
with each other or counted as duplicates. Every other live order is
cancelled, every other desired order is created.

Safety. If the live orders exceed ``max_open`` or two of them share side,
price and close_flag, the plan is "cancel everything and rebuild" (``reason``
set). Orders with status 4 (cancel already pending) and final orders are
ignored: they are on their way out.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import List, Tuple, Union

from .models import BUY, OPEN_STATUSES, SELL, DesiredOrder, Order

__all__ = [
    "CANCEL",
    "CANCEL_PENDING",
    "CREATE",
    "Plan",
    "Step",
    "group_cancels",
    "ordered_steps",
    "plan_converge",
]

CANCEL = "cancel"
CREATE = "create"
CANCEL_PENDING = 4  # order status: cancel requested, not yet final

_ACTIVE_STATUSES = OPEN_STATUSES - {CANCEL_PENDING}  # open and no cancel pending: what converge plans with

#: ``("cancel", [orders])`` or ``("create", DesiredOrder)``.
Step = Tuple[str, Union[List[Order], DesiredOrder]]


def group_cancels(
    orders: Sequence[Order], batch_available: bool, batch_max: int = 50
) -> list[list[Order]]:
    """Split cancels into API calls: a list of 2+ orders is one ``cancel_batch``.

    ``cancel_batch`` is allowed once per 10 s, so when ``batch_available`` the
    first ``batch_max`` orders go in one batch and any remainder as single
    cancels; otherwise (or for a lone order) every cancel is single.
    """
    orders = list(orders)
    if batch_available and len(orders) >= 2:
        head, rest = orders[:batch_max], orders[batch_max:]
        return [head] + [[o] for o in rest]
    return [[o] for o in orders]


@dataclass(frozen=True)
class Plan:
    """What to do: cancel ``to_cancel``, create ``to_create``, leave ``keep`` alone.

    ``reason`` is set (and everything is cancelled and rebuilt) when the live
    orders were in an unsafe state.
    """

    to_cancel: tuple[Order, ...] = ()
    to_create: tuple[DesiredOrder, ...] = ()
    keep: tuple[Order, ...] = ()
    reason: str | None = None

    @property
    def empty(self) -> bool:
        """True when nothing needs to be sent."""
        return not self.to_cancel and not self.to_create

    def cancel_groups(self, batch_available: bool, batch_max: int = 50) -> list[list[Order]]:
        """The cancels as API calls (see :func:`group_cancels`)."""
        return group_cancels(self.to_cancel, batch_available, batch_max)

    def calls(self, batch_available: bool) -> int:
        """Number of API calls this plan costs."""
        return len(self.cancel_groups(batch_available)) + len(self.to_create)


_price = attrgetter("price")
_ZERO = Decimal(0)


def _key(o: Order | DesiredOrder) -> tuple[str, Decimal, int]:
    return (o.side, o.price, o.close_flag)


def _validate_desired(buys: Sequence[DesiredOrder], sells: Sequence[DesiredOrder]) -> None:
    keys = set()
    for side, orders in ((BUY, buys), (SELL, sells)):
        for d in orders:
            if d.side != side:
                raise ValueError(f"desired {side} list holds a {d.side} order: {d}")
            if d.qty <= 0 or not d.price > _ZERO or d.close_flag not in (0, 1):
                raise ValueError(f"invalid desired order: {d}")
            keys.add((side, d.price, d.close_flag))
    if len(keys) != len(buys) + len(sells):
        raise ValueError("desired orders repeat a (side, price, close_flag)")
    if buys and sells and max(d.price for d in buys) >= min(d.price for d in sells):
        raise ValueError("desired buys cross desired sells")


def _mess(live: Sequence[Order], max_open: int) -> str | None:
    if len(live) > max_open:
        return f"{len(live)} live orders > max_open {max_open}"
    if len({(o.side, o.price, o.close_flag) for o in live}) == len(live):
        return None  # the common case: no duplicate
    seen = set()
    for o in live:
        k = _key(o)
        if k in seen:
            return f"duplicate live orders at {o.side} {o.price} close_flag={o.close_flag}"
        seen.add(k)
    return None


def _shift_ok(o: Order, min_sell: Decimal | None, max_buy: Decimal | None) -> bool:
    """Whether ``o`` may be kept away from its desired price: it must not cross the other side."""
    if o.side == BUY:
        return min_sell is None or o.price < min_sell
    return max_buy is None or o.price > max_buy


def _match_class(
    desired: list[DesiredOrder],
    live: list[Order],
    relist_interval: Decimal,
) -> list[tuple[int, int]]:
    """Order-preserving matching of price-sorted lists: most keeps, then least |diff|.

    Returns index pairs (desired index, live index).
    """
    n, m = len(desired), len(live)
    if n == 1 and m == 1:  # the usual class (one level per size): no DP needed
        d = desired[0]
        return [(0, 0)] if abs(live[0].price - d.price) <= relist_interval * d.price else []
    zero = (0, Decimal(0))
    best = [[zero] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        d = desired[i - 1]
        row, prev = best[i], best[i - 1]
        for j in range(1, m + 1):
            cand = max(prev[j], row[j - 1])
            lo = live[j - 1]
            diff = abs(lo.price - d.price)
            if diff <= relist_interval * d.price:
                k, c = prev[j - 1]
                cand = max(cand, (k + 1, c - diff))
            row[j] = cand
    pairs = []
    i, j = n, m
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            pairs.append((i - 1, j - 1))
            i -= 1
            j -= 1
    return pairs


def plan_converge(
    desired_buys: Sequence[DesiredOrder],
    desired_sells: Sequence[DesiredOrder],
    live_orders: Sequence[Order],
    relist_interval: Decimal,
    max_open: int,
) -> Plan:
    """Plan the fewest cancels/creates turning ``live_orders`` into the desired ladder.

    See the module docstring for the matching and safety rules. Raises
    ``ValueError`` if the desired orders themselves are inconsistent (wrong
    side, repeated (side, price, close_flag), buys crossing sells).
    """
    if not isinstance(relist_interval, Decimal):
        relist_interval = Decimal(str(relist_interval))
    buys, sells = tuple(desired_buys), tuple(desired_sells)
    _validate_desired(buys, sells)
    live = tuple(o for o in live_orders if o.status in _ACTIVE_STATUSES)
    reason = _mess(live, max_open)
    if reason is not None:
        return Plan(to_cancel=live, to_create=buys + sells, keep=(), reason=reason)

    min_sell = min((d.price for d in sells), default=None)
    max_buy = max((d.price for d in buys), default=None)
    everything = buys + sells
    kept_ids = set()
    matched = set()  # indices into ``everything``
    live_by_side: dict[str, list[Order]] = {BUY: [], SELL: []}
    for o in live:
        live_by_side.setdefault(o.side, []).append(o)
    # With relist_interval 0 only an order at its desired price may be kept, and step 1 finds
    # every such order: step 2 could not keep anything.
    proximity = relist_interval > _ZERO
    for side, offset, desired in ((BUY, 0, buys), (SELL, len(buys), sells)):
        # 1. Keep exact matches. A live order on a desired price of its side
        #    may only be kept for that very order, so this is always optimal.
        exact = {(d.price, d.close_flag, d.qty): offset + k for k, d in enumerate(desired)}
        side_prices = {d.price for d in desired}
        rest: dict[tuple[int, int], list[Order]] = defaultdict(list)
        for o in live_by_side[side]:
            k = exact.get((o.price, o.close_flag, o.qty - o.filled_qty))
            if k is not None and k not in matched:
                matched.add(k)
                kept_ids.add(id(o))
            elif proximity and o.price not in side_prices and _shift_ok(o, min_sell, max_buy):
                rest[(o.close_flag, o.qty - o.filled_qty)].append(o)
        if not rest:
            continue
        # 2. The remaining candidates form an interval structure per
        #    (close_flag, qty) class: an order-preserving DP is optimal.
        d_classes: dict[tuple[int, int], list[int]] = defaultdict(list)
        for k, d in enumerate(desired, offset):
            if k not in matched and (d.close_flag, d.qty) in rest:
                d_classes[(d.close_flag, d.qty)].append(k)
        for cls, d_idx in d_classes.items():
            lives = rest[cls]
            if len(lives) == 1 and len(d_idx) == 1:  # the usual class (one level per size)
                d = everything[d_idx[0]]
                if abs(lives[0].price - d.price) <= relist_interval * d.price:
                    matched.add(d_idx[0])
                    kept_ids.add(id(lives[0]))
                continue
            if len(lives) > 1:
                lives.sort(key=_price)
            if len(d_idx) > 1:
                d_idx.sort(key=lambda k: everything[k].price)
            pairs = _match_class([everything[k] for k in d_idx], lives, relist_interval)
            for di, li in pairs:
                matched.add(d_idx[di])
                kept_ids.add(id(lives[li]))
    keep: list[Order] = []
    to_cancel: list[Order] = []
    for o in live:
        (keep if id(o) in kept_ids else to_cancel).append(o)
    to_create = tuple(d for k, d in enumerate(everything) if k not in matched)
    return Plan(to_cancel=tuple(to_cancel), to_create=to_create, keep=tuple(keep), reason=None)


def _blocks(c: Order, d: DesiredOrder) -> bool:
    """True if cancelling ``c`` must happen before creating ``d``."""
    if d.side == BUY:
        if c.side == SELL:
            return c.price <= d.price  # our sell would be hit by our new buy
    elif c.side == BUY:
        return c.price >= d.price  # our buy would be hit by our new sell
    if c.price == d.price and c.close_flag == d.close_flag:
        return True  # duplicate at one side/price/close_flag
    # A new close order needs avail_qty that the cancelled close order still locks.
    return c.close_flag == 1 and d.close_flag == 1


def _any_blocks(cancels: Sequence[Order], creates: Sequence[DesiredOrder]) -> bool:
    """``any(_blocks(c, d) for c in cancels for d in creates)`` in O(n + m)."""
    def prices(orders, side):  # type: ignore[no-untyped-def]
        return [o.price for o in orders if o.side == side]
    cancel_sells, create_buys = prices(cancels, SELL), prices(creates, BUY)
    if cancel_sells and create_buys and min(cancel_sells) <= max(create_buys):
        return True  # self-cross
    cancel_buys, create_sells = prices(cancels, BUY), prices(creates, SELL)
    if cancel_buys and create_sells and max(cancel_buys) >= min(create_sells):
        return True
    if {_key(c) for c in cancels} & {_key(d) for d in creates}:
        return True  # duplicate side/price/close_flag
    closing = {c.side for c in cancels if c.close_flag == 1}
    return any(d.close_flag == 1 and d.side in closing for d in creates)  # locked avail_qty


def ordered_steps(
    plan: Plan, best_bid: Decimal | None, best_ask: Decimal | None, max_open: int | None = None
) -> list[Step]:
    """Order the plan's calls: one ``("cancel", orders)`` step and the creates.

    All cancels form a single step (one ``cancel_batch`` when available). It
    goes FIRST when the plan is a rebuild or when any cancel must precede some
    create: a new buy at p while our cancelled sell sits at <= p (self-cross;
    symmetric for sells), a new order at the price/side/close_flag of a
    cancelled one (duplicate), or a new close order while a cancelled close
    order of the same side still locks ``avail_qty``. Otherwise the creates go
    first, so we are never without quotes, and the cancels follow.

    With ``max_open``, creates go before the cancels only as far as the open
    orders stay within it (innermost first); the others follow the cancels.

    Creates are sent innermost first: by relative distance from the touch
    (``best_bid`` for buys, ``best_ask`` for sells; the best desired price when
    the book side is unknown), buys before sells on ties, close before open.
    """
    creates = list(plan.to_create)
    ref_bid = best_bid if best_bid is not None else max(
        (d.price for d in creates if d.side == BUY), default=Decimal(1))
    ref_ask = best_ask if best_ask is not None else min(
        (d.price for d in creates if d.side == SELL), default=Decimal(1))

    def inner_key(d: DesiredOrder) -> tuple[Decimal, int, int]:
        if d.side == BUY:
            return ((ref_bid - d.price) / ref_bid, 0, -d.close_flag)
        return ((d.price - ref_ask) / ref_ask, 1, -d.close_flag)

    creates.sort(key=inner_key)
    create_steps: list[Step] = [(CREATE, d) for d in creates]
    if not plan.to_cancel:
        return create_steps
    cancel_step: Step = (CANCEL, list(plan.to_cancel))
    cancels_first = plan.reason is not None or _any_blocks(plan.to_cancel, creates)
    if cancels_first:
        return [cancel_step] + create_steps
    headroom = len(create_steps) if max_open is None else max(
        0, max_open - len(plan.keep) - len(plan.to_cancel))
    return create_steps[:headroom] + [cancel_step] + create_steps[headroom:]
