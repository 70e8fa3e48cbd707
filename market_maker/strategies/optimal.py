"""What the inventory models' quote functions return, and the units they share (model math, not money).

Units (see docs/strategies.md): prices and distances in the quote currency (USD for an inverse
BTC_USD contract), ``sigma`` in USD per sqrt(second), times in seconds, ``A`` in fills per second
per side, ``k`` per USD, ``gamma`` per USD, and the inventory ``q`` in lots: the net position in
contracts divided by the lot (ORDER_START_SIZE contracts), so one fill of the innermost order
moves q by one, as a fill moves it by one in the models.

The prices returned are not on the tick grid: :mod:`.ladder` snaps them, on the safe side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OptimalQuote", "check_positive"]


@dataclass(frozen=True)
class OptimalQuote:
    reservation: float  # the price the quotes are centred on
    bid: float
    ask: float

    @property
    def spread(self) -> float:
        return self.ask - self.bid

    def skew(self, mid: float) -> float:
        """How far inventory moved the centre from the mid (negative when long)."""
        return self.reservation - mid


def check_positive(**values: float) -> None:
    """Refuse a parameter that is zero, negative or not a number: never quote on a missing value."""
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, not {value!r}")
