"""The backtest against the real thing: the same settings and seed run in real time against the
embedded simulator (sockets, threads, wall clock: what ``python marketmaker --sim`` does) and
in the backtester, and the figures compared (``bench/backtest_agreement.py``, and a short test).

Both runs see the same price path (the flow's walk draws from its own stream, fixed by the
seed and simulated time) and the same taker arrivals; what differs is timing: the real-time
simulator steps every ~50 ms of wall time with jitter, messages take real time, the bot
spends real time deciding -- and the liquidity providers' refresh draws, one per quote per
step, follow the number of steps. So single runs differ; means over seeds should agree.
"""
from __future__ import annotations

import dataclasses
import math
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from ..market_maker import OrderManager
from ..settings import Settings, load_settings
from .engine import run_backtest
from .market import build
from .synthetic import sim_config
from . import synthetic  # noqa: F401  (registers the synthetic market)


@dataclass(frozen=True)
class Figures:
    fills: int
    volume: int
    pnl: Decimal


def settings_with(overrides: Optional[Mapping[str, object]] = None) -> Settings:
    return load_settings(overrides=dict(overrides or {}), environ={}, cwd=Path(tempfile.mkdtemp()))


def realtime(settings: Settings, seed: int, seconds: float) -> Figures:
    """The bot in real time against the embedded simulator (with the simulator's default latency: loopback)."""
    from ..cli import build_runner
    from ..sim import run_simulator
    config = dataclasses.replace(sim_config(settings, seed), port=0, host="127.0.0.1")
    with run_simulator(config) as sim:
        asset = settings.SETTLECURRENCY
        live = load_settings(overrides={**{k: settings[k] for k in _TRADING}, "BASE_URL": sim.base_url,
                                        "WS_URL": sim.ws_url, "API_KEY": sim.api_key, "API_SECRET": sim.api_secret,
                                        "LOG_LEVEL": "WARNING"},
                             environ={}, cwd=Path(tempfile.mkdtemp()))
        start = sim.call(lambda ex: ex.equity(sim.account_id, asset))
        runner = build_runner(live, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=seconds)
        runner.run()
        end = sim.call(lambda ex: ex.equity(sim.account_id, asset))
        seen = runner.exchange.snapshot()  # the bot's own count of its executions and contracts
    return Figures(fills=seen.fill_count, volume=seen.contracts_traded, pnl=end - start)


def backtest(settings: Settings, seed: int, seconds: float) -> Figures:
    result = run_backtest(settings, OrderManager, build("synthetic", settings), seed=seed, hours=seconds / 3600)
    return Figures(fills=result.fills, volume=result.volume, pnl=result.net_pnl)


# the settings of the trading (the live copy takes these from the backtest's settings)
_TRADING = ("ORDER_PAIRS", "ORDER_START_SIZE", "ORDER_STEP_SIZE", "INTERVAL", "MIN_SPREAD", "RELIST_INTERVAL",
            "MAINTAIN_SPREADS", "POST_ONLY", "LEVERAGE", "LOOP_INTERVAL", "REQUOTE_DEBOUNCE_MS",
            "API_REST_INTERVAL", "SIM_BALANCE", "SIM_START_PRICE", "SIM_TICK_SIZE", "SIM_VOLATILITY",
            "SIM_TAKER_RATE", "SIM_TAKER_MEAN_QTY", "SIM_DEPTH_LEVELS", "SIM_LEVEL_STEP_TICKS", "SIM_SPEED")


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def stderr(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1) / n)


def table(rows: Dict[int, tuple]) -> List[str]:
    """Per seed and mean: fills, volume, PnL of the backtest and the real-time run, and their differences."""
    lines = [f"{'seed':>6} | {'fills bt':>8} {'rt':>5} | {'volume bt':>9} {'rt':>7} | {'PnL bt':>14} {'rt':>14}"]
    for seed, (bt, rt) in sorted(rows.items()):
        lines.append(f"{seed:>6} | {bt.fills:>8} {rt.fills:>5} | {bt.volume:>9} {rt.volume:>7} | "
                     f"{float(bt.pnl):>14.8f} {float(rt.pnl):>14.8f}")
    for name in ("fills", "volume", "pnl"):
        b = [float(getattr(bt, name)) for bt, _ in rows.values()]
        r = [float(getattr(rt, name)) for _, rt in rows.values()]
        se = math.sqrt(stderr(b) ** 2 + stderr(r) ** 2)
        diff = mean(b) - mean(r)
        lines.append(f"mean {name:<6}: backtest {mean(b):.6g}, real time {mean(r):.6g}, difference {diff:+.6g} "
                     f"({'%.1f' % (diff / se) if se else '-'} standard errors)")
    return lines
