"""Operator commands, handed from the control API's thread (or Telegram's) to the manager's thread.

``submit`` queues a command and wakes the bot; the runner calls ``drain`` before each
decision (``Runner.before_cycle``), so every REST call happens in the manager's thread, one
at a time with its decisions. ``/status`` needs no queue: it reads what the bot keeps.
"""
from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from typing import Any, Callable, Dict, Optional

from ..gte import errors
from .flatten import Flatten
from .state import BotView

log = logging.getLogger("market_maker.ops")

NAMES = ("pause", "resume", "cancel-all", "flatten", "reload")
OPERATOR_PAUSE = "paused by the operator"
MAX_QUEUED = 32


class Busy(Exception):
    """Too many commands waiting for the bot."""


class CommandQueue:
    def __init__(self, view: BotView):
        self.view = view
        self.queue: "queue.Queue[tuple]" = queue.Queue(MAX_QUEUED)
        self.flatten: Optional[Flatten] = None
        self._timer: Optional[threading.Timer] = None
        self.tell: Callable[[str, str], None] = lambda text, kind: None  # the notifier's, when it is on

    def submit(self, name: str, source: str) -> "concurrent.futures.Future[Dict[str, Any]]":
        """Queue ``name`` (one of NAMES); the future holds its result once the manager ran it."""
        if name not in NAMES:
            raise ValueError(name)
        future: "concurrent.futures.Future[Dict[str, Any]]" = concurrent.futures.Future()
        try:
            self.queue.put_nowait((name, source, future))
        except queue.Full:
            raise Busy(f"{MAX_QUEUED} commands already wait for the bot") from None
        self.view.exchange.wake()
        return future

    def status(self) -> Dict[str, Any]:
        return self.view.status()

    # -- in the manager's thread
    def drain(self) -> None:
        while True:
            try:
                name, source, future = self.queue.get_nowait()
            except queue.Empty:
                break
            if not future.set_running_or_notify_cancel():
                continue
            log.info("Operator command from %s: %s", source, name)
            self.tell(f"Operator command from {source}: {name}", "command")
            try:
                result = self.run(name)
            except errors.AuthenticationError as exc:
                future.set_result({"ok": False, "error": str(exc)})
                raise
            except Exception as exc:  # an exchange error, a bug: told to the caller, the bot goes on
                log.error("Operator command %s failed: %s", name, exc)
                future.set_result({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            else:
                future.set_result({"ok": True, **result})
        if self.flatten is not None:
            self._advance_flatten()

    def run(self, name: str) -> Dict[str, Any]:
        runner, exchange = self.view.runner, self.view.exchange
        if name == "pause":
            self._stop_flatten()
            runner.held = OPERATOR_PAUSE
            cancelled = exchange.cancel_all_own(OPERATOR_PAUSE)
            exchange.events.emit("pause", reason=OPERATOR_PAUSE, cancel=True)
            return {"paused": True, "cancelled": cancelled}
        if name == "resume":
            self._stop_flatten()
            was, runner.held = runner.held, None
            if was:
                exchange.events.emit("pause", reason=None, cancel=False)
                log.info("Resuming: the operator's pause is over")
            return {"paused": False, "was": was}
        if name == "cancel-all":
            cancelled = exchange.cancel_all_own("cancel-all by the operator")
            return {"cancelled": cancelled, "paused": runner.held,
                    "note": "the bot quotes again at its next decision unless paused"}
        if name == "flatten":
            self._stop_flatten()
            flatten = Flatten(self.view)  # refused on a book with an empty side: nothing changed then
            runner.held = "flattening (operator)"
            exchange.events.emit("pause", reason=runner.held, cancel=True)
            exchange.cancel_all_own("flatten")
            self.flatten = flatten
            self.view.flatten_state = self.flatten.state
            self._advance_flatten()
            return {"flatten": dict(self.flatten.state) if self.flatten else dict(self.view.flatten_state or {})}
        if name == "reload":
            return {"reloaded": runner.reload()}
        raise ValueError(name)

    def _advance_flatten(self) -> None:
        assert self.flatten is not None
        if self.flatten.advance():
            state = self.flatten.state["state"]
            self.view.runner.held = f"flatten {state} (operator): resume to quote again"
            self.tell(f"Flatten {state}: net position {self.flatten.state['net']:+d} (from "
                      f"{self.flatten.state['start_net']:+d}); paused until resumed", "flatten")
            self.flatten = None
            return
        # the loop may sleep LOOP_INTERVAL between decisions on a quiet market: wake it for the next step
        if self._timer is None or not self._timer.is_alive():
            self._timer = threading.Timer(self.flatten.step_s / 2, self.view.exchange.wake)
            self._timer.daemon = True
            self._timer.start()

    def _stop_flatten(self) -> None:
        if self.flatten is not None:
            self.flatten.abort()
            self.flatten = None

    def stop(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
        while True:  # whoever waits for a command still queued is told
            try:
                _, _, future = self.queue.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_result({"ok": False, "error": "the bot stopped"})
