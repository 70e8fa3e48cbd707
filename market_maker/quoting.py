"""Pure quoting math: from a book, our orders and our positions to a ladder.

Everything here is a pure function of its arguments (no I/O, no clock, no
logging). Prices are ``Decimal`` values on the ``tick_size`` grid, quantities
are ``int`` contracts. Level prices are snapped to the grid exactly (``levels``).

Pipeline used by :func:`build_ladder` (each step is public and reusable):

1. :func:`start_positions` -- where the innermost quotes start.
2. :func:`level_prices` / :func:`level_sizes` / :func:`make_levels` (module
   ``levels``) -- the geometric ladder, buys rounded down and sells rounded up
   to the grid, duplicate prices dropped.
3. :func:`apply_position_limits` -- no buys at/above the max position, no
   sells at/below the min position.
4. :func:`clamp_post_only` -- client-side post-only (GTE has no such flag);
   :func:`post_only_conflict` re-checks one order against a fresher book as it is sent.
5. :func:`split_close_open` with :func:`close_capacity` (module ``closing``) --
   two-way positions: the innermost quantity closes the opposite leg
   (``close_flag=1``), the rest opens.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Context, Decimal
from functools import cached_property
from typing import Any

from .closing import close_capacity, split_close_open
from .levels import _side_levels, level_prices, level_sizes, make_levels, snap_price
from .models import BUY, SELL, Book, DesiredOrder, Order, Positions

__all__ = ["Ladder", "NoMarket", "QuoteParams", "apply_position_limits", "build_ladder", "clamp_post_only",
           "close_capacity", "level_prices", "level_sizes", "make_levels", "post_only_conflict", "snap_price",
           "split_close_open", "start_positions"]


# The start positions' arithmetic: 60 digits, the default context's rounding and traps. Made once
# (entering ``localcontext()`` costs more than the arithmetic done in it).
_PREC_60 = Context(prec=60)


class NoMarket(Exception):
    """The book has no bid or no ask (or is crossed): nothing to quote around.

    The caller should pause quoting (and usually cancel) until the book is sane.
    """


def _dec(value: Any) -> Decimal:
    """Exact Decimal from a setting (ints, strings, Decimals; floats via ``str``)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


@dataclass(frozen=True)
class QuoteParams:
    """Settings of the grid strategy, already converted to exact types."""

    order_pairs: int
    order_start_size: int
    order_step_size: int
    random_order_size: bool
    min_order_size: int
    max_order_size: int
    interval: Decimal
    min_spread: Decimal
    maintain_spreads: bool
    post_only: bool
    check_position_limits: bool
    min_position: int
    max_position: int
    tick_size: Decimal

    def __post_init__(self) -> None:
        for name in ("interval", "min_spread", "tick_size"):
            if not isinstance(getattr(self, name), Decimal):
                raise TypeError(f"QuoteParams.{name} must be a Decimal")
        if self.tick_size <= 0:
            raise ValueError("tick_size must be > 0")
        if self.order_pairs < 0:
            raise ValueError("order_pairs must be >= 0")
        if self.interval < 0 or self.min_spread < 0:
            raise ValueError("interval and min_spread must be >= 0")
        if self.min_spread >= 2:
            raise ValueError("min_spread must be < 2 (buy start would be <= 0)")
        if self.random_order_size and self.min_order_size > self.max_order_size:
            raise ValueError("min_order_size must be <= max_order_size")
        if self.check_position_limits and self.min_position > self.max_position:
            raise ValueError("min_position must be <= max_position")

    @cached_property
    def fixed_sizes(self) -> tuple[int, ...]:
        """Level sizes without ``random_order_size``: start, start + step, ..."""
        return tuple(self.order_start_size + i * self.order_step_size for i in range(self.order_pairs))

    @cached_property
    def level_factor(self) -> Decimal:
        """``1 + interval``: one level's price over the next inner one's."""
        return 1 + self.interval

    @cached_property
    def spread_factors(self) -> tuple[Decimal, Decimal, Decimal]:
        """``(1 + min_spread, 1 - min_spread / 2, 1 + min_spread / 2)``, computed as
        :func:`start_positions` multiplies by them (60 digits)."""
        ms, prec_60 = self.min_spread, _PREC_60
        half = prec_60.divide(ms, 2)
        return prec_60.add(1, ms), prec_60.subtract(1, half), prec_60.add(1, half)

    @classmethod
    def from_settings(cls, settings: Any, tick_size: Decimal | str | int) -> QuoteParams:
        """Build from a settings object with upper-case attributes (or a mapping).

        Reads ORDER_PAIRS, ORDER_START_SIZE, ORDER_STEP_SIZE, RANDOM_ORDER_SIZE,
        MIN_ORDER_SIZE, MAX_ORDER_SIZE, INTERVAL, MIN_SPREAD, MAINTAIN_SPREADS,
        POST_ONLY, CHECK_POSITION_LIMITS, MIN_POSITION, MAX_POSITION. Numbers
        given as floats are converted through ``str`` so 0.005 stays 0.005.
        """

        def get(name: str) -> Any:
            if isinstance(settings, dict):
                return settings[name]
            return getattr(settings, name)

        return cls(
            order_pairs=int(get("ORDER_PAIRS")),
            order_start_size=int(get("ORDER_START_SIZE")),
            order_step_size=int(get("ORDER_STEP_SIZE")),
            random_order_size=bool(get("RANDOM_ORDER_SIZE")),
            min_order_size=int(get("MIN_ORDER_SIZE")),
            max_order_size=int(get("MAX_ORDER_SIZE")),
            interval=_dec(get("INTERVAL")),
            min_spread=_dec(get("MIN_SPREAD")),
            maintain_spreads=bool(get("MAINTAIN_SPREADS")),
            post_only=bool(get("POST_ONLY")),
            check_position_limits=bool(get("CHECK_POSITION_LIMITS")),
            min_position=int(get("MIN_POSITION")),
            max_position=int(get("MAX_POSITION")),
            tick_size=_dec(tick_size),
        )


@dataclass(frozen=True)
class Ladder:
    """The desired quotes: buys best (highest) first, sells best (lowest) first.

    ``start_buy``/``start_sell`` are the (unsnapped) start positions the levels
    were computed from, for logging.
    """

    buys: tuple[DesiredOrder, ...]
    sells: tuple[DesiredOrder, ...]
    start_buy: Decimal
    start_sell: Decimal

    @property
    def orders(self) -> tuple[DesiredOrder, ...]:
        """All desired orders, buys then sells."""
        return self.buys + self.sells


def start_positions(
    book: Book, own_orders: Sequence[Order], params: QuoteParams
) -> tuple[Decimal, Decimal]:
    """Return ``(start_buy, start_sell)``, the innermost quoting positions.

    One tick inside the touch; with ``maintain_spreads``, at the touch when the
    best price on that side is one of our own open orders. If the two starts
    are closer than ``min_spread`` (relative), both are widened by half of it.
    If that is still not enough for the snapped starts not to cross each other
    (e.g. ``min_spread`` 0 on a one-tick market), they fall back to not
    improving on the touch. Raises :class:`NoMarket` on a missing side or a
    crossed book.
    """
    bid, ask = book.best_bid, book.best_ask
    if bid is None or ask is None:
        missing = "bid" if bid is None else "ask"
        raise NoMarket(f"order book has no {missing}")
    if bid >= ask:
        raise NoMarket(f"order book is crossed (bid {bid} >= ask {ask})")
    tick = params.tick_size
    start_buy = bid + tick
    start_sell = ask - tick
    if params.maintain_spreads and not {o.price for o in own_orders}.isdisjoint((bid, ask)):
        at_bid = at_ask = False   # one of our open orders is the best bid / the best ask
        for o in own_orders:
            price = o.price
            if price == bid:
                at_bid = at_bid or (o.side == BUY and o.is_open)
            elif price == ask:
                at_ask = at_ask or (o.side == SELL and o.is_open)
        if at_bid:
            start_buy = bid
        if at_ask:
            start_sell = ask
    spread, buy_widening, sell_widening = params.spread_factors
    multiply = _PREC_60.multiply
    if multiply(start_buy, spread) > start_sell:
        start_buy = multiply(start_buy, buy_widening)
        start_sell = multiply(start_sell, sell_widening)
    # Snapped buy <= start_buy and snapped sell >= start_sell, so they can only cross when the starts do.
    if start_buy >= start_sell and snap_price(start_buy, tick, BUY) >= snap_price(start_sell, tick, SELL):
        start_buy = min(start_buy, bid)
        start_sell = max(start_sell, ask)
    return start_buy, start_sell


def apply_position_limits(
    buys: Sequence[DesiredOrder],
    sells: Sequence[DesiredOrder],
    positions: Positions,
    params: QuoteParams,
) -> tuple[tuple[DesiredOrder, ...], tuple[DesiredOrder, ...]]:
    """Drop all buys when net >= max_position, all sells when net <= min_position.

    Only with ``check_position_limits``; net is long - short contracts.
    """
    buys, sells = tuple(buys), tuple(sells)
    if not params.check_position_limits:
        return buys, sells
    net = positions.net
    if net >= params.max_position:
        buys = ()
    if net <= params.min_position:
        sells = ()
    return buys, sells


def _best_first(orders: Sequence[DesiredOrder]) -> tuple[DesiredOrder, ...]:
    """Stable sort: buys highest first, then sells lowest first."""
    buys = sorted((o for o in orders if o.side == BUY), key=lambda o: -o.price)
    sells = sorted((o for o in orders if o.side == SELL), key=lambda o: o.price)
    return tuple(buys + sells)


def _uncrossed_best_first(orders: Sequence[DesiredOrder], bid: Decimal | None, ask: Decimal | None) -> bool:
    """True when ``orders`` are one side, strictly best first and none of them crosses the book."""
    if not orders:
        return True
    side = orders[0].side
    if any(o.side != side for o in orders):
        return False
    prices = [o.price for o in orders]
    if side == BUY:
        return (ask is None or prices[0] < ask) and all(a > b for a, b in zip(prices, prices[1:]))
    if side == SELL:
        return (bid is None or prices[0] > bid) and all(a < b for a, b in zip(prices, prices[1:]))
    return False


def clamp_post_only(
    orders: Sequence[DesiredOrder], book: Book, tick_size: Decimal
) -> tuple[DesiredOrder, ...]:
    """Client-side post-only: never a buy at/above the best ask nor a sell at/below the best bid.

    Such an order is moved one tick behind the opposite best (buy to
    ``best_ask - tick``, sell to ``best_bid + tick``); it is dropped if that
    price is already used by another order of the same side (or is <= 0).
    Result is sorted best first per side (buys, then sells).
    """
    bid, ask = book.best_bid, book.best_ask
    if _uncrossed_best_first(orders, bid, ask):
        return tuple(orders)  # the common case: nothing to move and already in order

    def crosses(o: DesiredOrder) -> bool:
        if o.side == BUY:
            return ask is not None and o.price >= ask
        return bid is not None and o.price <= bid

    taken = {(o.side, o.price) for o in orders if not crosses(o)}
    out = []
    for o in orders:
        if not crosses(o):
            out.append(o)
            continue
        new_price = ask - tick_size if o.side == BUY else bid + tick_size  # type: ignore[operator]
        if new_price <= 0 or (o.side, new_price) in taken:
            continue
        taken.add((o.side, new_price))
        out.append(DesiredOrder(o.side, new_price, o.qty, o.close_flag))
    return _best_first(out)


def post_only_conflict(order: DesiredOrder, book: Book) -> str | None:
    """Why ``order`` cannot go out as a post-only order against ``book`` now, or None.

    A buy needs a best ask above its price, a sell a best bid below its price: with the
    opposite side empty there is nothing to check against, so that is a conflict too.
    """
    if order.side == BUY:
        ask = book.best_ask
        if ask is None:
            return "the book has no ask"
        return f"it would take the best ask {ask}" if order.price >= ask else None
    bid = book.best_bid
    if bid is None:
        return "the book has no bid"
    return f"it would take the best bid {bid}" if order.price <= bid else None


def build_ladder(
    book: Book,
    own_orders: Sequence[Order],
    positions: Positions,
    params: QuoteParams,
    rng: random.Random | None = None,
) -> Ladder:
    """Compute the full desired ladder (see the module docstring for the steps).

    With ``random_order_size``, sizes are drawn from ``rng``: first all buy
    levels, then all sell levels (always ``2 * order_pairs`` draws, whatever is
    dropped later, so a seeded rng gives reproducible ladders).
    Raises :class:`NoMarket` when the book has no bid/ask or is crossed.
    """
    start_buy, start_sell = start_positions(book, own_orders, params)
    buy_sizes = level_sizes(params, rng)
    sell_sizes = level_sizes(params, rng)
    buys = _side_levels(BUY, start_buy, buy_sizes, params)
    sells = _side_levels(SELL, start_sell, sell_sizes, params)
    buys, sells = apply_position_limits(buys, sells, positions, params)
    if params.post_only:
        # Each side's levels are one side's, strictly best first (make_levels drops a repeated
        # price and the level prices are monotonic), and the book has both sides (start_positions
        # checked): clamp_post_only leaves them as they are unless the innermost crosses.
        if buys and not buys[0].price < book.best_ask:
            buys = clamp_post_only(buys, book, params.tick_size)
        if sells and not sells[0].price > book.best_bid:
            sells = clamp_post_only(sells, book, params.tick_size)
    # A split level adds an order; the side then drops its outermost one, so a side never
    # holds more than order_pairs orders (and we never more than 2 * order_pairs).
    buys = _split_side(buys, close_capacity(BUY, positions, own_orders), params.order_pairs)
    sells = _split_side(sells, close_capacity(SELL, positions, own_orders), params.order_pairs)
    return Ladder(buys=buys, sells=sells, start_buy=start_buy, start_sell=start_sell)


_SPLITS_MEMO_SIZE = 4096  # entries kept (then the memo starts afresh)
_SPLITS: dict[tuple[int, int, int], tuple[tuple[DesiredOrder, ...], tuple[DesiredOrder, ...]]] = {}


def _split_side(levels: tuple[DesiredOrder, ...], capacity: int, order_pairs: int) -> tuple[DesiredOrder, ...]:
    """``split_close_open(levels, capacity)[:order_pairs]``, remembered for recent inputs.

    A side's levels usually come from the ``_side_levels`` memo, the same tuple object while the
    side's start repeats, and the close capacity changes only with our position or close orders.
    The tuple and its orders are immutable: a result stored for the very same object (kept alive
    by the memo, so its id cannot be reused) is the result.
    """
    key = (id(levels), capacity, order_pairs)
    known = _SPLITS.get(key)
    if known is not None and known[0] is levels:
        return known[1]
    split = split_close_open(levels, capacity)[:order_pairs]
    if type(levels) is tuple:
        if len(_SPLITS) >= _SPLITS_MEMO_SIZE:
            _SPLITS.clear()
        _SPLITS[key] = (levels, split)
    return split
