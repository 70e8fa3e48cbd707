"""One bot process per symbol on one account: start them, watch them, restart a crashed one, and stop
them all when the account as a whole is at risk.

GTE's guidance is one process per contract. The supervisor starts ``python -m market_maker.cli`` once per
symbol of ``SYMBOLS`` with ``SYMBOL``, ``SETTLECURRENCY`` and ``ORDERID_PREFIX`` (the common prefix plus a
per-symbol suffix) set, its output going to ``SUPERVISOR_LOG_DIR/SYMBOL.log``. It reads the account
over REST itself: when the drawdown of a settle currency's equity passes ``MAX_DRAWDOWN`` or the margin in
use passes ``MAX_MARGIN_USAGE`` of it, every bot is sent SIGTERM (each cancels its orders on exit), what is
left is cancelled over REST, and the supervisor exits 3.

A bot that dies (any exit but 0, 2 and 3) has its orders cancelled over REST at once and is restarted
after a backoff of 1 s, 2 s, 4 s... up to ``SUPERVISOR_MAX_BACKOFF``. Exit 0 (stopped on purpose) is
final; 2 (settings refused) and 3 (its own kill switch) stop every bot. On Linux a bot gets SIGTERM when
the supervisor dies, however it dies.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import market_maker

from ..gte.errors import GteError, OrderNotFound
from ..gte.rest import GteRest
from ..gte.signing import Credentials
from ..models import Margin
from ..runner import EXIT_ERROR, EXIT_KILL_SWITCH, EXIT_OK, EXIT_SETTINGS
from ..settings import Settings, SettingsError
from ..sim_launch import exchange_endpoints

log = logging.getLogger("market_maker.supervisor")

MAX_PREFIX = 13  # ORDERID_PREFIX, suffix included
ACCOUNT_CHECK_S = 1.0  # how often the account is read
STABLE_S = 60.0  # a bot that ran this long starts its backoff afresh
STOP_TIMEOUT_S = 30.0  # to cancel and exit after SIGTERM (a bot retries its cancel-all for 15 s), then SIGKILL
POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # prctl(2)


# ----------------------------------------------------------------------------------------------------------------------
# Pure parts


def child_prefixes(prefix: str, symbols: Sequence[str]) -> Dict[str, str]:
    """ORDERID_PREFIX of each symbol's bot: the prefix, the symbol's letters, "-". None is a prefix of another
    (the suffixes hold no "-"), so no bot takes another's orders for its own. Digits when letters collide."""
    room = MAX_PREFIX - len(prefix) - 1
    codes = [re.sub(r"[^A-Za-z0-9]", "", s)[:room] for s in symbols]
    if len(set(codes)) != len(codes) or not all(codes):
        codes = [str(i) for i in range(len(symbols))]
    if room < max(len(c) for c in codes) or room < 1:
        raise SettingsError(f"ORDERID_PREFIX ({prefix!r}) leaves no room for the per-symbol suffix of SYMBOLS: "
                            f"use at most {MAX_PREFIX - 1 - max(len(str(len(symbols) - 1)), 1)} characters")
    return {s: f"{prefix}{c}-" for s, c in zip(symbols, codes)}


def margin_usage(m: Margin) -> Decimal:
    """Margin in use (orders + positions) as a fraction of the equity; infinite when there is no equity."""
    used = m.order_margin + m.pos_margin
    if m.total <= 0:
        return Decimal("Infinity") if used > 0 else Decimal(0)
    return used / m.total


def account_breach(start: Mapping[str, Decimal], margins: Sequence[Margin], max_drawdown: Decimal,
                   max_usage: Decimal) -> Optional[str]:
    """Why the account must stop (None: it need not): a settle currency's equity ``max_drawdown`` or more
    below ``start``, or its margin usage above ``max_usage`` (0 = that check is off)."""
    for m in margins:
        if m.settle_currency not in start:
            continue
        drawdown = start[m.settle_currency] - m.total
        if max_drawdown > 0 and drawdown >= max_drawdown:
            return (f"the account's {m.settle_currency} equity {m.total:f} is {drawdown:f} below its start "
                    f"{start[m.settle_currency]:f} (MAX_DRAWDOWN {max_drawdown:f})")
        usage = margin_usage(m)
        if max_usage > 0 and usage > max_usage:
            return (f"the account's {m.settle_currency} margin in use is {_percent(usage)} of its equity "
                    f"{m.total:f} (MAX_MARGIN_USAGE {_percent(max_usage)})")
    return None


def next_backoff(previous: float, ran_s: float, most: float) -> float:
    """Seconds to wait before restarting a bot that ran ``ran_s`` seconds: 1, 2, 4... up to ``most``; 1 again
    after a stable run."""
    if previous <= 0 or ran_s >= STABLE_S:
        return min(1.0, most)
    return min(previous * 2, most)


def resolve_symbols(listing: Mapping[str, Sequence[str]], symbols: Sequence[str],
                    preferred: str) -> Dict[str, str]:
    """The settle currency of each symbol in the exchange's ``listing`` ({asset: [symbol...]}), the
    ``preferred`` one (SETTLECURRENCY) first. A symbol not listed: a SettingsError naming SYMBOLS."""
    order = sorted(listing, key=lambda a: a != preferred)
    found: Dict[str, str] = {}
    for symbol in symbols:
        asset = next((a for a in order if symbol in listing[a]), None)
        if asset is None:
            listed = ", ".join(sorted({s for a in listing for s in listing[a]})) or "nothing"
            raise SettingsError(f"SYMBOLS: {symbol} is not listed by the exchange (it lists {listed})")
        found[symbol] = asset
    return found


def _percent(x: Decimal) -> str:
    return "infinite" if not x.is_finite() else f"{x * 100:.1f} %"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _term_with_parent() -> Optional[Callable[[], None]]:
    """On Linux: a ``preexec_fn`` that has the kernel send the bot SIGTERM when the supervisor dies (even by
    SIGKILL), so that it cancels its orders and exits rather than trade unsupervised. None elsewhere.

    (Strictly, when the supervisor's thread that started it ends: ``run`` starts every bot from its own
    thread, which outlives them.)"""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def term_with_parent() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # it died before the line above: nobody would send the signal
            os.kill(os.getpid(), signal.SIGTERM)
    return term_with_parent


# ----------------------------------------------------------------------------------------------------------------------
# The supervisor


@dataclass
class Child:
    """One symbol's bot and its restart state."""
    symbol: str
    asset: str
    prefix: str
    log_path: Path
    proc: Optional[subprocess.Popen] = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 0.0
    restart_at: Optional[float] = None
    final: Optional[int] = None  # exit status once it will not be restarted
    log_file: Optional[IO[bytes]] = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def child_ops_settings(settings: Settings, index: int) -> Dict[str, object]:
    """The operations settings of the ``index``-th bot (docs/operations.md): its own control API and metrics
    port, the configured one plus ``index`` (port 0 stays any free port); only the first bot reads Telegram
    commands (a bot token has a single reader of its updates)."""
    changed: Dict[str, object] = {}
    for name in ("CONTROL_ADDRESS", "METRICS_ADDRESS"):
        address = settings[name]
        if address is not None and address[1] and index:
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            changed[name] = f"{host}:{address[1] + index}"
    if index and settings.CONTROL_TELEGRAM_CHATS:
        changed["CONTROL_TELEGRAM_CHATS"] = []
    return changed


class Supervisor:
    """Runs the bots of ``symbols`` (see the module doc). ``run()`` returns the exit status."""

    def __init__(self, settings: Settings, symbols: Mapping[str, str], base_url: str, ws_url: str,
                 api_key: Optional[str], api_secret: Optional[str], *, settings_path: Optional[str] = None,
                 child_args: Sequence[str] = (), python: str = sys.executable,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.base_url, self.ws_url = base_url, ws_url
        self._key, self._secret = api_key, api_secret
        self.settings_path = settings_path
        self.child_args = list(child_args)
        self.python = python
        self.clock = clock
        prefixes = child_prefixes(settings.ORDERID_PREFIX, list(symbols))
        log_dir = Path(settings.SUPERVISOR_LOG_DIR)
        self.children = [Child(s, a, prefixes[s], log_dir / f"{s}.log") for s, a in symbols.items()]
        credentials = Credentials(api_key, api_secret) if api_key and api_secret else None
        self.account = GteRest(base_url, credentials, timeout=settings.TIMEOUT,
                               order_id_prefix=settings.ORDERID_PREFIX, read_only=True)
        self._stop = threading.Event()
        self.start_equity: Dict[str, Decimal] = {}
        self.last_margins: List[Margin] = []
        self.stop_reason: Optional[str] = None
        self._account_failures = 0

    def stop(self, *_: object) -> None:
        """Ask ``run`` to stop every bot and return (a signal handler too)."""
        self._stop.set()

    # -- children

    def _command(self, child: Child) -> List[str]:
        overrides = {"SYMBOL": child.symbol, "SETTLECURRENCY": child.asset, "ORDERID_PREFIX": child.prefix,
                     "SYMBOLS": None, "BASE_URL": self.base_url, "WS_URL": self.ws_url,
                     **child_ops_settings(self.settings, self.children.index(child))}
        cmd = [self.python, "-m", "market_maker.cli"]
        if self.settings_path:
            cmd += ["--settings", self.settings_path]
        for name, value in overrides.items():
            cmd += ["--set", f"{name}={value!r}"]
        return cmd + self.child_args

    def _environment(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.pop("GTE_API_SECRET", None)
        if self._key:
            env["GTE_API_KEY"] = self._key
        if self._secret:
            env["GTE_API_SECRET"] = self._secret  # taken out of its environment by the bot at once
        package_root = str(Path(market_maker.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _start(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        if child.log_file is None:
            child.log_file = open(child.log_path, "ab")
        child.proc = subprocess.Popen(self._command(child), env=self._environment(), stdin=subprocess.DEVNULL,
                                      stdout=child.log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                      preexec_fn=_term_with_parent())
        child.started = self.clock()
        child.restart_at = None
        log.info("Started the %s bot (pid %d, orders %s*, log %s)", child.symbol, child.proc.pid, child.prefix,
                 child.log_path)

    def _watch(self, child: Child) -> Optional[Tuple[int, str]]:
        """Handle a bot that exited; returns (status, reason) when every bot must stop."""
        if child.proc is None or child.final is not None:
            return None
        code = child.proc.poll()
        if code is None:
            return None
        child.proc = None
        ran = self.clock() - child.started
        if code == EXIT_OK:
            child.final = code
            log.info("The %s bot finished (exit status 0)", child.symbol)
            return None
        if code in (EXIT_SETTINGS, EXIT_KILL_SWITCH):
            child.final = code
            what = "refused its settings" if code == EXIT_SETTINGS else "hit its kill switch"
            return code, f"the {child.symbol} bot {what} (exit status {code}; see {child.log_path})"
        child.backoff = next_backoff(child.backoff, ran, float(self.settings.SUPERVISOR_MAX_BACKOFF))
        child.restarts += 1
        child.restart_at = self.clock() + child.backoff
        log.warning("The %s bot died (%s) after %.0f s: cancelling its orders, restarting it in %.0f s "
                    "(restart %d; see %s)", child.symbol, describe_exit(code), ran, child.backoff,
                    child.restarts, child.log_path)
        self._sweep(child)
        return None

    def _sweep(self, child: Child) -> int:
        """Cancel over REST every open order with the bot's prefix; returns how many were open."""
        credentials = self.account.credentials
        if credentials is None or self.settings.DRY_RUN:
            return 0
        with GteRest(self.base_url, credentials, timeout=self.settings.TIMEOUT, order_id_prefix=child.prefix,
                     asset=child.asset, symbol=child.symbol) as rest:
            try:
                orders = [o for o in rest.open_orders() if rest.is_own(o)]
                for order in orders:
                    try:
                        rest.cancel_order(order.order_id)
                    except OrderNotFound:
                        pass  # filled or cancelled meanwhile
            except GteError as exc:
                log.error("Could not cancel the %s bot's orders: %s", child.symbol, exc)
                return -1
        if orders:
            log.info("Cancelled %d open orders the %s bot left", len(orders), child.symbol)
        return len(orders)

    def _left_open(self) -> Optional[List[str]]:
        """client_oid of every open order carrying a bot's prefix (None: cannot tell)."""
        credentials = self.account.credentials
        if credentials is None or self.settings.DRY_RUN:
            return None
        left: List[str] = []
        for child in self.children:
            with GteRest(self.base_url, credentials, timeout=self.settings.TIMEOUT, order_id_prefix=child.prefix,
                         asset=child.asset, symbol=child.symbol) as rest:
                try:
                    left += [o.client_oid for o in rest.open_orders() if rest.is_own(o)]
                except GteError as exc:
                    log.error("Cannot check the %s bot's orders: %s", child.symbol, exc)
                    return None
        return left

    def _stop_all(self, reason: str) -> bool:
        """SIGTERM every bot, wait for it (SIGKILL after STOP_TIMEOUT_S), then cancel what is left over REST.
        True when no order of ours is left open."""
        log.info("Stopping every bot: %s", reason)
        live = [c for c in self.children if c.alive]
        for child in live:
            child.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = self.clock() + STOP_TIMEOUT_S
        for child in live:
            try:
                child.proc.wait(max(0.0, deadline - self.clock()))  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                log.error("The %s bot did not exit in %.0f s: killing it", child.symbol, STOP_TIMEOUT_S)
                child.proc.kill()  # type: ignore[union-attr]
                child.proc.wait()  # type: ignore[union-attr]
            log.info("The %s bot stopped (%s)", child.symbol, describe_exit(child.proc.returncode))  # type: ignore
        for child in self.children:
            child.restart_at = None
            self._sweep(child)
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
        left = self._left_open()
        if left:
            log.error("Orders still open after stopping every bot: %s", ", ".join(left))
        elif left is not None:
            log.info("No order of the bots is left open")
        return not left

    # -- the account

    def _check_account(self) -> Optional[str]:
        if self.account.credentials is None or self.settings.DRY_RUN:
            return None
        assets = {c.asset for c in self.children}
        try:
            margins = [m for m in self.account.pc_accounts() if m.settle_currency in assets]
        except GteError as exc:
            self._account_failures += 1
            if self._account_failures in (1, 10) or self._account_failures % 100 == 0:
                log.warning("Cannot read the account (%d times in a row): %s", self._account_failures, exc)
            return None
        self._account_failures = 0
        self.last_margins = margins
        for m in margins:
            self.start_equity.setdefault(m.settle_currency, m.total)
        return account_breach(self.start_equity, margins, self.settings.MAX_DRAWDOWN, self.settings.MAX_MARGIN_USAGE)

    def status_line(self) -> str:
        """One line: each bot's state, then each settle currency's equity, drawdown and margin usage."""
        now = self.clock()
        parts = []
        for c in self.children:
            if c.alive:
                state = f"up {now - c.started:.0f}s pid {c.proc.pid}"  # type: ignore[union-attr]
            elif c.final is not None:
                state = f"ended ({describe_exit(c.final)})"
            elif c.restart_at is not None:
                state = f"restarting in {max(0.0, c.restart_at - now):.0f}s"
            else:
                state = "stopped"
            parts.append(f"{c.symbol} {state}" + (f", {c.restarts} restarts" if c.restarts else ""))
        for m in self.last_margins:
            start = self.start_equity.get(m.settle_currency, m.total)
            parts.append(f"{m.settle_currency} equity {m.total:f} (drawdown {start - m.total:f}, "
                         f"margin {_percent(margin_usage(m))})")
        return "Supervisor: " + " | ".join(parts)

    # -- the loop

    def run(self, duration: Optional[float] = None) -> int:
        """Start every bot and supervise them until a signal, ``duration``, the account's risk limits or a
        bot's own stop; returns the exit status."""
        installed = self._install_signals()
        try:
            breach = self._check_account()  # the start equity is the account's before any bot trades
            if breach:
                self.stop_reason = breach
                log.error("Account kill switch before any bot started: %s", breach)
                return EXIT_KILL_SWITCH
            for child in self.children:
                self._start(child)
            return self._loop(duration)
        except BaseException as exc:  # a bug of ours or Ctrl-C twice: the bots must not run unsupervised
            self._stop_all(f"the supervisor failed: {type(exc).__name__}: {exc}")
            raise
        finally:
            self._restore_signals(installed)
            self.account.close()

    def _loop(self, duration: Optional[float]) -> int:
        end = None if duration is None else self.clock() + duration
        next_check = next_status = self.clock()
        while True:
            for child in self.children:
                stop = self._watch(child)
                if stop is not None:
                    self.stop_reason = stop[1]
                    self._stop_all(stop[1])
                    return stop[0]
                if child.restart_at is not None and self.clock() >= child.restart_at:
                    self._start(child)
            if all(c.final is not None for c in self.children):
                log.info("Every bot has finished")
                self._stop_all("every bot has finished")
                return EXIT_OK
            now = self.clock()
            if now >= next_check:
                next_check = now + ACCOUNT_CHECK_S
                breach = self._check_account()
                if breach:
                    self.stop_reason = breach
                    log.error("Account kill switch: %s", breach)
                    self._stop_all(breach)
                    return EXIT_KILL_SWITCH
            if now >= next_status:
                next_status = now + float(self.settings.LOOP_INTERVAL)
                log.info(self.status_line())
            if self._stop.is_set() or (end is not None and now >= end):
                self._stop_all("asked to stop" if self._stop.is_set() else "the duration has passed")
                return EXIT_OK
            self._stop.wait(POLL_S)

    def _install_signals(self) -> Dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        saved = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, self.stop)
        return saved

    @staticmethod
    def _restore_signals(saved: Mapping[int, object]) -> None:
        for sig, handler in saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def run_supervisor(settings: Settings, *, settings_path: Optional[str] = None, child_args: Sequence[str] = (),
                   duration: Optional[float] = None) -> int:
    """``python marketmaker --symbols ...``: against the exchange, or one embedded simulator serving every
    symbol (SIM_SYMBOLS, else SYMBOLS with the SIM_ settings); returns the exit status."""
    with contextlib.ExitStack() as stack:
        base_url, ws_url, key, secret = exchange_endpoints(settings, stack, log, every_symbol=True)
        with GteRest(base_url, None, timeout=settings.TIMEOUT) as public:
            try:
                listing = exchange_listing(public)
            except GteError as exc:
                log.error("Cannot read the symbols the exchange lists: %s", exc)
                return EXIT_ERROR
        try:
            symbols = resolve_symbols(listing, settings.SYMBOLS, settings.SETTLECURRENCY)
            supervisor = Supervisor(settings, symbols, base_url, ws_url, key, secret, settings_path=settings_path,
                                    child_args=child_args)
        except SettingsError as exc:
            print(f"marketmaker: bad settings: {exc}", file=sys.stderr)
            return EXIT_SETTINGS
        log.info("Supervising %d bots: %s", len(symbols),
                 ", ".join(f"{c.symbol} ({c.asset}, orders {c.prefix}*)" for c in supervisor.children))
        return supervisor.run(duration)


def exchange_listing(rest: GteRest, attempts: int = 5, wait: float = 1.0) -> Dict[str, List[str]]:
    """{settle asset: [symbol...]} the exchange lists; a few tries while it is unreachable."""
    for attempt in range(attempts):
        try:
            return {asset: list(rest.contracts(asset)) for asset in rest.assets()}
        except GteError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("Cannot read the exchange's symbols yet (%s); trying again", exc)
            time.sleep(wait)
    raise AssertionError("unreachable")


__all__ = ["Supervisor", "account_breach", "child_prefixes", "exchange_listing", "next_backoff",
           "resolve_symbols", "run_supervisor"]
