"""What a backtest market is: the other traders, acting on the simulated exchange in simulated time.

A market model opens its own accounts on the in-process simulator (``sim.exchange.Exchange``,
which is the simulator's ``Core`` plus its rows) and trades there like any other client:
liquidity providers place and cancel orders, takers cross the spread, the mark price moves,
funding is paid. The engine asks each model when it next wants to act and calls ``step``
at that simulated time; between steps the bot's own timers and latencies run.

Markets register a factory under the name ``--market`` gives; a factory takes the run's
settings and the market's argument (a file path, or None) and returns a new model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Optional, Protocol

if TYPE_CHECKING:
    from ..settings import Settings
    from ..sim.exchange import Exchange


class MarketModel(Protocol):
    """The other traders of one symbol."""

    def attach(self, exchange: "Exchange", symbol: str, start_ms: int) -> None:
        """Open this market's accounts and set its starting state at ``start_ms``."""

    def next_ms(self) -> Optional[int]:
        """Simulated time of this market's next action; None once the market has ended (a recording's end)."""

    def step(self, now_ms: int) -> None:
        """Act at ``now_ms``: everything due up to and including it."""


class MarketError(ValueError):
    """A market that cannot be built: an unknown name, a bad file (the message names the file and line)."""


MarketFactory = Callable[..., MarketModel]  # (settings, arg, **options) -> MarketModel
MARKETS: Dict[str, MarketFactory] = {}


def register(name: str, factory: MarketFactory) -> None:
    MARKETS[name] = factory


def build(name: str, settings: "Settings", arg: Optional[str] = None, **options: object) -> MarketModel:
    """A new model of market ``name``; ``options`` go to its factory (e.g. ``tick`` for ``events``)."""
    try:
        factory = MARKETS[name]
    except KeyError:
        raise MarketError(f"unknown market {name!r}: choose one of {', '.join(sorted(MARKETS))}") from None
    return factory(settings, arg, **options)
