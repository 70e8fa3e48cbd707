"""Where the launcher trades: the settings' exchange, or an embedded GTE simulator started for the run.

The bot (``cli.run_bot``) and the supervisor of one bot per symbol (``ops/supervisor.run_supervisor``)
both start the simulator here when the settings ask for it (no ``BASE_URL``). The client (``gte/``) and
the simulator (``sim/``) share no code; only the launcher uses both.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Dict, Optional, Tuple

from .log import register_secret
from .settings import Settings

# REST base URL, WebSocket URL, API key, API secret
Endpoints = Tuple[str, str, Optional[str], Optional[str]]


def exchange_endpoints(settings: Settings, stack: contextlib.ExitStack, log: logging.Logger, *,
                       every_symbol: bool = False) -> Endpoints:
    """The exchange to trade on: the settings' one, or -- when they ask for the simulator -- an embedded
    simulator on a free loopback port, running until ``stack`` closes. Its secret is masked in the logs and
    its address told on ``log`` (the launcher's logger).

    ``every_symbol``: the simulator serves every symbol of the run (SIM_SYMBOLS, else SYMBOLS with the SIM_
    settings); otherwise it serves SIM_SYMBOLS, if set, else its default market.
    """
    if not settings.use_simulator:
        return settings.BASE_URL, settings.WS_URL, settings.API_KEY, settings.API_SECRET
    from .sim import SimConfig, run_simulator  # the simulator (and its server's imports) only when it runs
    overrides: Dict[str, object] = {}
    if every_symbol:
        overrides["symbols"] = settings.SIM_SYMBOLS or tuple((s, ()) for s in settings.SYMBOLS)
    config = SimConfig.from_settings(settings, host="127.0.0.1", port=0, api_key=settings.API_KEY,
                                     api_secret=settings.API_SECRET,
                                     funding_interval_s=int(settings.SIM_FUNDING_INTERVAL), **overrides)
    sim = stack.enter_context(run_simulator(config))
    register_secret(sim.api_secret)
    log.info("Trading on the embedded GTE simulator at %s", sim.base_url)
    return sim.base_url, sim.ws_url, sim.api_key, sim.api_secret
