"""Avellaneda & Stoikov (2008): inventory skews the quotes' centre, volatility widens them.

Run it with STRATEGY = "market_maker.strategies.avellaneda:AvellanedaStoikov".
The horizon T is AS_HORIZON_S seconds from the start; it restarts when it ends.
"""
from __future__ import annotations

import math

from .base import InventoryStrategy
from .optimal import OptimalQuote, check_positive

__all__ = ["AvellanedaStoikov", "as_quote", "time_left"]


def as_quote(mid: float, q: float, gamma: float, sigma: float, k: float, time_left: float) -> OptimalQuote:
    """Avellaneda & Stoikov (2008): reservation price ``r = s - q gamma sigma^2 (T - t)`` and total
    spread ``gamma sigma^2 (T - t) + (2 / gamma) ln(1 + gamma / k)`` centred on it."""
    check_positive(mid=mid, gamma=gamma, sigma=sigma, k=k)
    if not (math.isfinite(time_left) and time_left >= 0) or not math.isfinite(q):
        raise ValueError(f"time_left must be >= 0 and q finite, not {time_left!r}, {q!r}")
    risk = gamma * sigma * sigma * time_left
    reservation = mid - q * risk
    half = (risk + (2.0 / gamma) * math.log1p(gamma / k)) / 2.0
    return OptimalQuote(reservation, reservation - half, reservation + half)




def time_left(now: float, start: float, horizon: float) -> float:
    """T - t for a horizon that restarts every ``horizon`` seconds from ``start``."""
    check_positive(horizon=horizon)
    return horizon - (max(0.0, now - start) % horizon)


class AvellanedaStoikov(InventoryStrategy):
    """Quotes around the reservation price ``r = s - q gamma sigma^2 (T - t)`` (AS_GAMMA, AS_HORIZON_S)."""

    model = "Avellaneda-Stoikov"

    def optimal_quote(self, fair: float, q: float, sigma: float, A: float, k: float, now: float) -> OptimalQuote:
        left = time_left(now, self.start_time, self.settings.AS_HORIZON_S)
        return as_quote(fair, q, float(self.settings.AS_GAMMA), sigma, k, left)
