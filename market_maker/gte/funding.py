"""Funding payments inferred from the instrument table (pure functions, no I/O).

GTE pushes no funding row: a payment shows as the instrument's ``funding_rate_time``
moving on. Each leg held at that time paid (long) or received (short)
``qty * face / mark * rate``, booked as the exchange books it: the inverse mark to
1e-20, the amount to 1e-12 (nearest, ties up). The rate is the one announced before
the time moved on; the mark is that of the row that moves it on (the exchange pushes
the row as it books the funding, with the mark it used); the legs are those held
before the funding time: the exchange settles a funding before anything at or after
its time changes the positions, so our fills stamped at or after it are not in them.
"""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..models import BUY, LONG, SHORT, Fill

LEDGER = 10 ** 12  # funding is booked to 1e-12 of the settle currency
MARK_UNITS = 10 ** 20  # an inverse mark (face / mark) is taken to 1e-20 first

FundingState = tuple[int, Decimal, Decimal]  # (funding_rate_time, funding_rate, mark) of the instrument


def _nearest(n: int, d: int) -> int:
    """n / d to the nearest integer, ties upward (d > 0)."""
    return (2 * n + d) // (2 * d)


def funding_amount(qty: int, face: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """What ``qty`` contracts pay or receive at a funding: qty * face / mark * rate, its inverse mark taken
    to 1e-20 and the amount to 1e-12 (nearest, ties up), as the exchange books it (positive)."""
    fn, fd = face.as_integer_ratio()
    mn, md = mark.as_integer_ratio()
    rn, rd = rate.as_integer_ratio()
    inverse = _nearest(fn * md * MARK_UNITS, fd * mn)
    units = _nearest(qty * inverse * rn, (MARK_UNITS // LEDGER) * rd)
    return Decimal(units).scaleb(-12)


def legs_at(ms: int, long_qty: int, short_qty: int, executions: Iterable[Fill]) -> tuple[int, int]:
    """(long, short) contracts held at funding time ``ms``: the legs now (``long_qty``, ``short_qty``),
    less our fills (oldest first in ``executions``) stamped at or after it."""
    for fill in reversed(list(executions)):
        if fill.time < ms:
            break
        opens_long = (fill.side == BUY) != bool(fill.close_flag)  # a buy opens long, a sell closes it
        sign = -1 if fill.close_flag else 1
        if opens_long:
            long_qty -= sign * fill.qty
        else:
            short_qty -= sign * fill.qty
    return long_qty, short_qty


def payments(before: FundingState, after: FundingState, long_qty: int, short_qty: int,
             executions: Iterable[Fill], face: Decimal) -> list[dict[str, Any]]:
    """The ``funding`` records of the move from ``before`` to ``after`` (none when the time did not move
    on or the rate was 0): amount (received +, paid -), rate, ts_ex_ms (the funding time), side, qty."""
    at, rate, _ = before
    mark = after[2]
    if after[0] <= at or not rate or mark <= 0:
        return []
    out = []
    for side, qty in zip((LONG, SHORT), legs_at(at, long_qty, short_qty, executions)):
        if qty:
            amount = funding_amount(qty, face, mark, rate)
            out.append(dict(amount=-amount if side == LONG else amount, rate=rate, ts_ex_ms=at, side=side, qty=qty))
    return out
