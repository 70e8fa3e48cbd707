"""Fault injection decisions (pure: a seeded RNG, a clock and counters; the server applies them)."""
from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from collections.abc import Callable

DROP, DUP, SEND = "drop", "dup", "send"
KINDS = ("ws_disconnect", "drop", "dup", "latency", "http_5xx", "lost_response", "rate_limit_burst",
         "late_create", "late_create_expired")
_SCALE = 1_000_000


def _rate(value: Any) -> Decimal:
    rate = value if isinstance(value, Decimal) else Decimal(str(value))
    if not Decimal(0) <= rate <= Decimal(1):
        raise ValueError(f"fault rate must be within [0, 1]: {value!r}")
    return rate


def _ms_range(name: str, value: Any) -> tuple[int, int]:
    try:
        low, high = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (min, max) milliseconds: {value!r}") from None
    if low < 0 or high < low:
        raise ValueError(f"{name} must be (min, max) with 0 <= min <= max: {value!r}")
    return low, high


@dataclass(frozen=True)
class FaultConfig:
    """Every fault is off by default. Rates are fractions in [0, 1]."""
    ws_disconnect_every_s: Decimal = Decimal(0)
    drop_rate: Decimal = Decimal(0)
    dup_rate: Decimal = Decimal(0)
    latency_ms: tuple[int, int] = (0, 0)
    http_5xx_rate: Decimal = Decimal(0)
    lost_response_rate: Decimal = Decimal(0)
    rate_limit_every_s: Decimal = Decimal(0)
    rate_limit_duration_s: Decimal = Decimal(0)
    late_create_rate: Decimal = Decimal(0)
    late_create_ms: tuple[int, int] = (1000, 4000)

    def __post_init__(self) -> None:
        for name in ("drop_rate", "dup_rate", "http_5xx_rate", "lost_response_rate", "late_create_rate"):
            object.__setattr__(self, name, _rate(getattr(self, name)))
        for name in ("ws_disconnect_every_s", "rate_limit_every_s", "rate_limit_duration_s"):
            value = Decimal(str(getattr(self, name)))
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
            object.__setattr__(self, name, value)
        for name in ("latency_ms", "late_create_ms"):
            object.__setattr__(self, name, _ms_range(name, getattr(self, name)))


class FaultInjector:
    """Decides which faults to inject and counts every injected one by kind."""

    def __init__(self, config: FaultConfig | None = None, seed: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rng = random.Random(seed)
        self._clock = clock
        self.config = config or FaultConfig()
        self._epoch = self._last_disconnect = clock()
        self.counters: Counter[str] = Counter({k: 0 for k in KINDS})

    def set(self, **changes: Any) -> FaultConfig:
        """Replace some fault settings (FaultConfig field names); periodic faults restart their clock."""
        self.config = dataclasses.replace(self.config, **changes)
        if {"ws_disconnect_every_s", "rate_limit_every_s", "rate_limit_duration_s"} & changes.keys():
            self._epoch = self._last_disconnect = self._clock()
        return self.config

    def count(self, kind: str, n: int = 1) -> None:
        """Record ``n`` injected faults of ``kind``."""
        self.counters[kind] += n

    def snapshot(self) -> dict[str, int]:
        """Counters by kind (a copy)."""
        return dict(self.counters)

    def _hit(self, rate: Decimal) -> bool:
        return rate > 0 and self._rng.randrange(_SCALE) < rate * _SCALE

    def latency_s(self) -> Decimal:
        """Delay to add to a REST call (0 when off)."""
        low, high = self.config.latency_ms
        if high <= 0:
            return Decimal(0)
        self.count("latency")
        return Decimal(self._rng.randint(low, high)) / 1000

    def http_5xx(self) -> tuple[int, bool] | None:
        """(status, with_envelope) if this REST call must fail with a 5xx, else None."""
        if not self._hit(self.config.http_5xx_rate):
            return None
        self.count("http_5xx")
        return self._rng.choice((502, 503)), self._rng.random() < 0.5

    def late_create_s(self) -> Decimal:
        """How long to hold an admitted order/create before executing it (0 = at once).

        The server counts the outcome (``late_create`` executed, ``late_create_expired``
        dropped because its api-expires passed meanwhile)."""
        if not self._hit(self.config.late_create_rate):
            return Decimal(0)
        low, high = self.config.late_create_ms
        return Decimal(self._rng.randint(low, high)) / 1000

    def lose_response(self) -> bool:
        """True if an executed order/create must get no HTTP response."""
        if not self._hit(self.config.lost_response_rate):
            return False
        self.count("lost_response")
        return True

    def push_fate(self) -> str:
        """DROP, DUP or SEND for one pushed WebSocket message."""
        if self._hit(self.config.drop_rate):
            self.count("drop")
            return DROP
        if self._hit(self.config.dup_rate):
            self.count("dup")
            return DUP
        return SEND

    def rate_limit_burst(self) -> bool:
        """True while a forced -10053 burst is on (windows start every N s, last D s)."""
        every, duration = self.config.rate_limit_every_s, self.config.rate_limit_duration_s
        if every <= 0 or duration <= 0:
            return False
        elapsed = Decimal(str(self._clock() - self._epoch))
        if elapsed < every or elapsed % every >= duration:
            return False
        self.count("rate_limit_burst")
        return True

    def ws_disconnect_due(self) -> bool:
        """True once every ``ws_disconnect_every_s`` (the caller closes all sockets and counts them)."""
        every = self.config.ws_disconnect_every_s
        now = self._clock()
        if every <= 0 or Decimal(str(now - self._last_disconnect)) < every:
            return False
        self._last_disconnect = now
        return True
