"""Markouts: how the mid moved after each fill, signed from our side (pure functions).

The markout of a fill at horizon h is s * (mid(t + h) - mid(t)), s = +1 for a buy and -1
for a sell, where mid(t) is the mid the fill was measured against (the latest mid at or
before it) and mid(t + h) the latest mid at or before t + h. Negative means adverse
selection: we bought and the price fell. A fill whose t + h lies after the last mid of
the run has no markout at that horizon. In basis points: markout / mid(t) * 10 000.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from decimal import Decimal
from typing import Dict, List, Optional, Sequence

from .model import Fill

HORIZONS_MS = (1_000, 10_000, 60_000)


@dataclass
class Markouts:
    """Per horizon (ms): each fill's markout in price units (exact, None when unknown) and in bps."""
    price: Dict[int, List[Optional[Decimal]]]
    bps: Dict[int, List[float]]              # the known ones only, in fill order

    def mean(self, horizon: int) -> Optional[float]:
        known = [float(v) for v in self.price[horizon] if v is not None]
        return sum(known) / len(known) if known else None

    def mean_bps(self, horizon: int) -> Optional[float]:
        values = self.bps[horizon]
        return sum(values) / len(values) if values else None

    def count(self, horizon: int) -> int:
        return len(self.bps[horizon])


def markouts(fills: Sequence[Fill], fill_mid: Sequence[Optional[str]], mid_ts: Sequence[int],
             mid_text: Sequence[str], horizons: Sequence[int] = HORIZONS_MS) -> Markouts:
    """The markouts of ``fills`` (each measured against ``fill_mid``) over the mid series."""
    price: Dict[int, List[Optional[Decimal]]] = {h: [] for h in horizons}
    bps: Dict[int, List[float]] = {h: [] for h in horizons}
    last_ts = mid_ts[-1] if mid_ts else None
    parsed: Dict[str, Decimal] = {}

    def dec(text: str) -> Decimal:
        v = parsed.get(text)
        if v is None:
            v = parsed[text] = Decimal(text)
        return v

    for f, m0_text in zip(fills, fill_mid):
        for h in horizons:
            t = f.ts_ms + h
            if m0_text is None or last_ts is None or t > last_ts:
                price[h].append(None)
                continue
            m0 = dec(m0_text)
            move = f.side * (dec(mid_text[max(bisect_right(mid_ts, t) - 1, 0)]) - m0)
            price[h].append(move)
            bps[h].append(float(move) / float(m0) * 1e4)
    return Markouts(price=price, bps=bps)
