"""Client-side rate limits per endpoint (gte-api.md §2 endpoint table).

A sliding-window log per endpoint: at most ``count`` calls in any window of
``period + margin`` seconds. That allows a burst of ``count`` at once but never
more than the documented number in ANY window of ``period`` seconds, which is
how the exchange (and our simulator) measures it; ``margin`` absorbs jitter
between our send time and the server's receive time.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Dict, Mapping, Optional


@dataclass(frozen=True)
class Limit:
    """At most ``count`` calls per ``period`` seconds."""

    count: int
    period: float = 1.0


# Keys are the path after ``/v1/api/``.
GTE_LIMITS: Mapping[str, Limit] = {
    "account/fund/query": Limit(10),
    "account/pc/query": Limit(10),
    "account/transfer": Limit(1),
    "pc/asset/query": Limit(5),
    "pc/contract/query": Limit(5),
    "pc/instrument/query": Limit(20),
    "pc/candle/query": Limit(2),
    "pc/order/book/query": Limit(10),
    "pc/setting/query": Limit(2),
    "pc/order/create": Limit(20),
    "pc/order/cancel": Limit(20),
    "pc/order/cancel_batch": Limit(1, 10.0),
    "pc/order/query": Limit(10),
    "pc/trade/query": Limit(10),
    "pc/leverage/change": Limit(5),
    "pc/margin/increase": Limit(5),
    "pc/margin/auto": Limit(2),
}

DEFAULT_MARGIN = 0.05
# Endpoints allowing this many calls per window keep one in reserve: a server whose window is aligned
# differently, or that counted a request whose answer we never saw, still never sees the limit exceeded.
# It also spreads a burst of 100 creates (20/s) over more than 5 s.
HEADROOM_FROM = 5


class RateLimiter:
    """Per-endpoint sliding windows with an injectable clock and sleep; thread-safe."""

    def __init__(self, limits: Optional[Mapping[str, Limit]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 margin: float = DEFAULT_MARGIN) -> None:
        self._limits: Dict[str, Limit] = dict(GTE_LIMITS if limits is None else limits)
        for name, limit in self._limits.items():
            if limit.count < 1 or limit.period <= 0:
                raise ValueError(f"invalid limit for {name!r}: {limit}")
        if margin < 0:
            raise ValueError("margin must be >= 0")
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._calls: Dict[str, Deque[float]] = {}
        self._lock = threading.Lock()
        self._keys: Dict[str, str] = {}  # endpoint as given -> key(); the limits never change

    def __repr__(self) -> str:
        return f"RateLimiter({len(self._limits)} endpoints, margin={self._margin})"

    def key(self, endpoint: str) -> str:
        """Normalise ``/v1/api/pc/order/create``, ``pc/order/create``, ``order/create``, ``cancel_batch``."""
        try:
            return self._keys[endpoint]
        except KeyError:
            pass
        key = self._find_key(endpoint)
        if len(self._keys) < 256:  # bounded, whatever callers pass (e.g. query strings)
            self._keys[endpoint] = key
        return key

    def _find_key(self, endpoint: str) -> str:
        name = endpoint.split("?", 1)[0]
        if name.startswith("/v1/api/"):
            name = name[len("/v1/api/"):]
        name = name.strip("/")
        if name in self._limits:
            return name
        if "pc/" + name in self._limits:
            return "pc/" + name
        matches = [known for known in self._limits if known.endswith("/" + name)]
        if len(matches) != 1:
            raise KeyError(f"no rate limit known for endpoint {endpoint!r}")
        return matches[0]

    def limit(self, endpoint: str) -> Limit:
        """The limit that applies to ``endpoint``."""
        return self._limits[self.key(endpoint)]

    def _wait(self, name: str, now: float) -> float:
        limit = self._limits[name]
        window = limit.period + self._margin
        calls = self._calls.setdefault(name, deque())
        while calls and now - calls[0] >= window:
            calls.popleft()
        usable = limit.count - 1 if limit.count >= HEADROOM_FROM else limit.count
        if len(calls) < usable:
            return 0.0
        return max(calls[len(calls) - usable] + window - now, 0.0)

    def time_until_available(self, endpoint: str) -> float:
        """Seconds until ``acquire(endpoint)`` would return without waiting (0 = now)."""
        name = self.key(endpoint)
        with self._lock:
            return self._wait(name, self._clock())

    def try_acquire(self, endpoint: str) -> bool:
        """Take a slot if one is free now; never waits."""
        name = self.key(endpoint)
        with self._lock:
            now = self._clock()
            if self._wait(name, now) > 0:
                return False
            self._calls[name].append(now)
            return True

    def acquire(self, endpoint: str) -> float:
        """Block until a slot is free and take it; returns the seconds waited."""
        name = self.key(endpoint)
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                delay = self._wait(name, now)
                if delay <= 0:
                    self._calls[name].append(now)
                    return waited
            self._sleep(delay)
            waited += delay
