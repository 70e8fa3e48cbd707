"""Where the bot reads time: one injectable clock, so a live run and a backtest share one code path.

``SystemClock`` is the wall clock of a live run. A backtest passes a simulated clock
with the same three methods, whose ``sleep`` advances simulated time instead of waiting.
"""
from __future__ import annotations

import time as _time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall time, seconds since the epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for intervals and deadlines)."""

    def sleep(self, seconds: float) -> None:
        """Let ``seconds`` pass."""


class SystemClock:
    """The real clock."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(_time.sleep)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def ms(clock: Clock) -> int:
    """``clock``'s wall time in integer milliseconds."""
    return int(clock.time() * 1000)
