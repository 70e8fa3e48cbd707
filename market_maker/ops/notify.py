"""Notifications: what happened, posted to Discord, Slack, Telegram or a JSON webhook.

Nothing here runs on the decision path: ``notify`` and the event sink only append to a
channel's pending list. Each channel has a worker thread that posts, at most once every
NOTIFY_MIN_INTERVAL seconds -- what arrives meanwhile is sent together in one post -- and
retries a failed post (5xx, 429, no answer) with doubling backoff. A webhook URL or token
never appears in a payload or a log line: failures are logged by channel label, HTTP status
and exception class only.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Dict, List, Mapping, Optional, Sequence

import requests

from ..events import Event
from ..log import RedactSecrets, register_secret
from ..settings_file import redact
from .channels import Channel, channels_from
from .state import BotView, money
from .watch import Facts, Limits, Watch

log = logging.getLogger("market_maker.ops")

POLL_S = 1.0  # how often the watched facts are read
MAX_PENDING = 500  # per channel; beyond it the oldest are dropped (counted)
STOP_FLUSH_S = 5.0  # at stop, how long the last posts may take


class ChannelWorker:
    """Posts one channel's messages from a thread of its own, rate-limited, coalesced, retried."""

    def __init__(self, channel: Channel, min_interval: float, source: str = "", *, tries: int = 5,
                 backoff: float = 1.0, max_backoff: float = 60.0, timeout: float = 10.0,
                 session: Optional[requests.Session] = None):
        self.channel = channel
        self.min_interval = min_interval
        self.source = source
        self.tries, self.backoff, self.max_backoff, self.timeout = tries, backoff, max_backoff, timeout
        self.session = session or requests.Session()
        self.session.trust_env = False
        self.pending: List[Dict[str, Any]] = []
        self.stats: Counter = Counter()
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._next_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"notify-{channel.label}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, text: str, kind: str, ts: float) -> None:
        with self._cond:
            self.pending.append({"kind": kind, "text": text, "ts": ts})
            if len(self.pending) > MAX_PENDING:
                del self.pending[0]
                self.stats["dropped"] += 1
            self._cond.notify()

    def stop(self, flush_s: float = STOP_FLUSH_S) -> None:
        """Send what is pending at once (rate limit waived), for at most ``flush_s``; then end the thread."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + flush_s
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(flush_s + self.timeout)

    def _wait(self, seconds: float) -> None:
        """Sleep, unless stopping (then only until the flush deadline)."""
        with self._cond:
            end = min(time.monotonic() + seconds, self._deadline)
            while not self._stopping and time.monotonic() < end:
                self._cond.wait(end - time.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self.pending and not self._stopping:
                    self._cond.wait()
                while not self._stopping and time.monotonic() < self._next_at:  # rate limit: others pile up
                    self._cond.wait(self._next_at - time.monotonic())
                batch, self.pending = self.pending, []
                if not batch and self._stopping:
                    return
            self._deliver(batch)
            self._next_at = time.monotonic() + self.min_interval

    def _deliver(self, batch: Sequence[Dict[str, Any]]) -> None:
        post = self.channel.post(coalesce(batch), batch, self.source)
        label = self.channel.label
        for attempt in range(1, self.tries + 1):
            if time.monotonic() >= self._deadline:
                log.error("Notification to %s given up at stop: %d messages lost", label, len(batch))
                break
            wait = min(self.backoff * 2 ** (attempt - 1), self.max_backoff)
            try:
                timeout = max(0.1, min(self.timeout, self._deadline - time.monotonic()))
                resp = self.session.post(post.url, json=post.json, headers=post.headers, timeout=timeout)
            except requests.RequestException as exc:  # its text may hold the URL: only the class is logged
                why = f"no answer ({type(exc).__name__})"
            else:
                if resp.status_code < 300:
                    self.stats["posts"] += 1
                    self.stats["messages"] += len(batch)
                    return
                why = f"HTTP {resp.status_code}"
                if resp.status_code == 429:
                    wait = max(wait, _retry_after(resp))
                elif resp.status_code < 500:
                    self.stats["refused"] += 1
                    log.error("Notification to %s refused (%s); not retried", label, why)
                    return
            if attempt == self.tries:
                log.error("Notification to %s failed (%s); given up after %d tries: %d messages lost", label, why,
                          attempt, len(batch))
                break
            self.stats["retries"] += 1
            log.warning("Notification to %s failed (%s); retry %d/%d in %.1fs", label, why, attempt,
                        self.tries - 1, wait)
            self._wait(wait)
        self.stats["lost"] += len(batch)


def _retry_after(resp: requests.Response) -> float:
    try:
        return min(float(resp.headers.get("Retry-After", "0")), 300.0)
    except ValueError:
        return 0.0


def hide_in_http_logs() -> None:
    """urllib3 logs each request's path at DEBUG: a webhook's or Telegram's path holds its secret."""
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())


def coalesce(batch: Sequence[Mapping[str, Any]]) -> str:
    """One text for messages sent together; repeats are counted, not repeated."""
    counts: Dict[str, int] = {}
    for item in batch:
        counts[item["text"]] = counts.get(item["text"], 0) + 1
    lines = [text if n == 1 else f"{text} (x{n})" for text, n in counts.items()]
    return lines[0] if len(lines) == 1 else "\n".join(f"- {line}" for line in lines)


class Notifier:
    """Event sink and watcher of the bot's facts; hands messages to the channel workers."""

    def __init__(self, view: BotView, channels: Sequence[Channel], worker_options: Optional[dict] = None):
        self.view = view
        settings = view.settings
        self.prefix = f"[{settings.SYMBOL} {view.exchange.run_tag}] "
        self.workers = [ChannelWorker(c, settings.NOTIFY_MIN_INTERVAL, source=f"gte-market-maker {settings.SYMBOL}",
                                      **(worker_options or {})) for c in channels]
        hide_in_http_logs()
        self.hidden: List[str] = [v for v in (settings.API_KEY, settings.API_SECRET) if v]
        for channel in channels:
            for secret in channel.secrets:
                register_secret(secret)
                self.hidden.append(secret)
        self.watch = Watch(self._limits(), time.time())
        self._events: List[Event] = []
        self._events_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="notify-watch", daemon=True)
        self.told_kill_switch = False
        self._kill_lock = threading.Lock()  # the watcher thread and the stop may both want to tell it

    @classmethod
    def from_settings(cls, view: BotView, settings: Any, environ: Mapping[str, str]) -> "Notifier":
        return cls(view, channels_from(settings.NOTIFY_URLS, environ, settings.TELEGRAM_API_URL))

    def _limits(self) -> Limits:
        s = self.view.settings  # read again on each poll: a reload may change the thresholds
        return Limits(ws_down_s=s.NOTIFY_WS_DOWN_SECONDS, resync_storm=s.NOTIFY_RESYNC_STORM,
                      reject_burst=s.NOTIFY_REJECT_BURST, min_position=s.MIN_POSITION, max_position=s.MAX_POSITION,
                      check_position=s.CHECK_POSITION_LIMITS, max_drawdown=s.MAX_DRAWDOWN,
                      fractions=s.NOTIFY_DRAWDOWN_FRACTIONS, daily_hour=s.NOTIFY_DAILY_UTC_HOUR)

    # -- giving messages
    def notify(self, text: str, kind: str = "info") -> None:
        """Queue ``text`` on every channel; returns at once."""
        text = redact(text, self.hidden)  # an exception's text could quote one
        log.info("Notifying: %s", text)
        ts = time.time()
        for worker in self.workers:
            worker.put(self.prefix + text, kind, ts)

    def handle(self, event: Event) -> None:
        """Event sink (any thread): kept for the watcher thread; nothing else done here."""
        if event.kind == "kill_switch":
            with self._events_lock:
                self._events.append(event)

    # -- lifecycle
    def instrument(self, listen: bool = False) -> None:
        """``listen``: take the kill switch from the bus as it happens (else it is told at the stop)."""
        if listen:
            self.view.exchange.events.subscribe(self)

    def start(self) -> None:
        for worker in self.workers:
            worker.start()
        self._thread.start()
        s = self.view.settings
        mode = "dry run" if s.DRY_RUN else "live"
        self.notify(f"Started ({mode}, {s.ORDER_PAIRS} order pairs, MAX_DRAWDOWN {money(s.MAX_DRAWDOWN)} "
                    f"{s.SETTLECURRENCY})", "run_start")

    def run_stopped(self, exit_code: int, error: Optional[BaseException] = None) -> None:
        """The stop notification with the summary (and the kill switch or the fatal error, if that ended it)."""
        self._check_events()
        c = self.view.settings.SETTLECURRENCY
        if exit_code == 3 and self._first_kill_switch():
            pnl = self.view.pnl()
            self.notify(f"Kill switch: equity {money(pnl['equity'])} {c} from {money(pnl['start_equity'])} {c} "
                        f"(MAX_DRAWDOWN {money(self.view.settings.MAX_DRAWDOWN)}); orders cancelled, the bot stops",
                        "kill_switch")
        if error is not None:
            self.notify(f"Fatal error: {type(error).__name__}: {error}", "error")
        elif exit_code not in (0, 3):
            self.notify(f"Stopped on an error (exit status {exit_code}); see the log", "error")
        summary = self.view.summary()
        pnl, orders = summary["pnl"], summary["orders"]
        self.notify(f"Stopped (exit status {exit_code}) after {summary['ran_s']}s: {orders['sent']} orders sent, "
                    f"{orders['cancelled']} cancelled, {orders['rejected']} refused; {summary['fills']} fills, "
                    f"{summary['contracts_traded']} contracts; realised PnL {pnl['realised']} {c}, fees {pnl['fees']} "
                    f"{c}; net position {summary['net_position']}", "run_stop")

    def _first_kill_switch(self) -> bool:
        with self._kill_lock:
            first, self.told_kill_switch = not self.told_kill_switch, True
        return first

    def stop(self) -> None:
        self._stop.set()
        self.view.exchange.events.unsubscribe(self)
        if self._thread.is_alive():
            self._thread.join(5)
        for worker in self.workers:
            worker.stop()

    # -- the watcher thread
    def _poll(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self._check_events()
                self.watch.limits = self._limits()
                facts = self.facts()
                if facts is not None:
                    for text in self.watch.observe(facts, time.monotonic(), time.time()):
                        self.notify(text, "watch")
            except Exception:  # a watcher must never die of a bug: log and go on
                log.exception("Notification watcher failed; going on")

    def _check_events(self) -> None:
        with self._events_lock:
            events, self._events = self._events, []
        for event in events:
            f = event.fields
            if event.kind == "kill_switch" and self._first_kill_switch():
                c = self.view.settings.SETTLECURRENCY
                self.notify(f"Kill switch: equity {money(f.get('equity'))} {c} from {money(f.get('start_equity'))} "
                            f"{c} (MAX_DRAWDOWN {money(f.get('limit'))}); cancelling all orders and stopping",
                            "kill_switch")

    def facts(self) -> Optional[Facts]:
        view = self.view
        snap = view.manager.snap
        if snap is None:
            return None
        pnl = view.pnl()
        ws_stats = view.exchange.ws.stats if hasattr(view.exchange.ws, "stats") else {}
        manager = view.manager
        return Facts(connected=bool(snap.connected), resyncs=ws_stats.get("resyncs", 0),
                     rejected=view.exchange.counters.get("orders_rejected", 0), net=snap.positions.net,
                     drawdown=pnl["drawdown"], currency=view.settings.SETTLECURRENCY, realised=pnl["realised"],
                     unrealised=pnl["unrealised"], fees=pnl["fees"], equity=pnl["equity"],
                     fills=snap.fill_count - manager.start_fills,
                     contracts=snap.contracts_traded - manager.start_traded)
