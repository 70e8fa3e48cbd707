"""Markouts: how the mid moved after each fill, signed from our side (pure functions).

The markout of a fill at horizon h is s * (mid(t + h) - mid(t)), s = +1 for a buy and -1
for a sell, where mid(t) is the mid the fill was measured against (the latest mid at or
before it) and mid(t + h) the latest mid at or before t + h. Negative means adverse
selection: we bought and the price fell. A fill whose t + h lies after the last mid of
the run has no markout at that horizon. In basis points: markout / mid(t) * 10 000.
Statistics use floats; ``move`` gives the exact decimal move of one fill.
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
    """For each horizon (ms): the index of the later mid of each fill (-1: none), and the known
    markouts in price units and in bps (floats, in fill order)."""
    sides: List[int]
    base: List[int]                        # index of the mid each fill was measured against
    later: Dict[int, List[int]]
    price: Dict[int, List[float]]
    bps: Dict[int, List[float]]
    mid_text: Sequence[str]

    def move(self, horizon: int, i: int) -> Optional[Decimal]:
        """The exact markout of fill ``i`` (price units), None when unknown."""
        j = self.later[horizon][i]
        if j < 0:
            return None
        return self.sides[i] * (Decimal(self.mid_text[j]) - Decimal(self.mid_text[self.base[i]]))

    def mean(self, horizon: int) -> Optional[float]:
        values = self.price[horizon]
        return sum(values) / len(values) if values else None

    def mean_bps(self, horizon: int) -> Optional[float]:
        values = self.bps[horizon]
        return sum(values) / len(values) if values else None

    def count(self, horizon: int) -> int:
        return len(self.bps[horizon])


def markouts(fills: Sequence[Fill], fill_mid: Sequence[int], mid_ts: Sequence[int], mid: Sequence[float],
             mid_text: Sequence[str], horizons: Sequence[int] = HORIZONS_MS) -> Markouts:
    """The markouts of ``fills``, each measured against the mid of index ``fill_mid[i]`` of the series
    (``mid_ts``, ``mid`` as floats, ``mid_text`` exact)."""
    later: Dict[int, List[int]] = {h: [] for h in horizons}
    price: Dict[int, List[float]] = {h: [] for h in horizons}
    bps: Dict[int, List[float]] = {h: [] for h in horizons}
    last_ts = mid_ts[-1] if mid_ts else None
    sides = [f.side for f in fills]
    for f, k in zip(fills, fill_mid):
        for h in horizons:
            t = f.ts_ms + h
            if last_ts is None or t > last_ts:
                later[h].append(-1)
                continue
            m0 = mid[k]
            j = max(bisect_right(mid_ts, t) - 1, k)
            later[h].append(j)
            move = f.side * (mid[j] - m0)
            price[h].append(move)
            bps[h].append(move / m0 * 1e4)
    return Markouts(sides=sides, base=list(fill_mid), later=later, price=price, bps=bps, mid_text=mid_text)
