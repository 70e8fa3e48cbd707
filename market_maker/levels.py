"""The geometric ladder's prices and sizes: one side's levels from a start position (pure).

``level_prices`` snaps ``start x (1 + interval)^k`` to the tick grid exactly (buys down, sells
up), ``level_sizes`` gives the levels' sizes, ``make_levels`` pairs them into orders; the
quoting pipeline (``quoting.build_ladder``) takes one side's levels through ``_side_levels``,
which remembers them for recent starts. Prices are ``Decimal`` values on the grid, computed
with integers (or ``fractions.Fraction`` for :func:`snap_price`) so that snapping is exact.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from decimal import (MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact,
                     InvalidOperation, localcontext)
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

from .models import BUY, DesiredOrder

if TYPE_CHECKING:
    from .quoting import QuoteParams

__all__ = ["level_prices", "level_sizes", "make_levels", "snap_price"]

_ZERO = Decimal(0)
_TUPLE_NEW = tuple.__new__
# Products that are exact whatever their size (a grid price is ticks x tick): no digit is ever
# rounded, so the result is the one any precision large enough gives.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[Inexact, InvalidOperation])


def snap_price(price: Decimal | Fraction, tick_size: Decimal, side: str) -> Decimal:
    """Snap ``price`` to the tick grid: buys round down, sells round up (exact)."""
    steps = Fraction(price) / Fraction(tick_size)
    n = math.floor(steps) if side == BUY else math.ceil(steps)
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(n) * tick_size


def _exact_precision(start: Decimal, factor: Decimal, levels: int) -> int:
    """Digits that hold ``start * factor ** levels`` exactly, doubled so a quotient's rounding
    error stays far below the distance between any off-grid value and the grid."""
    digits = len(start.as_tuple().digits) + len(factor.as_tuple().digits) * (levels + 1)
    return 2 * digits + 30


@lru_cache(maxsize=64)
def _level_steps(factor: Decimal, tick: Decimal, offset: int, levels: int,
                 side: str) -> tuple[tuple[Decimal, int, int], ...]:
    """Per level: the exact step (``factor ** k * tick``, divided into a buy's start, or ``factor ** k``,
    multiplied into a sell's) and integers ``a, b`` with ``price / tick == start * a / b``.

    Computed once per setting rather than on every requote; the Inexact trap guarantees
    that the cached values are exact.
    """
    with localcontext() as ctx:
        ctx.prec = len(factor.as_tuple().digits) * (offset + levels + 1) + len(tick.as_tuple().digits) + 10
        ctx.traps[Inexact] = True
        power = factor ** offset
        tick_num, tick_den = tick.as_integer_ratio()
        steps = []
        for _ in range(levels):
            if side == BUY:
                step = power * tick
                step_num, step_den = step.as_integer_ratio()
                steps.append((step, step_den, step_num))
            else:
                power_num, power_den = power.as_integer_ratio()
                steps.append((power, power_num * tick_den, power_den * tick_num))
            power *= factor
    return tuple(steps)


_GRID_PRICES: dict[str, dict[int, Decimal]] = {}  # str(tick) -> ticks -> ticks * tick (0.5 and 0.50 apart: their products print apart)


def _grid_price(ticks: int, tick: Decimal) -> Decimal:
    """``ticks * tick`` (exact at any precision level_prices uses), one shared object per price.

    Requotes mostly revisit the same prices; reusing the Decimal also reuses its cached hash,
    which costs ~1 us to compute and is needed by every set and dict the price goes through.
    """
    key = str(tick)
    prices = _GRID_PRICES.get(key)
    if prices is None or len(prices) > 8192:
        prices = _GRID_PRICES[key] = {}
    price = prices.get(ticks)
    if price is None:
        price = prices[ticks] = _EXACT.multiply(Decimal(ticks), tick)
    return price


def level_prices(start: Decimal, side: str, params: QuoteParams) -> tuple[Decimal, ...]:
    """Snapped prices of levels 1..order_pairs on one side (duplicates kept).

    ``price_i = start * (1 + interval) ** k``, ``k = -(i-1)`` / ``+(i-1)`` with
    ``maintain_spreads`` (first level at the start), else ``-i`` / ``+i``;
    buys rounded down, sells rounded up to the tick grid. Exact: the powers are
    computed without rounding and a buy's quotient is exact whenever the true
    price lies on the grid.
    """
    offset = 0 if params.maintain_spreads else 1
    factor = params.level_factor
    tick = params.tick_size
    steps = _level_steps(factor, tick, offset, params.order_pairs, side)
    buy = side == BUY
    # Integers only for a positive start: a non-positive one (never quoted) keeps Decimal's signed zeros.
    start_num, start_den = start.as_integer_ratio() if start.is_finite() and start > 0 else (0, 0)
    prices = []
    grid = _GRID_PRICES.get(str(tick)) or {}
    for step, a, b in steps:
        if start_den:
            # Off the grid (the usual case) the price is floor/ceil(start * a / b) ticks, found
            # exactly with integers: the same value a high-precision Decimal quotient snaps to.
            if buy:
                ticks, off_grid = divmod(start_num * a, start_den * b)
            else:
                ticks, off_grid = divmod(-start_num * a, start_den * b)
                ticks = -ticks
            if off_grid:
                prices.append(grid.get(ticks) or _grid_price(ticks, tick))
                continue
        # On the grid the Decimal quotient is exact and its exponent shapes the result's: keep it.
        with localcontext() as ctx:
            ctx.prec = _exact_precision(start, factor, params.order_pairs + offset)
            if buy:
                prices.append((start / step).to_integral_value(ROUND_FLOOR) * tick)
            else:
                prices.append((start * step / tick).to_integral_value(ROUND_CEILING) * tick)
    return tuple(prices)


def level_sizes(params: QuoteParams, rng: random.Random | None = None) -> tuple[int, ...]:
    """Sizes of levels 1..order_pairs on one side.

    ``order_start_size + (i-1) * order_step_size``, or with
    ``random_order_size`` one ``rng.randint(min_order_size, max_order_size)``
    per level (``rng`` is then required, which keeps this pure).
    """
    if params.random_order_size:
        if rng is None:
            raise ValueError("random_order_size needs an rng (random.Random)")
        return tuple(
            rng.randint(params.min_order_size, params.max_order_size)
            for _ in range(params.order_pairs)
        )
    return params.fixed_sizes


def make_levels(
    side: str, prices: Sequence[Decimal], sizes: Sequence[int]
) -> tuple[DesiredOrder, ...]:
    """Pair prices with sizes (level by level) into open orders of one side.

    A level whose price repeats an earlier level's is dropped (the first one
    wins), as is a level with a price <= 0 or a size <= 0.
    """
    seen: set = set()
    out = []
    for price, qty in zip(prices, sizes):
        if not price > _ZERO or qty <= 0 or price in seen:
            continue
        seen.add(price)
        out.append(_TUPLE_NEW(DesiredOrder, (side, price, int(qty), 0)))  # DesiredOrder(...) without its __new__
    return tuple(out)


_LEVELS_MEMO_SIZE = 2048  # (side, start, sizes) -> levels entries kept (then the memo starts afresh)
_LEVELS: dict[tuple[str, str, tuple[int, ...]], tuple[QuoteParams, tuple[DesiredOrder, ...]]] = {}


def _side_levels(side: str, start: Decimal, sizes: tuple[int, ...],
                 params: QuoteParams) -> tuple[DesiredOrder, ...]:
    """``make_levels(side, level_prices(start, side, params), sizes)``, remembered for recent
    inputs.

    A requote usually follows a move of one side of the book, and the touch keeps revisiting
    the same prices: the starts, and so the levels, repeat. The result is a pure function of
    the inputs compared here (``params`` by identity, ``start`` digit for digit, since its
    exponent can shape the prices), so a stored result is valid for as long as they match.
    """
    key = (side, str(start), sizes)  # the string shows every digit and the exponent, as as_tuple() would
    known = _LEVELS.get(key)
    if known is not None and known[0] is params:
        return known[1]
    levels = make_levels(side, level_prices(start, side, params), sizes)
    if len(_LEVELS) >= _LEVELS_MEMO_SIZE:
        _LEVELS.clear()
    _LEVELS[key] = (params, levels)
    return levels
