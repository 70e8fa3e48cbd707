"""Local GTE exchange simulator: REST + WebSocket server over a pure in-memory exchange core.

``from market_maker.sim import SimServer, SimConfig, run_simulator``. The server names are
loaded lazily so that importing the pure core (``market_maker.sim.exchange``) stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SimConfig", "SimServer", "run_simulator"]


def __getattr__(name: str) -> Any:
    if name == "SimConfig":
        from .config import SimConfig
        return SimConfig
    if name in ("SimServer", "run_simulator"):
        from . import server
        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
