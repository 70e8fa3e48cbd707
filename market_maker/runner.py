"""Running the manager: the loop, hot reload of settings and strategy, the exit path.

``Runner`` owns the exchange connection across reloads and drives the manager's
decisions; the command line (``cli.py``) builds one and runs it.
"""
from __future__ import annotations

import importlib
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Type

from . import quoting
from .gte import errors
from .heap import freeze_startup_heap
from .market_maker import ExchangeInterface, KillSwitch, OrderManager
from .settings import Settings, SettingsError, load_settings

log = logging.getLogger("market_maker.manager")

EXIT_OK, EXIT_ERROR, EXIT_SETTINGS, EXIT_KILL_SWITCH = 0, 1, 2, 3
RESTART_REQUIRED = ("BASE_URL", "WS_URL", "API_KEY", "API_SECRET", "SYMBOL", "SETTLECURRENCY", "INSTRUMENTTYPE",
                    "DRY_RUN", "ORDERID_PREFIX", "TIMEOUT", "WS_PING_INTERVAL", "WS_SILENCE_TIMEOUT")


def load_strategy(spec: Optional[str]) -> Type[OrderManager]:
    """'module:Class' -> the class; empty -> OrderManager."""
    if not spec:
        return OrderManager
    module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, OrderManager)):
        raise SettingsError(f"STRATEGY = {spec!r}: {class_name} is not an OrderManager subclass in {module_name}")
    return cls


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
                 strategy_override: Optional[str] = None, forced_sim: bool = False):
        self.settings = settings
        self.forced_sim = forced_sim  # --sim: reloads keep trading on the embedded simulator
        self.exchange = exchange
        self.manager = manager_cls(settings, exchange)
        self.duration = duration
        self.settings_path = settings_path
        self.strategy_override = strategy_override
        self.stop_event = threading.Event()
        self.exit_code = EXIT_OK
        self.watcher = FileWatcher(self.watched_files(settings, manager_cls))

    @staticmethod
    def watched_files(settings: Settings, manager_cls: Type[OrderManager]) -> List[str]:
        if settings.WATCHED_FILES is not None:
            return list(settings.WATCHED_FILES)
        files = [str(settings.source)] if settings.source else []
        module_file = getattr(sys.modules.get(manager_cls.__module__), "__file__", None)
        if manager_cls is not OrderManager and module_file:
            files.append(module_file)
        return files

    def stop(self, *_: object) -> None:
        self.stop_event.set()
        self.exchange.wake()

    def run(self) -> int:
        started = time.monotonic()
        try:
            self.exchange.connect()
        except BaseException:
            self.exchange.close()
            raise
        self.manager.start(fresh=True)
        freeze_startup_heap()
        next_status = time.monotonic() + self.settings.LOOP_INTERVAL
        try:
            while not self.stop_event.is_set():
                if self.duration is not None and time.monotonic() - started >= self.duration:
                    log.info("Duration of %.0fs elapsed", self.duration)
                    break
                timeout = max(0.0, next_status - time.monotonic())
                if self.duration is not None:
                    timeout = min(timeout, max(0.0, self.duration - (time.monotonic() - started)))
                kinds = self.exchange.wait_for_events(timeout)
                if kinds and self.settings.REQUOTE_DEBOUNCE_MS:
                    self.stop_event.wait(self.settings.REQUOTE_DEBOUNCE_MS / 1000)
                if self.stop_event.is_set():
                    break
                self.check_reload()
                self.cycle()
                if time.monotonic() >= next_status:
                    self.manager.print_status()
                    next_status = time.monotonic() + self.settings.LOOP_INTERVAL
        except KillSwitch as exc:
            log.error("Kill switch: %s. Cancelling all orders and exiting.", exc)
            self.exit_code = EXIT_KILL_SWITCH
        except errors.AuthenticationError as exc:
            log.error("Authentication failed: %s", exc)
            self.exit_code = EXIT_ERROR
        finally:
            self.manager.exit()
            self.exchange.close()
        return self.exit_code

    def cycle(self) -> None:
        try:
            self.manager.step()
        except (KillSwitch, errors.AuthenticationError):
            raise
        except errors.GteError as exc:
            log.warning("Exchange error, retrying in %ss: %s", self.settings.API_ERROR_INTERVAL, exc)
            self.stop_event.wait(self.settings.API_ERROR_INTERVAL)
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
            settings = load_settings(self.settings_path, overrides=self._overrides())
            for name in RESTART_REQUIRED:
                if settings[name] != self.settings[name]:
                    raise SettingsError(f"changing {name} needs a restart")
            spec = self.strategy_override or settings.STRATEGY
            if spec:
                module = sys.modules.get(spec.partition(":")[0])
                if module is not None:
                    importlib.reload(module)
            manager_cls = load_strategy(spec)
            manager = manager_cls(settings, self.exchange)
        except Exception as exc:  # a broken reload must never stop a running bot
            log.error("Reload rejected, keeping the running settings: %s", exc)
            return False
        old = self.manager
        manager.start_time, manager.start_equity = old.start_time, old.start_equity
        manager.start_realised, manager.start_traded = old.start_realised, old.start_traded
        manager.start_fills, manager.start_fees = old.start_fills, old.start_fees
        manager.start_maker_fills = old.start_maker_fills
        self.settings, self.manager = settings, manager
        self.watcher = FileWatcher(self.watched_files(settings, manager_cls))
        log.info("Reloaded: %s with the new settings", manager_cls.__name__)
        return True

    def _overrides(self) -> Dict[str, object]:
        keep = {"DRY_RUN": self.settings.DRY_RUN}
        if self.strategy_override:
            keep["STRATEGY"] = self.strategy_override
        if self.forced_sim:
            keep["BASE_URL"] = None
        return keep
