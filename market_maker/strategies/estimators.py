"""Online estimates the inventory-aware strategies quote from: the mid's volatility and the fill intensity.

Pure: no clock, no socket. Every update takes its timestamp (seconds, any origin, never
decreasing) and its numbers as floats: these are statistics, not money.

* :class:`EwmaVolatility` -- sigma of the mid in price units per sqrt(second). Each update adds
  the squared move since the last sample divided by the time it took (an unbiased estimate of
  sigma^2 for a Brownian mid, whatever the sampling times), weighted exponentially with a time
  constant of ``window_s``. Until ``window_s`` of samples have been seen it answers the fall-back.
* :class:`IntensityEstimator` -- A and k of the fill intensity ``lambda(delta) = A exp(-k delta)``
  of an order resting ``delta`` away from the mid. A public trade at distance ``d`` from the mid
  would have filled an order resting anywhere within ``d``, so the rate of trades reaching at least
  ``delta`` estimates lambda(delta). Over the trades of the last ``window_s`` seconds, per side,
  the log of that rate at bucket edges ``0, b, 2b...`` is fitted by least squares to
  ``ln A - k delta``.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Deque, Iterable, List, Optional, Sequence, Tuple

__all__ = ["EwmaVolatility", "IntensityEstimator", "IntensityFit", "fit_intensity"]


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class EwmaVolatility:
    """EWMA estimate of sigma per sqrt(second) from timestamped mids (fed log mids, a relative sigma)."""

    def __init__(self, window_s: float, fallback: float, low: float, high: float):
        if not window_s > 0:
            raise ValueError("window_s must be > 0")
        if not 0 < low <= high:
            raise ValueError("bounds must satisfy 0 < low <= high")
        self.window_s = window_s
        self.fallback = _clamp(fallback, low, high)
        self.low, self.high = low, high
        self._variance: Optional[float] = None  # sigma^2, price^2 per second
        self._last: Optional[Tuple[float, float]] = None  # (time, mid)
        self._first_time: Optional[float] = None

    def update(self, time_s: float, mid: float) -> None:
        """Add the mid (or its log, for a relative sigma) observed at ``time_s``; a sample no later
        than the last one is ignored."""
        if not (math.isfinite(mid) and math.isfinite(time_s)):
            return  # a missing mid teaches nothing
        if self._last is None:
            self._last, self._first_time = (time_s, mid), time_s
            return
        last_time, last_mid = self._last
        dt = time_s - last_time
        if dt <= 0:
            return
        sample = (mid - last_mid) ** 2 / dt
        weight = 1.0 - math.exp(-dt / self.window_s)
        self._variance = sample if self._variance is None else self._variance + weight * (sample - self._variance)
        self._last = (time_s, mid)

    @property
    def warm(self) -> bool:
        """True once the samples span at least one window."""
        return (self._variance is not None and self._last is not None and self._first_time is not None
                and self._last[0] - self._first_time >= self.window_s)

    @property
    def raw(self) -> Optional[float]:
        """The unbounded estimate (None before the second sample)."""
        return None if self._variance is None else math.sqrt(self._variance)

    @property
    def sigma(self) -> float:
        """The estimate within its bounds once warm, else the fall-back."""
        if not self.warm:
            return self.fallback
        return _clamp(math.sqrt(self._variance), self.low, self.high)  # type: ignore[arg-type]


@dataclass(frozen=True)
class IntensityFit:
    A: float  # fills per second at distance 0
    k: float  # per price unit
    points: int  # buckets the fit used


def fit_intensity(distances: Sequence[float], span_s: float, bucket: float, buckets: int) -> Optional[IntensityFit]:
    """Least-squares fit of ``ln(N(>= delta) / span_s) = ln A - k delta`` at ``delta = 0, bucket, ...``.

    ``distances`` are the distances (>= 0) of trades from the mid seen over ``span_s`` seconds.
    Buckets no trade reached are left out (log of zero); None when fewer than 3 points remain
    or the fitted k is not positive (trades not thinning out with distance: nothing to fit).
    """
    if span_s <= 0 or bucket <= 0 or not distances:
        return None
    ordered = sorted(distances)
    xs: List[float] = []
    ys: List[float] = []
    n = len(ordered)
    index = 0
    for i in range(buckets):
        edge = i * bucket
        while index < n and ordered[index] < edge - 1e-12 * bucket:
            index += 1
        reached = n - index
        if reached == 0:
            break
        xs.append(edge)
        ys.append(math.log(reached / span_s))
    if len(xs) < 3:
        return None
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
    slope = sxy / sxx
    if not slope < 0:
        return None
    return IntensityFit(A=math.exp(mean_y - slope * mean_x), k=-slope, points=len(xs))


class IntensityEstimator:
    """A and k of ``A exp(-k delta)`` from public trades' distances to the mid, over a sliding window.

    ``update`` takes trades as ``(time_s, price, side)``, side the taker's ("buy" hits the asks,
    "sell" the bids); distances are measured from the mid given with them (the mid our quotes
    stood around when the trades happened). Both sides are pooled (the models use one A and k
    per side), so the counts are divided by twice the window: A is the rate on one side.
    """

    def __init__(self, window_s: float, bucket: float, buckets: int, fallback: Tuple[float, float],
                 a_bounds: Tuple[float, float], k_bounds: Tuple[float, float], min_trades: int = 20):
        if not window_s > 0 or not bucket > 0 or buckets < 3:
            raise ValueError("window_s and bucket must be > 0, buckets >= 3")
        self.window_s, self.bucket, self.buckets, self.min_trades = window_s, bucket, buckets, min_trades
        self.a_bounds, self.k_bounds = a_bounds, k_bounds
        self.fallback = (_clamp(fallback[0], *a_bounds), _clamp(fallback[1], *k_bounds))
        self._trades: Deque[Tuple[float, float]] = deque()  # (time, distance)
        self._first_time: Optional[float] = None
        self._now: Optional[float] = None
        self._fit: Optional[IntensityFit] = None
        self._dirty = False

    def update(self, now_s: float, mid: float, trades: Iterable[Tuple[float, float, str]] = ()) -> None:
        if self._first_time is None:
            self._first_time = now_s
        self._now = now_s if self._now is None else max(self._now, now_s)
        if math.isfinite(mid) and mid > 0:
            for time_s, price, side in trades:
                distance = price - mid if side == "buy" else mid - price
                if math.isfinite(distance):
                    self._trades.append((time_s, max(distance, 0.0)))
                    self._dirty = True
        cutoff = self._now - self.window_s
        while self._trades and self._trades[0][0] < cutoff:
            self._trades.popleft()
            self._dirty = True

    @property
    def warm(self) -> bool:
        return (self._first_time is not None and self._now is not None
                and self._now - self._first_time >= self.window_s and len(self._trades) >= self.min_trades)

    def fit(self) -> Optional[IntensityFit]:
        """The raw fit over the window (None before warm-up or when the data do not fit)."""
        if not self.warm:
            return None
        if self._dirty:
            self._fit = fit_intensity([d for _, d in self._trades], 2 * self.window_s, self.bucket, self.buckets)
            self._dirty = False
        return self._fit

    @property
    def values(self) -> Tuple[float, float]:
        """(A, k) within their bounds, or the fall-back while there is no usable fit."""
        fit = self.fit()
        if fit is None:
            return self.fallback
        return _clamp(fit.A, *self.a_bounds), _clamp(fit.k, *self.k_bounds)
