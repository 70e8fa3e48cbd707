"""One run of a sweep, and where the runs execute: this process, local worker processes or a Dask cluster.

A run travels as a :class:`RunSpec` of plain values (the base settings, the grid point, the seed,
the market) and comes back as a :class:`RunResult` of plain values, so the same function gives the
same numbers wherever it runs. The run function is injectable: the sweep machinery is tested with a
deterministic stand-in; the default, :func:`backtest_run`, is the backtest engine.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import socket
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..settings import Settings, SettingsError, validate
from .grid import Combo

EXTRA_HINT = "python3 -m pip install -e '.[sweep]'"


class SweepError(Exception):
    """A sweep that cannot go on; ``code`` is the exit status (2: bad input or an unreachable cluster)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RunSpec:
    """Everything one backtest of the sweep needs, as plain values that pickle anywhere."""
    combo: Combo
    seed: int
    base: Tuple[Tuple[str, Any], ...]  # the base settings, secrets removed
    market: str
    market_arg: Optional[str]
    hours: float
    latency: Optional[str] = None  # --latency-ms as written ("X" or "X:Y"); None: the engine's default
    log_level: str = "ERROR"  # of the bot's loggers during the run

    def settings(self) -> Settings:
        """The base settings with this grid point and seed (``SIM_SEED``) applied, validated."""
        return Settings(validate({**dict(self.base), **dict(self.combo.changes), "SIM_SEED": self.seed}))

    def describe(self) -> str:
        return f"{self.combo.describe()} seed={self.seed}"

    def __repr__(self) -> str:  # short, for Dask's logs (the base settings are some sixty values)
        return f"RunSpec({self.describe()}, market={self.market!r}, hours={self.hours:g})"


@dataclass(frozen=True)
class RunResult:
    """The figures of one run. Money is Decimal; statistics are float."""
    combo_index: int
    seed: int
    net_pnl: Decimal
    sharpe: float
    max_drawdown: Decimal
    inventory_std: float
    fills: int
    maker_fills: int
    volume: int
    sim_seconds: float
    wall_seconds: float

    @classmethod
    def of(cls, spec: RunSpec, result: Any) -> "RunResult":
        """From the engine's ``BacktestResult`` (or anything with its fields)."""
        return cls(spec.combo.index, spec.seed, Decimal(result.net_pnl), float(result.sharpe),
                   Decimal(result.max_drawdown), float(result.inventory_std), int(result.fills),
                   int(result.maker_fills), int(result.volume), float(result.sim_seconds), float(result.wall_seconds))

    @property
    def key(self) -> Tuple[int, int]:
        return self.combo_index, self.seed


RunFunction = Callable[[RunSpec], RunResult]


def backtest_run(spec: RunSpec) -> RunResult:
    """One backtest on the engine: the strategy of the settings on a new market of ``spec.market``."""
    from ..runner import load_strategy
    from . import market as markets
    from .engine import run_backtest
    load_markets()
    logging.getLogger("market_maker").setLevel(spec.log_level)
    settings = spec.settings()
    manager_cls = load_strategy(settings.STRATEGY)
    model = markets.build(spec.market, settings, spec.market_arg)
    extra: Dict[str, Any] = {} if spec.latency is None else {"latency": spec.latency}
    result = run_backtest(settings, manager_cls, model, seed=spec.seed, hours=spec.hours, **extra)
    return RunResult.of(spec, result)


def load_markets() -> None:
    """Register the markets (each market module registers its own when imported)."""
    try:
        from .command import load_markets as load
    except ImportError:  # the backtest command is not there: no market but those registered by hand
        return
    load()


def _failed(spec: RunSpec, exc: BaseException) -> SweepError:
    return SweepError(f"run {spec.describe()} failed: {type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------------------------------------------------
# Local


def run_local(specs: Sequence[RunSpec], run: RunFunction, workers: int) -> Iterator[RunResult]:
    """The runs' results in the order they finish: in this process when ``workers`` is 1, else in that
    many fresh worker processes (spawned: each starts clean, as a Dask worker does)."""
    if workers <= 1 or len(specs) <= 1:
        for spec in specs:
            try:
                yield run(spec)
            except Exception as exc:
                raise _failed(spec, exc) from exc
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(specs)), mp_context=multiprocessing.get_context("spawn"))
    pending: Dict[Future, RunSpec] = {pool.submit(run, spec): spec for spec in specs}
    finished = False
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                spec = pending.pop(future)
                exc = future.exception()
                if exc is not None:
                    raise _failed(spec, exc) from exc
                yield future.result()
        finished = True
    finally:
        if not finished:  # a failed run or Ctrl-C: the other runs' results would be thrown away, stop them
            for future in pending:
                future.cancel()
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------------------------------------------------
# Dask


def dask_client(address: str, timeout: float) -> Any:
    """A client of the Dask scheduler at ``address``; SweepError(code 2) when it cannot be reached
    within ``timeout`` seconds or the address is malformed."""
    try:
        from distributed import Client
        from distributed.comm import parse_address
        from distributed.comm.addressing import parse_host_port
    except ImportError:
        raise SweepError(f"--dask needs dask.distributed, the 'sweep' extra: {EXTRA_HINT}", 2) from None
    try:
        scheme, location = parse_address(address if "://" in address else f"tcp://{address}")
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise SweepError(f"--dask {address}: not a scheduler address ({exc}); give it as tcp://HOST:PORT "
                         f"(a scheduler listens on 8786 by default)", 2) from None
    if scheme in ("tcp", "tls"):
        _probe(address, host, port, timeout)  # a refused port fails at once, without the client's retries
    _identify(address, timeout)  # the client itself waits forever on a port that accepts and stays silent
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"--dask {address}: no Dask scheduler answered within {timeout:g} s ({exc})", 2) from None


def _probe(address: str, host: str, port: int, timeout: float) -> None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SweepError(f"--dask {address}: cannot reach the scheduler: {reason}", 2) from None


def _identify(address: str, timeout: float) -> None:
    from distributed.comm import connect

    async def identity() -> Any:
        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity"})
            return await comm.read()
        finally:
            comm.abort()

    try:
        reply = asyncio.run(asyncio.wait_for(identity(), timeout))
    except (OSError, asyncio.TimeoutError, ValueError, TypeError) as exc:
        reason = f" ({exc})" if str(exc) else ""
        raise SweepError(f"--dask {address}: no Dask scheduler answered within {timeout:g} s{reason}", 2) from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise SweepError(f"--dask {address}: what answered there is no Dask scheduler", 2)


def run_dask(specs: Sequence[RunSpec], run: RunFunction, client: Any) -> Iterator[RunResult]:
    """The runs' results in the order they finish on the cluster of ``client``."""
    from distributed import as_completed
    token = f"sweep-{time.time_ns():x}"
    futures = [client.submit(run, spec, key=f"{token}-{i}", pure=False) for i, spec in enumerate(specs)]
    spec_of = {future.key: spec for future, spec in zip(futures, specs)}
    finished = False
    try:
        for future in as_completed(futures, loop=client.loop):
            if future.status == "error":
                spec = spec_of[future.key]
                exc = future.exception()
                raise _failed(spec, exc) from exc
            yield future.result()
        finished = True
    finally:
        if not finished:
            client.cancel(futures)


# ----------------------------------------------------------------------------------------------------------------------
# The base settings of a sweep


def base_values(settings: Settings) -> Tuple[Tuple[str, Any], ...]:
    """The settings every run starts from, as plain values: no secret and no endpoint (a backtest
    talks to no exchange, and a spec may travel to another machine)."""
    values = dict(settings)
    values.update(API_KEY=None, API_SECRET=None, BASE_URL=None, WS_URL=None)
    try:
        return tuple(sorted(validate(values).items()))
    except SettingsError as exc:  # pragma: no cover - the values were valid with the endpoint set
        raise SweepError(str(exc), 2) from None


def specs_for(combos: Sequence[Combo], seeds: Sequence[int], base: Tuple[Tuple[str, Any], ...], market: str,
              market_arg: Optional[str], hours: float, latency: Optional[str] = None,
              log_level: str = "ERROR") -> List[RunSpec]:
    return [RunSpec(combo, seed, base, market, market_arg, hours, latency, log_level)
            for combo in combos for seed in seeds]
