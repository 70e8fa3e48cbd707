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

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import List, Tuple, Union

from .models import ACTIVE_STATUSES, BUY, CANCEL_PENDING, SELL, DesiredOrder, Order

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
_ACTIVE_STATUSES = ACTIVE_STATUSES  # open and no cancel pending: what converge plans with

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


_ZERO = Decimal(0)



def _index_side(
    side: str, orders: tuple[DesiredOrder, ...], offset: int, index: dict[tuple[str, Decimal, int], int]
) -> tuple[set[Decimal], dict[tuple[int, int], Members]]:
    """Check one side's desired orders and add them to ``index``: ``(side, price, close_flag)`` -> position
    in ``buys + sells`` (the side's first at ``offset``). Returns the side's prices and its orders' positions
    by (close_flag, qty) class (see ``Members``).

    A plain ``DesiredOrder`` is read as the tuple it is (its named fields cost a descriptor call each).
    """
    prices: set[Decimal] = set()
    classes: dict[tuple[int, int], Members] = {}
    k = offset
    for d in orders:
        if type(d) is DesiredOrder:
            d_side, price, qty, close_flag = d
        else:
            d_side, price, qty, close_flag = d.side, d.price, d.qty, d.close_flag
        if d_side != side:
            raise ValueError(f"desired {side} list holds a {d_side} order: {d}")
        if qty <= 0 or not price > _ZERO or close_flag not in (0, 1):
            raise ValueError(f"invalid desired order: {d}")
        index[(side, price, close_flag)] = k
        prices.add(price)
        _add_member(classes, (close_flag, qty), k)
        k += 1
    return prices, classes


#: The members of a class, in order: one index (the usual case: one level per size) or a list of several.
Members = Union[int, List[int]]


def _add_member(classes: dict[tuple[int, int], Members], cls: tuple[int, int], i: int) -> None:
    members = classes.get(cls)
    if members is None:
        classes[cls] = i
    elif type(members) is int:
        classes[cls] = [members, i]
    else:
        members.append(i)


def _as_list(members: Members) -> list[int]:
    return [members] if type(members) is int else members


def _unmatched(classes: dict[tuple[int, int], Members], matched: set[int]) -> dict[tuple[int, int], Members]:
    """``classes`` without the desired orders already matched."""
    out: dict[tuple[int, int], Members] = {}
    for cls, members in classes.items():
        for k in _as_list(members):
            if k not in matched:
                _add_member(out, cls, k)
    return out


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
    desired_at: dict[tuple[str, Decimal, int], int] = {}
    buy_prices, buy_classes = _index_side(BUY, buys, 0, desired_at)
    sell_prices, sell_classes = _index_side(SELL, sells, len(buys), desired_at)
    if len(desired_at) != len(buys) + len(sells):
        raise ValueError("desired orders repeat a (side, price, close_flag)")
    max_buy = max(buy_prices) if buys else None
    min_sell = min(sell_prices) if sells else None
    if max_buy is not None and min_sell is not None and max_buy >= min_sell:
        raise ValueError("desired buys cross desired sells")
    everything = buys + sells
    active = _ACTIVE_STATUSES
    live = tuple([o for o in live_orders if o.status in active])
    if len(live) > max_open:
        return Plan(to_cancel=live, to_create=everything, keep=(),
                    reason=f"{len(live)} live orders > max_open {max_open}")
    # With relist_interval 0 only an order at its desired price may be kept, and step 1 finds
    # every such order: step 2 could not keep anything.
    near = relist_interval > _ZERO
    # One pass over the live orders: the safety check, then
    # 1. Keep exact matches. A live order on a desired price of its side may only be kept
    #    for that very order, so this is always optimal. Live keys are unique (checked as the
    #    pass goes), as are desired ones, so a desired order is found by (side, price,
    #    close_flag) and then needs the same remaining quantity.
    # 2. The other live orders that may still be kept near a desired price are grouped by side
    #    and (close_flag, remaining qty) class for :func:`_match_near`. Kept away from its desired
    #    price, an order must not sit on the price of another desired order of its side nor
    #    cross the other side: a buy stays below every desired sell, a sell above every desired buy.
    seen: set[tuple[str, Decimal, int]] = set()
    matched: set[int] = set()  # indices into ``everything``
    kept = [False] * len(live)  # by index into ``live``
    near_buys: dict[tuple[int, int], Members] = {}  # class -> indices into ``live``
    near_sells: dict[tuple[int, int], Members] = {}
    for i, o in enumerate(live):
        side, price, close_flag = key = o.side, o.price, o.close_flag
        count = len(seen)
        seen.add(key)
        if len(seen) == count:
            return Plan(to_cancel=live, to_create=everything, keep=(),
                        reason=f"duplicate live orders at {side} {price} close_flag={close_flag}")
        remaining = o.qty - o.filled_qty
        k = desired_at.get(key)
        if k is not None and everything[k].qty == remaining:
            matched.add(k)
            kept[i] = True
            continue
        if not near:
            continue
        if side == BUY:
            if price in buy_prices or (min_sell is not None and price >= min_sell):
                continue
            classes = near_buys
        elif side == SELL:
            if price in sell_prices or (max_buy is not None and price <= max_buy):
                continue
            classes = near_sells
        else:
            continue
        _add_member(classes, (close_flag, remaining), i)
    if matched:
        buy_classes, sell_classes = _unmatched(buy_classes, matched), _unmatched(sell_classes, matched)
    if near_buys:
        _match_near(near_buys, buy_classes, everything, live, kept, matched, relist_interval)
    if near_sells:
        _match_near(near_sells, sell_classes, everything, live, kept, matched, relist_interval)
    if len(matched) == len(everything):
        to_create: tuple[DesiredOrder, ...] = ()
    else:
        to_create = tuple(d for k, d in enumerate(everything) if k not in matched) if matched else everything
    if all(kept):
        return Plan(to_cancel=(), to_create=to_create, keep=live, reason=None)
    keep: list[Order] = []
    to_cancel: list[Order] = []
    for o, is_kept in zip(live, kept):
        (keep if is_kept else to_cancel).append(o)
    return Plan(to_cancel=tuple(to_cancel), to_create=to_create, keep=tuple(keep), reason=None)


def _match_near(
    rest: dict[tuple[int, int], Members],
    d_classes: dict[tuple[int, int], Members],
    everything: Sequence[DesiredOrder],
    live: Sequence[Order],
    kept: list[bool],
    matched: set[int],
    relist_interval: Decimal,
) -> None:
    """Step 2 of :func:`plan_converge` for one side: keep live orders near their desired price.

    ``rest`` holds the side's candidates (indices into ``live``) by (close_flag, remaining qty)
    class, ``d_classes`` its unmatched desired orders (indices into ``everything``) by (close_flag,
    qty). The candidates form an interval structure per class: an order-preserving DP is optimal.
    Updates ``kept`` and ``matched`` in place.
    """
    for cls, l_members in rest.items():
        d_members = d_classes.get(cls)
        if d_members is None:
            continue
        if type(l_members) is int and type(d_members) is int:  # the usual class (one level per size)
            d_price = everything[d_members].price
            if abs(live[l_members].price - d_price) <= relist_interval * d_price:
                matched.add(d_members)
                kept[l_members] = True
            continue
        l_idx, d_idx = _as_list(l_members), _as_list(d_members)
        if len(l_idx) > 1:
            l_idx.sort(key=lambda i: live[i].price)
        if len(d_idx) > 1:
            d_idx.sort(key=lambda k: everything[k].price)
        pairs = _match_class([everything[k] for k in d_idx], [live[i] for i in l_idx], relist_interval)
        for di, li in pairs:
            matched.add(d_idx[di])
            kept[l_idx[li]] = True


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
    cancel_buys, cancel_sells = _prices_by_side(cancels)
    create_buys, create_sells = _prices_by_side(creates)
    if cancel_sells and create_buys and min(cancel_sells) <= max(create_buys):
        return True  # self-cross
    if cancel_buys and create_sells and max(cancel_buys) >= min(create_sells):
        return True
    cancel_keys = {(c.side, c.price, c.close_flag) for c in cancels}
    if not cancel_keys.isdisjoint([(d.side, d.price, d.close_flag) for d in creates]):
        return True  # duplicate side/price/close_flag
    closing = {c.side for c in cancels if c.close_flag == 1}
    return bool(closing) and any(d.close_flag == 1 and d.side in closing for d in creates)  # locked avail_qty


def _prices_by_side(orders: Sequence[Order | DesiredOrder]) -> tuple[list[Decimal], list[Decimal]]:
    """(buy prices, sell prices) of ``orders``; orders of any other side are left out."""
    buys: list[Decimal] = []
    sells: list[Decimal] = []
    for o in orders:
        side = o.side
        if side == BUY:
            buys.append(o.price)
        elif side == SELL:
            sells.append(o.price)
    return buys, sells


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

    keys = [((ref_bid - d.price) / ref_bid, 0, -d.close_flag) if d.side == BUY
            else ((d.price - ref_ask) / ref_ask, 1, -d.close_flag) for d in creates]
    creates = [creates[i] for i in sorted(range(len(creates)), key=keys.__getitem__)]  # stable, like sort()
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
