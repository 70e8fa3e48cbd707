"""Sliding-window rate limits: at most ``limit`` calls in any ``window_s`` seconds."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable


class RateLimiter:
    """Per-bucket sliding-window log; a refused call does not consume a slot."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000) -> None:
        self._clock = clock
        self._calls: dict[Hashable, deque[float]] = {}
        self._max_buckets = max_buckets

    def allow(self, bucket: Hashable, limit: int, window_s: float) -> bool:
        """Record a call in ``bucket`` if under the limit; False when over it."""
        now = self._clock()
        calls = self._calls.get(bucket)
        if calls is None:
            if len(self._calls) >= self._max_buckets:
                self._prune(now, window_s)
            calls = self._calls[bucket] = deque()
        while calls and now - calls[0] >= window_s:
            calls.popleft()
        if len(calls) >= limit:
            return False
        calls.append(now)
        return True

    def _prune(self, now: float, window_s: float) -> None:
        stale = [b for b, c in self._calls.items() if not c or now - c[-1] >= max(window_s, 10)]
        for bucket in stale:
            del self._calls[bucket]

    def reset(self) -> None:
        """Forget every recorded call."""
        self._calls.clear()
