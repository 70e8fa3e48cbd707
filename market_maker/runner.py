"""Running the manager: the loop, hot reload of settings and strategy, the exit path.

``Runner`` owns the exchange connection across reloads and drives the manager's
decisions; the command line (``cli.py``) builds one and runs it.
"""
from __future__ import annotations

import importlib
import logging
import os
import random
import sys
import threading
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type

from . import quoting, startup
from .clock import SYSTEM_CLOCK, Clock, SystemClock
from .gte import errors
from .heap import freeze_startup_heap
from .market_maker import AnotherInstance, ExchangeInterface, KillSwitch, OrderManager
from .settings import Settings, SettingsError, load_settings, redact
from .settings_file import SECRET_NAMES

log = logging.getLogger("market_maker.manager")

EXIT_OK, EXIT_ERROR, EXIT_SETTINGS, EXIT_KILL_SWITCH = 0, 1, 2, 3
# MARGIN_MODE: the exchange refuses a mode change while we hold a position or an order
RESTART_REQUIRED = ("BASE_URL", "WS_URL", "API_KEY", "API_SECRET", "SYMBOL", "SETTLECURRENCY", "INSTRUMENTTYPE",
                    "DRY_RUN", "ORDERID_PREFIX", "TIMEOUT", "WS_PING_INTERVAL", "WS_SILENCE_TIMEOUT", "MARGIN_MODE",
                    # the operations parts are set up once, at start
                    "NOTIFY_URLS", "TELEGRAM_API_URL", "CONTROL_ADDRESS", "CONTROL_TELEGRAM_CHATS", "METRICS_ADDRESS")
# what a reloaded manager takes over from the running one: the run's start figures, the pause it is in
# (its reason, a cancel-all still owed) and the pacing of its sends
CARRIED_OVER = ("start_time", "start_equity", "start_realised", "start_traded", "start_fills", "start_fees",
                "start_maker_fills", "paused", "_cancel_owed", "_last_send")


def load_strategy(spec: Optional[str], reload: bool = False, secrets: Sequence[object] = ()) -> Type[OrderManager]:
    """'module:Class' -> the class; empty -> OrderManager. ``reload`` runs an imported module's code again.

    Whatever the module raises while it runs (SystemExit and KeyboardInterrupt included) is a
    SettingsError naming its file and line, with ``secrets`` hidden from the message.
    """
    if not spec:
        return OrderManager
    module_name, _, class_name = spec.partition(":")
    module = _import_strategy(spec, module_name, reload, secrets)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, OrderManager)):
        raise SettingsError(f"STRATEGY = {spec!r}: {class_name} is not an OrderManager subclass in {module_name}")
    return cls


def _import_strategy(spec: str, module_name: str, reload: bool, secrets: Sequence[object]) -> ModuleType:
    loaded = sys.modules.get(module_name)
    try:
        if reload and loaded is not None:
            return importlib.reload(loaded)
        return importlib.import_module(module_name)
    except BaseException as exc:  # the module's own code runs here: sys.exit() and Ctrl-C included
        if isinstance(exc, ModuleNotFoundError) and exc.name and (module_name + ".").startswith(exc.name + "."):
            raise SettingsError(f"STRATEGY = {spec!r}: no module named {exc.name!r}") from None
        where = _innermost_file(exc)
        if isinstance(exc, SystemExit):
            what = f"it called sys.exit({'' if exc.code is None else repr(exc.code)})"
        elif isinstance(exc, SyntaxError):
            what = f"syntax error: {exc.msg}"
            where = f"{exc.filename}, line {exc.lineno}"
        else:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        message = f"STRATEGY = {spec!r}: importing {module_name} failed ({where}): {what}"
        raise SettingsError(redact(message, secrets)) from None


def _innermost_file(exc: BaseException) -> str:
    """'file, line N' of the last frame of ``exc`` outside the import machinery."""
    where = "?"
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith("<frozen ") and "importlib" not in code.co_filename:
            where = f"{code.co_filename}, line {tb.tb_lineno}"
        tb = tb.tb_next
    return where


class FileWatcher:
    """Notices a change of modification time of any watched file (polled; cheap stat calls)."""

    def __init__(self, paths: Sequence[str]):
        self.paths = [Path(p) for p in paths]
        self.stamps = {p: self._stamp(p) for p in self.paths}

    @staticmethod
    def _stamp(path: Path) -> Optional[Tuple[int, int]]:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def changed(self) -> List[Path]:
        changed = []
        for path in self.paths:
            stamp = self._stamp(path)
            if stamp != self.stamps[path]:
                self.stamps[path] = stamp
                changed.append(path)
        return changed


class Runner:
    """Owns the exchange connection across reloads and drives the manager's loop."""

    def __init__(self, settings: Settings, exchange: ExchangeInterface, manager_cls: Type[OrderManager],
                 duration: Optional[float] = None, settings_path: Optional[str] = None,
                 strategy_override: Optional[str] = None, forced_sim: bool = False,
                 env_secret: Optional[Mapping[str, str]] = None, set_overrides: Optional[Mapping[str, Any]] = None,
                 rng: Optional[random.Random] = None):
        """``rng``: the manager's random source (a backtest passes a seeded one)."""
        self.settings = settings
        self.set_overrides = dict(set_overrides or {})  # --set NAME=VALUE: reloads keep them
        self._env_secret = dict(env_secret or {})  # GTE_API_SECRET, out of os.environ: reloads need it
        self.forced_sim = forced_sim  # --sim: reloads keep trading on the embedded simulator
        self.exchange = exchange
        # one clock for the loop and the manager: the wall clock live, the simulated one in a backtest
        self.clock: Clock = getattr(exchange, "clock", SYSTEM_CLOCK)
        self.manager = manager_cls(settings, exchange, rng=rng) if rng is not None else manager_cls(settings, exchange)
        self.duration = duration
        self.settings_path = settings_path
        self.strategy_override = strategy_override
        self.stop_event = threading.Event()
        self.exit_code = EXIT_OK
        self.watcher = FileWatcher(self.watched_files(settings, manager_cls))
        self._starting = False
        self.before_cycle: List[Callable[[], None]] = []  # run in this thread before each decision (ops commands)
        self.held: Optional[str] = None  # an operator's pause (ops): no decision until resumed
        self.on_connected: Optional[Callable[[], None]] = None  # once connected, before the manager starts

    @staticmethod
    def watched_files(settings: Settings, manager_cls: Type[OrderManager]) -> List[str]:
        if settings.WATCHED_FILES is not None:
            return list(settings.WATCHED_FILES)
        files = [str(settings.source)] if settings.source else []
        module_file = getattr(sys.modules.get(manager_cls.__module__), "__file__", None)
        if manager_cls is not OrderManager and module_file:
            files.append(module_file)
        return files

    def _wait(self, seconds: float) -> None:
        """Let ``seconds`` pass on the loop's clock: live, a wait that ``stop`` cuts short; simulated,
        the clock's sleep (simulated time passes, the market moves, nothing waits)."""
        if isinstance(self.clock, SystemClock):
            self.stop_event.wait(seconds)
        else:
            self.clock.sleep(seconds)

    def stop(self, *_: object) -> None:
        self.stop_event.set()
        self.exchange.wake()
        if self._starting:  # a connection attempt waiting for partials gives up at once
            self.exchange.close()

    def run(self) -> int:
        started = self.clock.monotonic()
        try:
            ready = self.start(started)
        except BaseException:
            self.exchange.close()
            raise
        if not ready:
            self.exchange.close()
            return self.exit_code
        freeze_startup_heap()
        next_status = self.clock.monotonic() + self.settings.LOOP_INTERVAL
        try:
            while not self.stop_event.is_set():
                if self.duration is not None and self.clock.monotonic() - started >= self.duration:
                    log.info("Duration of %.0fs elapsed", self.duration)
                    break
                timeout = max(0.0, next_status - self.clock.monotonic())
                if self.duration is not None:
                    timeout = min(timeout, max(0.0, self.duration - (self.clock.monotonic() - started)))
                kinds = self.exchange.wait_for_events(timeout)
                if kinds and self.settings.REQUOTE_DEBOUNCE_MS:
                    self._wait(self.settings.REQUOTE_DEBOUNCE_MS / 1000)
                if self.stop_event.is_set():
                    break
                self.check_reload()
                for hook in self.before_cycle:
                    hook()
                self.cycle()
                if self.clock.monotonic() >= next_status:
                    self.manager.print_status()
                    next_status = self.clock.monotonic() + self.settings.LOOP_INTERVAL
        except KillSwitch as exc:
            log.error("Kill switch: %s. Cancelling all orders and exiting.", exc)
            self.exit_code = EXIT_KILL_SWITCH
        except AnotherInstance as exc:
            log.error("Stopping: %s. Cancelling this bot's orders and exiting.", exc)
            self.exit_code = EXIT_ERROR
        except errors.AuthenticationError as exc:
            log.error("Authentication failed: %s", exc)
            self.exit_code = EXIT_ERROR
        finally:
            self.manager.exit()
            self.exchange.close()
        return self.exit_code

    def start(self, started: float) -> bool:
        """Connect and start the manager; False when the run ends before (stopped, refused).

        Faults that pass by themselves (the exchange not reachable yet, a 503, a burst of 5xx,
        partials that do not come) are retried with the WebSocket client's reconnect backoff and
        said once; a refusal (the key, the symbol, a setting) is logged in one line: exit 1.
        """
        backoff = getattr(self.exchange.ws, "reconnect_backoff", (0.5, 30.0))
        connected, attempt, waiting_since = False, 0, None
        self._starting = True
        try:
            while not self.stop_event.is_set():
                url = getattr(self.exchange.ws, "ws_url", "the exchange")
                try:
                    if not connected:
                        self.exchange.connect()
                        connected = True
                    url = getattr(self.exchange.rest, "base_url", "the exchange")
                    if self.on_connected is not None:  # e.g. the journal's reconciliation (retried like the start)
                        self.on_connected()
                        self.on_connected = None
                    self.manager.start(fresh=True)
                    if waiting_since is not None:
                        log.info("The exchange answered after %.0fs; starting", self.clock.monotonic() - waiting_since)
                    return True
                except SettingsError as exc:  # found out only at start (e.g. a fair-value source that never answers)
                    log.error("Bad settings: %s", exc)
                    self.exit_code = EXIT_SETTINGS
                    return False
                except Exception as exc:
                    reason = startup.transient_reason(exc)
                    if reason is not None and self.stop_event.is_set():
                        continue  # stopped mid-attempt (the attempt gave up for that reason)
                    if reason is None:
                        if not startup.is_exchange_fault(exc):
                            raise
                        log.error("%s", startup.refusal(exc, self.settings))
                        self.exit_code = EXIT_ERROR
                        return False
                    if waiting_since is None:
                        waiting_since = self.clock.monotonic()
                        log.warning("Waiting for the exchange at %s: %s; retrying", url, reason)
                    else:
                        log.debug("The exchange at %s is still not usable: %s", url, reason)
                delay = startup.backoff_delay(attempt, backoff)
                attempt += 1
                if self.duration is not None:
                    left = self.duration - (self.clock.monotonic() - started)
                    if left <= delay:
                        self._wait(max(0.0, left))
                        log.info("Duration of %.0fs elapsed before the exchange could be used", self.duration)
                        return False
                self._wait(delay)
            log.info("Stopped before the start completed; no order was sent")
            return False
        finally:
            self._starting = False

    def cycle(self) -> None:
        try:
            if self.held:  # paused by the operator: no quoting, but the drawdown is still watched
                self.manager.snap = self.exchange.snapshot(self.manager.book_depth)
                self.manager.check_drawdown()
                return
            self.manager.step()
        except (KillSwitch, errors.AuthenticationError):
            raise
        except errors.GteError as exc:
            log.warning("Exchange error, retrying in %ss: %s", self.settings.API_ERROR_INTERVAL, exc)
            self.exchange.events.emit("error", where="cycle", text=str(exc))
            self._wait(self.settings.API_ERROR_INTERVAL)
        except quoting.NoMarket as exc:
            log.warning("Not quoting: %s", exc)

    def check_reload(self) -> None:
        changed = self.watcher.changed()
        if not changed:
            return
        log.info("Change detected in %s; reloading", ", ".join(str(p) for p in changed))
        self.reload()

    def reload(self) -> bool:
        """Validate the new settings and strategy; swap the manager in-process, keeping tables and orders."""
        try:
            settings = load_settings(self.settings_path, overrides=self._overrides(),
                                     environ={**os.environ, **self._env_secret})
            for name in RESTART_REQUIRED:
                if settings[name] != self.settings[name]:
                    raise SettingsError(f"changing {name} needs a restart")
            spec = self.strategy_override or settings.STRATEGY
            secrets = [self.settings.API_KEY, self.settings.API_SECRET, *self._env_secret.values()]
            manager_cls = load_strategy(spec, reload=True, secrets=secrets)
            manager = manager_cls(settings, self.exchange)
            if settings.LEVERAGE != self.settings.LEVERAGE:  # last: the one step with an effect at the exchange
                self._apply_leverage(settings.LEVERAGE)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # a broken reload must never stop a running bot
            why = exc if isinstance(exc, Exception) else f"{type(exc).__name__} raised"
            log.error("Reload rejected, keeping the running settings: %s", why)
            return False
        old = self.manager
        self._tell_reload(settings)
        for name in CARRIED_OVER:
            setattr(manager, name, getattr(old, name))
        self.settings, self.manager = settings, manager
        self.watcher = FileWatcher(self.watched_files(settings, manager_cls))
        log.info("Reloaded: %s with the new settings", manager_cls.__name__)
        return True

    def _tell_reload(self, settings: Settings) -> None:
        """The settings a reload changed (secrets left out), for the journal."""
        changed = {name: [str(self.settings[name]), str(settings[name])] for name in settings
                   if name not in SECRET_NAMES and settings[name] != self.settings.get(name)}
        self.exchange.events.emit("reload", changed=changed)

    def _apply_leverage(self, leverage: Decimal) -> None:
        """Set the new leverage at the exchange; if refused (e.g. not enough margin) the old one is kept there."""
        mode = self.settings.MARGIN_MODE
        try:
            self.exchange.set_leverage(leverage, mode)
        except errors.GteError as exc:
            if mode == "isolated":  # set per leg: the long one may have changed before the short one was refused
                try:
                    self.exchange.set_leverage(self.settings.LEVERAGE, mode)
                except errors.GteError as again:
                    log.error("Could not restore leverage %s: %s", format(self.settings.LEVERAGE, "f"), again)
            raise SettingsError(f"the exchange refused leverage {format(leverage, 'f')}: {exc}") from exc
        log.info("Leverage changed to %s (%s)", format(leverage, "f"),
                 "dry run: not sent" if self.settings.DRY_RUN else "applied")

    def _overrides(self) -> Dict[str, object]:
        keep: Dict[str, object] = {**self.set_overrides, "DRY_RUN": self.settings.DRY_RUN}
        if self.strategy_override:
            keep["STRATEGY"] = self.strategy_override
        if self.forced_sim:
            keep["BASE_URL"] = None
        return keep
