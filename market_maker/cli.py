"""The command line: ``python marketmaker [--settings PATH] [--dry-run] [--duration S] [--sim] [--strategy M:C]
[--symbols A,B] [--set NAME=VALUE]`` runs the bot (with ``--symbols`` or SYMBOLS: a supervisor of one bot per
symbol, ops/supervisor.py); ``python marketmaker COMMAND ...`` runs a subcommand (``commands.py``)."""
from __future__ import annotations

import argparse
import ast
import contextlib
import logging
import math
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple, Type

from . import commands
from .journal.reconcile import reconcile
from .journal.recorder import JournalRecorder, check_path, open_journal
from .gte import errors
from .log import setup_logging
from .market_maker import ExchangeInterface, OrderManager
from .runner import EXIT_ERROR, EXIT_OK, EXIT_SETTINGS, Runner, load_strategy
from .settings import Settings, SettingsError, defaults, load_settings, pop_env_secret
from .sim_launch import exchange_endpoints

log = logging.getLogger("market_maker.manager")
# any of these set starts market_maker.ops (notifications, control API, metrics); none set: it is never imported
OPS_SETTINGS = ("NOTIFY_URLS", "CONTROL_ADDRESS", "CONTROL_TELEGRAM_CHATS", "METRICS_ADDRESS")
SUPERVISOR_SETS = ("SYMBOL", "SETTLECURRENCY", "ORDERID_PREFIX", "SYMBOLS", "BASE_URL", "WS_URL")  # its own

def _duration(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds greater than 0")
    return seconds


def _assignment(text: str) -> Tuple[str, object]:
    name, eq, value = text.partition("=")
    if not eq or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed: object = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word: a string
    return name.strip(), parsed


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marketmaker", description="GTE perpetual-futures grid market maker.",
                                     epilog=commands.epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", metavar="PATH", help="settings file (default: ./settings.py or $MM_SETTINGS)")
    parser.add_argument("--dry-run", action="store_true", help="compute and log orders, send none")
    parser.add_argument("--duration", type=_duration, metavar="SECONDS", help="exit cleanly after this many seconds")
    parser.add_argument("--sim", action="store_true", help="trade on the embedded local GTE simulator")
    parser.add_argument("--strategy", metavar="MODULE:CLASS", help="OrderManager subclass to run")
    parser.add_argument("--symbols", metavar="A,B,...",
                        help="run one bot process per symbol under a supervisor (the SYMBOLS setting)")
    parser.add_argument("--set", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="override a setting (VALUE as in a settings file, or a bare word); repeatable")
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
    if args.symbols:
        overrides["SYMBOLS"] = args.symbols
    try:
        known = defaults()
        for name, value in args.set:
            if name not in known:
                raise SettingsError(f"--set: unknown setting {name}")
            overrides[name] = value
        settings = load_settings(args.settings, overrides=overrides, environ={**os.environ, **env_secret})
        manager_cls = load_strategy(settings.STRATEGY, secrets=[settings.API_KEY, settings.API_SECRET,
                                                                *env_secret.values()])
        journal = journal_path(settings, args.settings)
        if journal is not None:
            check_path(journal)
    except SettingsError as exc:
        print(f"marketmaker: bad settings: {exc}", file=sys.stderr)
        sys.exit(EXIT_SETTINGS)
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers are in place
        sys.exit(EXIT_OK)
    setup_logging(settings.LOG_LEVEL, secrets=[settings.API_SECRET, *env_secret.values()])
    if settings.SYMBOLS:
        sys.exit(_supervise(settings, args))
    try:
        code = run_bot(settings, manager_cls, duration=args.duration, settings_path=args.settings,
                       strategy_override=args.strategy, forced_sim=args.sim, env_secret=env_secret,
                       set_overrides=dict(args.set))
    except KeyboardInterrupt:
        code = EXIT_OK
    sys.exit(code)


def _supervise(settings: Settings, args: argparse.Namespace) -> int:
    from .ops.supervisor import run_supervisor  # imported only when used
    child_args = (["--dry-run"] if args.dry_run else []) + (["--strategy", args.strategy] if args.strategy else [])
    child_args += [f"--set={name}={value!r}" for name, value in args.set if name not in SUPERVISOR_SETS]
    try:
        return run_supervisor(settings, settings_path=args.settings, child_args=child_args, duration=args.duration)
    except KeyboardInterrupt:
        return EXIT_OK


def build_runner(settings: Settings, base_url: str, ws_url: str, api_key: Optional[str], api_secret: Optional[str],
                 manager_cls: Type[OrderManager] = OrderManager, duration: Optional[float] = None,
                 settings_path: Optional[str] = None, strategy_override: Optional[str] = None,
                 forced_sim: bool = False, env_secret: Optional[Mapping[str, str]] = None,
                 set_overrides: Optional[Mapping[str, object]] = None) -> Runner:
    """A ready-to-run bot against the exchange at ``base_url``/``ws_url`` (run it with ``.run()``)."""
    exchange = ExchangeInterface(settings, base_url, ws_url, api_key, api_secret)
    return Runner(settings, exchange, manager_cls, duration, settings_path, strategy_override, forced_sim,
                  env_secret, set_overrides)


def run_bot(settings: Settings, manager_cls: Type[OrderManager] = OrderManager, duration: Optional[float] = None,
            settings_path: Optional[str] = None, strategy_override: Optional[str] = None,
            forced_sim: bool = False, install_signals: bool = True,
            env_secret: Optional[Mapping[str, str]] = None,
            set_overrides: Optional[Mapping[str, object]] = None) -> int:
    """Run until a signal, the duration or the kill switch; returns the exit status.

    ``env_secret``: GTE_API_SECRET as taken out of the environment, for the reloads."""
    path = journal_path(settings, settings_path)
    if path is not None:
        try:
            check_path(path)
        except SettingsError as exc:
            log.error("Bad settings: %s", exc)
            return EXIT_SETTINGS
    with contextlib.ExitStack() as stack:
        base_url, ws_url, key, secret = exchange_endpoints(settings, stack, log)
        runner = build_runner(settings, base_url, ws_url, key, secret, manager_cls, duration, settings_path,
                              strategy_override, forced_sim, env_secret, set_overrides)
        if any(settings[name] for name in OPS_SETTINGS):
            from .ops.parts import start_ops
            try:
                stack.enter_context(start_ops(runner))
            except SettingsError as exc:
                runner.exchange.close()
                print(f"marketmaker: bad settings: {exc}", file=sys.stderr)
                log.error("Bad settings: %s", exc)
                return EXIT_SETTINGS
        journal = None
        if path is not None:
            try:
                journal = attach_journal(path, settings, runner, manager_cls)
            except SettingsError as exc:
                runner.exit_code = EXIT_SETTINGS
                log.error("Bad settings: %s", exc)
                return EXIT_SETTINGS
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, runner.stop)
            signal.signal(signal.SIGTERM, runner.stop)
        code = EXIT_ERROR
        try:
            code = runner.run()
            return code
        except errors.AuthenticationError as exc:
            log.error("Authentication failed: %s", exc)
            runner.exit_code = EXIT_ERROR  # what the stop notification tells
            return EXIT_ERROR
        finally:
            if journal is not None:
                detach_journal(journal, runner, code)


# ----------------------------------------------------------------------------------------------------------------------
# The journal (market_maker/journal): opened at start, fed by the event bus, closed with the exit status


def journal_path(settings: Settings, settings_path: Optional[str] = None) -> Optional[str]:
    """JOURNAL_PATH made absolute (relative: beside the settings file, else the working directory); None: off."""
    if not settings.JOURNAL_PATH:
        return None
    source = settings.source or (Path(settings_path) if settings_path else None)
    base = source.parent if source else Path.cwd()
    return str((base / Path(settings.JOURNAL_PATH).expanduser()).absolute())


def attach_journal(path: str, settings: Settings, runner: Runner, manager_cls: Type[OrderManager]) -> JournalRecorder:
    """Open a run in the journal, subscribe it to the bot's events, reconcile once connected."""
    exchange = runner.exchange
    mode = "dry_run" if settings.DRY_RUN else "live"
    journal = open_journal(path, settings, mode=mode, strategy=f"{manager_cls.__module__}:{manager_cls.__qualname__}",
                           sim_seed=settings.SIM_SEED if settings.use_simulator else None, run_tag=exchange.run_tag,
                           clock=exchange.clock)
    exchange.events.subscribe(journal)
    log.info("Journal: %s (run %d)", path, journal.run_id)

    def reconcile_journal() -> None:
        if settings.DRY_RUN:
            return
        try:
            reconcile(journal, exchange.rest, settings.ORDERID_PREFIX)
        except errors.GteError:
            raise  # the exchange not answering yet: retried with the start
        except Exception as exc:  # the journal never stops the bot
            log.error("Journal reconciliation failed, trading anyway: %s", exc)
    runner.on_connected = reconcile_journal
    return journal


STOP_RECONCILE_S = 5.0  # the journal's read-back of our orders at stop, at most


def detach_journal(journal: JournalRecorder, runner: Runner, code: int) -> None:
    """Close the run. The exit cancelled our orders: first the exchange's word on them fills in what a blind
    WebSocket missed (a resync the run ended before), so the journal closes equal to the exchange."""
    exchange, settings = runner.exchange, runner.settings
    if not settings.DRY_RUN and getattr(exchange, "rest", None) is not None:
        try:
            with exchange.deadline(exchange.clock.monotonic() + STOP_RECONCILE_S):
                reconcile(journal, exchange.rest, settings.ORDERID_PREFIX, timeout=STOP_RECONCILE_S, at_stop=True)
        except Exception as exc:  # the exchange gone: the next start reads the orders back
            log.warning("Journal: could not read our orders back at stop (%s); the next start will", exc)
    exchange.events.unsubscribe(journal)
    journal.close(code)
    print(f"Journal of this run: {journal.path} (run {journal.run_id}). Report on it: "
          f"python3 marketmaker report {shlex.quote(journal.path)} --run {journal.run_id}", file=sys.stderr)


if __name__ == "__main__":  # the supervisor's bots: python -m market_maker.cli
    run()
