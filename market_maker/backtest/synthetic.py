"""``--market synthetic``: the simulator's own seeded market flow, stepped in simulated time.

The same ``sim.flow.MarketFlow`` the embedded simulator runs (a random walk with volatility
bursts, liquidity providers' ladders, Poisson takers), built from the run's settings exactly
as the embedded simulator builds it (``SimConfig.from_settings(...).flow_config()``: every
``SIM_*`` flow setting, ``SIM_SPEED`` included), and stepped every ``tick_interval_ms``
(50 ms) of simulated time, as the simulator's server steps it. With several simulated
instruments (``SIM_SYMBOLS``) the flow of ``SYMBOL`` runs, seeded as the simulator seeds it. ``SIM_FLOW = False`` gives a
market with no other trader (the book stays empty, the bot waits).
"""
from __future__ import annotations

from typing import Optional

from ..settings import Settings
from ..sim.config import SimConfig
from ..sim.exchange import Exchange
from ..sim.flow import MarketFlow
from ..sim.server import FLOW_SEED_STEP
from .market import MarketError, register


def sim_config(settings: Settings, seed: Optional[int] = None) -> SimConfig:
    """The embedded simulator's configuration for these settings (as ``cli.run_bot`` builds it)."""
    overrides = dict(symbol=settings.SYMBOL, asset=settings.SETTLECURRENCY,
                     funding_interval_s=int(settings.SIM_FUNDING_INTERVAL))
    if seed is not None:
        overrides["seed"] = seed
    return SimConfig.from_settings(settings, **overrides)


class SyntheticMarket:
    """The simulator's ``MarketFlow`` as a ``MarketModel``."""

    def __init__(self, settings: Settings, seed: Optional[int] = None):
        try:
            self.config = sim_config(settings, seed)
            self.instruments = self.config.instruments()
        except (ValueError, OSError) as exc:
            raise MarketError(f"synthetic market: {exc}") from None
        self.seed = self.config.seed
        self.interval_ms = self.config.tick_interval_ms
        self.flow: Optional[MarketFlow] = None
        self._next: Optional[int] = None

    def set_seed(self, seed: int) -> None:
        """The run's seed drives the flow (before ``attach``)."""
        self.seed = seed

    def attach(self, exchange: Exchange, symbol: str, start_ms: int) -> None:
        """The flow of ``symbol``, seeded as the simulator seeds that instrument's flow."""
        if self.config.flow:
            for n, instrument in enumerate(self.instruments):
                if instrument.symbol == symbol:
                    self.flow = MarketFlow(exchange, instrument.flow, self.seed + n * FLOW_SEED_STEP)
        self._next = start_ms

    def next_ms(self) -> Optional[int]:
        return self._next

    def step(self, now_ms: int) -> None:
        if self.flow is not None:
            self.flow.step(now_ms)
        self._next = now_ms + self.interval_ms


def _factory(settings: Settings, arg: Optional[str]) -> SyntheticMarket:
    if arg is not None:
        raise MarketError(f"the synthetic market takes no file (got {arg!r}); its knobs are the SIM_* settings")
    return SyntheticMarket(settings)


register("synthetic", _factory)
