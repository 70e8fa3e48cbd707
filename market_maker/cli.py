"""The command line: ``python marketmaker [--settings PATH] [--dry-run] [--duration S] [--sim] [--strategy M:C]``
runs the bot; ``python marketmaker COMMAND ...`` runs a subcommand (``commands.py``)."""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import threading
from typing import Dict, Mapping, Optional, Sequence, Type

from . import commands
from .gte import errors
from .log import register_secret, setup_logging
from .market_maker import ExchangeInterface, OrderManager
from .runner import EXIT_ERROR, EXIT_OK, EXIT_SETTINGS, Runner, load_strategy
from .settings import Settings, SettingsError, load_settings, pop_env_secret

log = logging.getLogger("market_maker.manager")
# any of these set starts market_maker.ops (notifications, control API, metrics); none set: it is never imported
OPS_SETTINGS = ("NOTIFY_URLS", "CONTROL_ADDRESS", "CONTROL_TELEGRAM_CHATS", "METRICS_ADDRESS")

def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds greater than 0")
    return seconds


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marketmaker", description="GTE perpetual-futures grid market maker.",
                                     epilog=commands.epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", metavar="PATH", help="settings file (default: ./settings.py or $MM_SETTINGS)")
    parser.add_argument("--dry-run", action="store_true", help="compute and log orders, send none")
    parser.add_argument("--duration", type=_duration, metavar="SECONDS", help="exit cleanly after this many seconds")
    parser.add_argument("--sim", action="store_true", help="trade on the embedded local GTE simulator")
    parser.add_argument("--strategy", metavar="MODULE:CLASS", help="OrderManager subclass to run")
    return parser.parse_args(argv)


def run(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of `python marketmaker` and the `marketmaker` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = commands.find(argv)
    if command is not None:
        sys.exit(command(argv[1:]))
    args = parse_args(argv)
    env_secret = pop_env_secret(os.environ)  # before any user code runs: no strategy nor child process reads it
    overrides: Dict[str, object] = {}
    if args.dry_run:
        overrides["DRY_RUN"] = True
    if args.strategy:
        overrides["STRATEGY"] = args.strategy
    if args.sim:
        overrides["BASE_URL"] = None
    try:
        settings = load_settings(args.settings, overrides=overrides, environ={**os.environ, **env_secret})
        manager_cls = load_strategy(settings.STRATEGY, secrets=[settings.API_KEY, settings.API_SECRET,
                                                                *env_secret.values()])
    except SettingsError as exc:
        print(f"marketmaker: bad settings: {exc}", file=sys.stderr)
        sys.exit(EXIT_SETTINGS)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        sys.exit(EXIT_OK)
    setup_logging(settings.LOG_LEVEL, secrets=[settings.API_SECRET, *env_secret.values()])
    try:
        code = run_bot(settings, manager_cls, duration=args.duration, settings_path=args.settings,
                       strategy_override=args.strategy, forced_sim=args.sim, env_secret=env_secret)
    except KeyboardInterrupt:
        code = EXIT_OK
    sys.exit(code)


def build_runner(settings: Settings, base_url: str, ws_url: str, api_key: Optional[str], api_secret: Optional[str],
                 manager_cls: Type[OrderManager] = OrderManager, duration: Optional[float] = None,
                 settings_path: Optional[str] = None, strategy_override: Optional[str] = None,
                 forced_sim: bool = False, env_secret: Optional[Mapping[str, str]] = None) -> Runner:
    """A ready-to-run bot against the exchange at ``base_url``/``ws_url`` (run it with ``.run()``)."""
    exchange = ExchangeInterface(settings, base_url, ws_url, api_key, api_secret)
    return Runner(settings, exchange, manager_cls, duration, settings_path, strategy_override, forced_sim,
                  env_secret)


def run_bot(settings: Settings, manager_cls: Type[OrderManager] = OrderManager, duration: Optional[float] = None,
            settings_path: Optional[str] = None, strategy_override: Optional[str] = None,
            forced_sim: bool = False, install_signals: bool = True,
            env_secret: Optional[Mapping[str, str]] = None) -> int:
    """Run until a signal, the duration or the kill switch; returns the exit status.

    ``env_secret``: GTE_API_SECRET as taken out of the environment, for the reloads."""
    with contextlib.ExitStack() as stack:
        if settings.use_simulator:
            from .sim import SimConfig, run_simulator
            config = SimConfig.from_settings(settings, host="127.0.0.1", port=0, api_key=settings.API_KEY,
                                             api_secret=settings.API_SECRET,
                                             funding_interval_s=int(settings.SIM_FUNDING_INTERVAL))
            sim = stack.enter_context(run_simulator(config))
            register_secret(sim.api_secret)
            log.info("Trading on the embedded GTE simulator at %s", sim.base_url)
            base_url, ws_url, key, secret = sim.base_url, sim.ws_url, sim.api_key, sim.api_secret
        else:
            base_url, ws_url, key, secret = settings.BASE_URL, settings.WS_URL, settings.API_KEY, settings.API_SECRET
        runner = build_runner(settings, base_url, ws_url, key, secret, manager_cls, duration, settings_path,
                              strategy_override, forced_sim, env_secret)
        if any(settings[name] for name in OPS_SETTINGS):
            from .ops import start_ops
            try:
                stack.enter_context(start_ops(runner))
            except SettingsError as exc:
                runner.exchange.close()
                print(f"marketmaker: bad settings: {exc}", file=sys.stderr)
                log.error("Bad settings: %s", exc)
                return EXIT_SETTINGS
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, runner.stop)
            signal.signal(signal.SIGTERM, runner.stop)
        try:
            return runner.run()
        except errors.AuthenticationError as exc:
            log.error("Authentication failed: %s", exc)
            runner.exit_code = EXIT_ERROR  # what the stop notification tells
            return EXIT_ERROR
