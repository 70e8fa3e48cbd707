"""The backtest's latency model: how long a message takes between the bot and the exchange.

One latency applies to every leg: an order request reaches the exchange ``L`` after the
bot sends it, its answer reaches the bot another ``L`` later, and every push (market data,
order echoes, executions, positions) reaches the bot ``L`` after it happened. ``--latency-ms X``
makes ``L`` the constant X milliseconds; ``X:Y`` draws each leg independently, uniformly in
[X, Y] milliseconds (to the microsecond), from a random stream seeded by the run's seed, so
a run is repeatable. Pushes keep their order (one stream, as over one WebSocket): a push
never overtakes an earlier one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

MAX_LATENCY_MS = 60_000


class LatencyError(ValueError):
    """A latency text that is not X or X:Y milliseconds."""


@dataclass(frozen=True)
class LatencySpec:
    low_ms: float = 0.0
    high_ms: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "LatencySpec":
        parts = str(text).split(":")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) not in (1, 2) or any(not 0 <= v <= MAX_LATENCY_MS for v in values) \
                or values[0] > values[-1]:
            raise LatencyError(f"--latency-ms {text!r}: expected X or X:Y milliseconds with "
                               f"0 <= X <= Y <= {MAX_LATENCY_MS}")
        return cls(values[0], values[-1])

    def __str__(self) -> str:
        return f"{self.low_ms:g}" if self.low_ms == self.high_ms else f"{self.low_ms:g}:{self.high_ms:g}"


class Latency:
    """Draws one leg's latency in microseconds."""

    def __init__(self, spec: LatencySpec, seed: int):
        self.spec = spec
        self._low = int(round(spec.low_ms * 1000))
        self._high = int(round(spec.high_ms * 1000))
        self.constant: Optional[int] = self._low if self._low == self._high else None
        self._rng = random.Random(f"latency-{seed}")

    @property
    def zero(self) -> bool:
        return self.constant == 0

    def draw_us(self) -> int:
        if self.constant is not None:
            return self.constant
        return self._rng.randint(self._low, self._high)
