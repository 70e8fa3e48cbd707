"""Statistics of a run over time (pure functions; floats: these are statistics, not money)."""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Iterable, List, Optional, Sequence, Tuple

MINUTE_MS = 60_000
MINUTES_PER_YEAR = 365 * 24 * 60     # the market trades around the clock
QUOTES_GONE = ("pause", "kill_switch", "stop")   # events after which we quote nothing until the next requote


def quote_uptime(start: int, end: int, quotes: Sequence[Tuple[int, Optional[float], Optional[float]]],
                 events: Iterable[Tuple[int, str, str]]) -> Optional[float]:
    """Share of [start, end] with both sides quoted: from each requote (both best bid and best ask
    present) until the next requote, or until an event that takes our quotes away (pause, kill
    switch, stop). None for a run of no duration."""
    if end <= start:
        return None
    changes: List[Tuple[int, int, bool]] = [(ts, 1, bid is not None and ask is not None) for ts, bid, ask in quotes]
    changes += [(ts, 0, False) for ts, kind, _ in events if kind in QUOTES_GONE]
    changes.sort()
    quoted_ms = 0
    since: Optional[int] = None
    for ts, _, on in changes:
        ts = min(max(ts, start), end)
        if since is not None:
            quoted_ms += ts - since
        since = ts if on else None
    if since is not None:
        quoted_ms += end - since
    return quoted_ms / (end - start)


def net_position_path(start: int, n_start: int, fills: Sequence) -> Tuple[List[int], List[int]]:
    """(times, net position from each time on): the start, then after each fill."""
    times, nets = [start], [n_start]
    n = n_start
    for f in fills:
        n += f.side * f.qty
        times.append(max(f.ts_ms, start))
        nets.append(n)
    return times, nets


def inventory_stats(times: Sequence[int], nets: Sequence[int], end: int) -> Tuple[int, Optional[float]]:
    """(max |net|, time-average |net| over [times[0], end]) of a step path."""
    peak = max(abs(n) for n in nets)
    span = end - times[0]
    if span <= 0:
        return peak, None
    area = 0
    for i, n in enumerate(nets):
        until = times[i + 1] if i + 1 < len(times) else end
        area += abs(n) * (min(until, end) - min(times[i], end))
    return peak, area / span


def max_drawdown(equity: Iterable[float]) -> float:
    """Largest fall of ``equity`` from a previous peak (the curve starts at 0)."""
    peak = 0.0
    worst = 0.0
    for e in equity:
        if e > peak:
            peak = e
        elif peak - e > worst:
            worst = peak - e
    return worst


def per_minute(ts: Sequence[int], values: Sequence[float], start: int, end: int) -> List[float]:
    """``values`` (a step series, 0 before its first point) sampled at start + whole minutes."""
    out = []
    t = start
    while t <= end:
        i = bisect_right(ts, t)
        out.append(values[i - 1] if i else 0.0)
        t += MINUTE_MS
    return out


def sharpe(samples: Sequence[float], periods_per_year: int = MINUTES_PER_YEAR) -> Optional[float]:
    """Annualised Sharpe ratio of the changes of ``samples`` (no risk-free rate): mean change /
    standard deviation (n - 1) x sqrt(periods per year). None with fewer than 2 changes or none
    that varies."""
    changes = [b - a for a, b in zip(samples, samples[1:])]
    if len(changes) < 2:
        return None
    mean = sum(changes) / len(changes)
    var = sum((c - mean) ** 2 for c in changes) / (len(changes) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(periods_per_year)


def margin_usage(margins: Sequence[Tuple[int, float, float]], end: int) -> Tuple[Optional[float], Optional[float]]:
    """(max, time-average) of order margin + position margin, each margins row holding until the
    next one (or the end)."""
    if not margins:
        return None, None
    peak = max(m[2] for m in margins)
    span = end - margins[0][0]
    if span <= 0:
        return peak, peak
    area = 0.0
    for i, (ts, _, used) in enumerate(margins):
        until = margins[i + 1][0] if i + 1 < len(margins) else end
        area += used * (min(until, end) - min(ts, end))
    return peak, area / span
