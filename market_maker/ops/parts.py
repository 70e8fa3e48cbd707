"""The single bot's operations parts: notifications, a control API (HTTP and Telegram), Prometheus metrics.

Imported only when one of NOTIFY_URLS, CONTROL_ADDRESS, CONTROL_TELEGRAM_CHATS or
METRICS_ADDRESS is set (``cli.run_bot``); each part is built only when its own setting is.
A part that cannot start (a missing extra, a missing token, an address in use) raises a
``SettingsError`` naming the setting: the bot stops at start with exit status 2.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
from typing import Any, Iterator, List, Mapping, Optional

from ..settings import SettingsError
from .state import BotView

log = logging.getLogger("market_maker.ops")

SETTINGS = ("NOTIFY_URLS", "CONTROL_ADDRESS", "CONTROL_TELEGRAM_CHATS", "METRICS_ADDRESS")
EXTRA = "ops"


def require(module: str, setting: str) -> None:
    """Import ``module`` or say which extra installs it (exit status 2 through SettingsError)."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise SettingsError(f"{setting} needs the {module} package: python3 -m pip install "
                            f"'gte-market-maker[{EXTRA}]' (the {EXTRA!r} extra)") from None


class Ops:
    """The parts that are on, started and stopped together."""

    def __init__(self, runner: Any, environ: Optional[Mapping[str, str]] = None):
        self.runner = runner
        self.settings = runner.settings
        self.environ = os.environ if environ is None else environ
        self.view = BotView(runner)
        self.metrics: Any = None
        self.notifier: Any = None
        self.control: Any = None
        self.commands: Any = None
        self.telegram: Any = None
        self._started: List[Any] = []

    def start(self) -> None:
        settings = self.settings
        try:
            if settings.METRICS_ADDRESS is not None:
                require("prometheus_client", "METRICS_ADDRESS")
                from .metrics import Metrics
                self.metrics = Metrics(self.view, settings.METRICS_ADDRESS)
            if settings.NOTIFY_URLS:
                from .notify import Notifier
                self.notifier = Notifier.from_settings(self.view, settings, self.environ)
            if settings.CONTROL_ADDRESS is not None or settings.CONTROL_TELEGRAM_CHATS:
                from .commands import CommandQueue
                self.commands = CommandQueue(self.view)
            if settings.CONTROL_ADDRESS is not None:
                from .control import ControlServer
                self.control = ControlServer.from_settings(self.commands, settings, self.environ)
            if settings.CONTROL_TELEGRAM_CHATS:
                from .telegram import TelegramCommands
                self.telegram = TelegramCommands.from_settings(self.commands, settings, self.environ)
            # The bus builds its events only when a sink listens: the journal's is the one that makes them
            # free for these parts too. Without it they read only what the bot keeps anyway.
            listen = bool(settings.get("JOURNAL_PATH"))
            self.view.instrument(listen)
            for part in (self.metrics, self.control, self.telegram, self.notifier):
                if part is None:
                    continue
                if hasattr(part, "instrument"):
                    part.instrument(listen)
                part.start()
                self._started.append(part)
            if self.commands is not None and self.notifier is not None:
                self.commands.tell = self.notifier.notify
            if self.commands is not None:
                self.runner.before_cycle.append(self.commands.drain)
        except BaseException:
            self.stop()
            raise

    def stop(self, exit_code: Optional[int] = None, error: Optional[BaseException] = None) -> None:
        if self.notifier is not None and self.notifier in self._started and exit_code is not None:
            self.notifier.run_stopped(exit_code, error)
        for part in [*reversed(self._started), *([self.commands] if self.commands is not None else [])]:
            try:
                part.stop()
            except Exception:
                log.exception("Stopping %s failed", type(part).__name__)
        self._started = []


@contextlib.contextmanager
def start_ops(runner: Any, environ: Optional[Mapping[str, str]] = None) -> Iterator[Ops]:
    """The operations parts set on, running for the block; the stop notification tells how it ended."""
    ops = Ops(runner, environ)
    ops.start()
    try:
        yield ops
    except BaseException as exc:
        ops.stop(runner.exit_code if isinstance(exc, KeyboardInterrupt) else 1,
                 None if isinstance(exc, KeyboardInterrupt) else exc)
        raise
    ops.stop(runner.exit_code)
