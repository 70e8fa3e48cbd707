"""What is worth telling the owner, decided from facts read once a second (no clock, no I/O here).

``Watch.observe(facts, now)`` returns the new messages: the WebSocket down longer than
NOTIFY_WS_DOWN_SECONDS and back up, a resync storm, a burst of refused orders, a position
limit reached, the drawdown crossing a fraction of MAX_DRAWDOWN, the daily PnL summary.
Each condition is told once when it starts (and, where it has one, once when it ends).
"""
from __future__ import annotations

import datetime as dt
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Deque, List, Optional, Sequence, Tuple

WINDOW_S = 60.0  # bursts and storms are counted over the last minute
REARM = Decimal("0.9")  # a drawdown fraction told is told again once the drawdown fell below 90 % of it


@dataclass(frozen=True)
class Facts:
    connected: bool
    resyncs: int  # since the start (a counter)
    rejected: int  # refused orders since the start (a counter)
    net: int  # net position, contracts
    drawdown: Optional[Decimal]  # start equity minus equity
    currency: str
    realised: Optional[Decimal] = None
    unrealised: Optional[Decimal] = None
    fees: Optional[Decimal] = None
    equity: Optional[Decimal] = None
    fills: int = 0
    contracts: int = 0


@dataclass(frozen=True)
class Limits:
    ws_down_s: float
    resync_storm: int
    reject_burst: int
    min_position: int
    max_position: int
    check_position: bool
    max_drawdown: Decimal
    fractions: Sequence[Decimal]
    daily_hour: int


def _fmt(value: Optional[Decimal]) -> str:
    return "-" if value is None else format(value, "f")


class _Burst:
    """Whether a counter grew by ``threshold`` or more within the last ``WINDOW_S``."""

    def __init__(self) -> None:
        self.samples: Deque[Tuple[float, int]] = deque()
        self.on = False

    def update(self, now: float, count: int, threshold: int) -> Optional[int]:
        """The growth over the window when a burst starts, else None."""
        self.samples.append((now, count))
        while self.samples and now - self.samples[0][0] > WINDOW_S:
            self.samples.popleft()
        grown = count - self.samples[0][1]
        if grown >= threshold and not self.on:
            self.on = True
            return grown
        if grown < threshold:
            self.on = False
        return None


class Watch:
    def __init__(self, limits: Limits, wall_start: float):
        self.limits = limits
        self.down_since: Optional[float] = None
        self.told_down = False
        self.resyncs = _Burst()
        self.rejects = _Burst()
        self.at_limit: Optional[str] = None
        self.told_fractions: set = set()
        self.next_daily = next_daily(wall_start, limits.daily_hour)

    def observe(self, facts: Facts, now: float, wall: float) -> List[str]:
        """``now``: monotonic seconds (windows); ``wall``: Unix time (the daily summary)."""
        limits, out = self.limits, []
        if not facts.connected:
            self.down_since = now if self.down_since is None else self.down_since
            if not self.told_down and now - self.down_since >= limits.ws_down_s:
                out.append(f"WebSocket down for {now - self.down_since:.0f}s: not quoting, orders cancelled")
                self.told_down = True
        else:
            if self.told_down:
                out.append(f"WebSocket back up after {now - self.down_since:.0f}s")
            self.down_since, self.told_down = None, False
        grown = self.resyncs.update(now, facts.resyncs, limits.resync_storm)
        if grown is not None:
            out.append(f"Resync storm: {grown} WebSocket table resyncs within a minute")
        grown = self.rejects.update(now, facts.rejected, limits.reject_burst)
        if grown is not None:
            out.append(f"Burst of refused orders: {grown} within a minute")
        out += self._position(facts)
        out += self._drawdown(facts)
        if wall >= self.next_daily:
            out.append(daily_summary(facts))
            self.next_daily = next_daily(wall, self.limits.daily_hour)
        return out

    def _position(self, facts: Facts) -> List[str]:
        limits = self.limits
        if not limits.check_position:
            return []
        side = ("MAX_POSITION" if facts.net >= limits.max_position else
                "MIN_POSITION" if facts.net <= limits.min_position else None)
        told, self.at_limit = self.at_limit, side
        if side is None or side == told:
            return []
        limit = limits.max_position if side == "MAX_POSITION" else limits.min_position
        return [f"Position limit reached: net {facts.net:+d} contracts ({side} {limit}); quoting one side only"]

    def _drawdown(self, facts: Facts) -> List[str]:
        limit = self.limits.max_drawdown
        if not limit or facts.drawdown is None:
            return []
        share = facts.drawdown / limit
        self.told_fractions = {f for f in self.told_fractions if share >= f * REARM}
        crossed = [f for f in self.limits.fractions if share >= f and f not in self.told_fractions]
        if not crossed:
            return []
        self.told_fractions.update(crossed)
        top = format((max(crossed) * 100).normalize(), "f")
        return [f"Drawdown {_fmt(facts.drawdown)} {facts.currency} crossed {top} % of MAX_DRAWDOWN "
                f"({_fmt(limit)} {facts.currency}); the kill switch stops the bot at 100 %"]


def next_daily(wall: float, hour: int) -> float:
    """The first ``hour``:00 UTC strictly after ``wall``."""
    now = dt.datetime.fromtimestamp(wall, dt.timezone.utc)
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if at <= now:
        at += dt.timedelta(days=1)
    return at.timestamp()


def daily_summary(facts: Facts) -> str:
    c = facts.currency
    return (f"Daily summary: realised PnL {_fmt(facts.realised)} {c}, unrealised {_fmt(facts.unrealised)} {c}, "
            f"fees {_fmt(facts.fees)} {c}, equity {_fmt(facts.equity)} {c}; {facts.fills} fills, "
            f"{facts.contracts} contracts traded this run; net position {facts.net:+d}")
