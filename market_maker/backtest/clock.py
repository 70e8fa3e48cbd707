"""Simulated time for a backtest: one clock and one queue of things that happen at a moment.

``SimClock`` has the three methods of ``market_maker.clock.Clock``; its ``sleep`` does not
wait: it runs everything scheduled up to the end of the sleep (market steps, deliveries of
market data and order echoes to the bot) and moves the clock there. Time is kept in integer
microseconds since the start of the run, so no rounding drifts; ``time()`` adds a fixed
epoch (the run's simulated start), so the same run gives the same timestamps.

Nothing here waits, starts a thread or reads the wall clock.
"""
from __future__ import annotations

import heapq
import math
import itertools
from typing import Callable, List, Optional, Tuple

US = 1_000_000
# the simulated start of every run (2026-01-01 00:00:00 UTC): timestamps are the same run after run
DEFAULT_START_MS = 1_767_225_600_000


def to_us(seconds: float) -> int:
    """A duration in whole microseconds, rounded up: any wait longer than 0 moves the clock (a rate
    limiter asking for 1e-7 s more must not wait 0 s again and again)."""
    return math.ceil(seconds * US) if seconds > 0 else 0


class SimClock:
    """A discrete-event clock: ``at`` schedules a call, ``sleep``/``run_until`` let time pass."""

    def __init__(self, start_ms: int = DEFAULT_START_MS):
        self.start_ms = start_ms
        self._start_s = start_ms / 1000
        self.now_us = 0
        self._queue: List[Tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"SimClock(at {self.now_us / US:.6f}s)"

    # -- the Clock protocol
    def time(self) -> float:
        return self._start_s + self.now_us / US

    def monotonic(self) -> float:
        return self.now_us / US

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.run_until(self.now_us + to_us(seconds))

    # -- the event queue
    def now_ms(self) -> int:
        """Exchange time: integer milliseconds since the epoch."""
        return self.start_ms + self.now_us // 1000

    def us_of_ms(self, exchange_ms: int) -> int:
        """An exchange time as this clock's microseconds."""
        return (exchange_ms - self.start_ms) * 1000

    def at(self, when_us: int, fn: Callable[[], None]) -> None:
        """Call ``fn`` at ``when_us`` (not before now); calls due at one moment run in the order scheduled."""
        heapq.heappush(self._queue, (max(when_us, self.now_us), next(self._seq), fn))

    def next_at(self) -> Optional[int]:
        return self._queue[0][0] if self._queue else None

    def run_until(self, until_us: int, stop: Optional[Callable[[], bool]] = None) -> bool:
        """Run what is due up to ``until_us``, then stand there. With ``stop``: return True as soon as
        it holds after a call (the clock stays at that call's moment)."""
        queue, pop = self._queue, heapq.heappop
        while queue and queue[0][0] <= until_us:
            when, _, fn = pop(queue)
            if when > self.now_us:
                self.now_us = when
            fn()
            if stop is not None and stop():
                return True
        if until_us > self.now_us:
            self.now_us = until_us
        return False
