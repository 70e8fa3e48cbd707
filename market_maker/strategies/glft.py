"""Gueant, Lehalle & Fernandez-Tapia (2013): optimal quotes with bounded inventory and no terminal
time (their asymptotic approximation), the right model for a perpetual contract.

Run it with STRATEGY = "market_maker.strategies.glft:GLFT". The bound is INVENTORY_LIMIT
contracts: the side that would take the net position past it stops (see :mod:`.ladder`).
"""
from __future__ import annotations

import math

from .base import InventoryStrategy
from .optimal import OptimalQuote, check_positive

__all__ = ["GLFT", "glft_quote", "glft_terms"]


def glft_terms(gamma: float, sigma: float, A: float, k: float) -> tuple:
    """``(c1, c2)``: the half spread at q = 0 is ``c1 + c2 / 2`` and each lot of inventory moves both
    quotes by ``c2`` (Gueant, Lehalle & Fernandez-Tapia 2013, asymptotic approximation)."""
    check_positive(gamma=gamma, sigma=sigma, A=A, k=k)
    c1 = math.log1p(gamma / k) / gamma
    # (1 + gamma/k) ** (1 + k/gamma) through logs: k/gamma can be large
    power = math.exp((1.0 + k / gamma) * math.log1p(gamma / k))
    c2 = math.sqrt(sigma * sigma * gamma / (2.0 * k * A) * power)
    return c1, c2


def glft_quote(mid: float, q: float, gamma: float, sigma: float, A: float, k: float) -> OptimalQuote:
    """GLFT asymptotic quotes for no terminal time:
    bid distance ``c1 + (2q + 1)/2 c2``, ask distance ``c1 - (2q - 1)/2 c2`` from the mid."""
    check_positive(mid=mid)
    if not math.isfinite(q):
        raise ValueError(f"q must be finite, not {q!r}")
    c1, c2 = glft_terms(gamma, sigma, A, k)
    bid = mid - (c1 + (2.0 * q + 1.0) / 2.0 * c2)
    ask = mid + (c1 - (2.0 * q - 1.0) / 2.0 * c2)
    return OptimalQuote(mid - q * c2, bid, ask)


class GLFT(InventoryStrategy):
    """Quotes the GLFT asymptotic bid and ask around the fair value (GLFT_GAMMA, INVENTORY_LIMIT)."""

    model = "GLFT"

    def optimal_quote(self, fair: float, q: float, sigma: float, A: float, k: float, now: float) -> OptimalQuote:
        return glft_quote(fair, q, float(self.settings.GLFT_GAMMA), sigma, A, k)
