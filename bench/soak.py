#!/usr/bin/env python3
"""Chaos soak: the real bot against the in-process simulator with every fault on.

  python bench/soak.py --minutes 10        # the full soak
  python bench/soak.py --seconds 60        # a short one (part of the test suite)
  python bench/soak.py --seconds 60 --seed 7

The simulator runs in-process (its own loop thread) with market flow and, at
realistic rates: a WebSocket disconnect every ~45 s, 2 % of pushes dropped, 1 %
duplicated, 3 % of REST calls answered 5xx, 1 % of creates executed with the
answer lost, 1 % of creates executed late (held 1.5-4 s after arrival: past the
bot's 1 s TIMEOUT, before the 5 s api-expires its client signs), a forced -10053
burst every ~2 minutes (3 s long) and REST latency of 5-50 ms. For runs shorter than 6 minutes the two periodic faults are brought
forward (burst every min(120, T/2) s, disconnect every min(45, T/3) s) so that
every fault kind happens at least once.

The bot (``OrderManager`` through ``build_runner``, ORDER_PAIRS 10, TIMEOUT 1 s) runs in a
thread for the duration. A monitor thread reads the SIMULATOR's state (never
the bot's, except to compare with it) and checks, every 0.25 s and at the end:

* duplicate_order: a client_oid executed twice (two orders at the exchange), or two
  own open orders at one side, price and close_flag (checked after every placement);
* too_many_open: more than 2 x ORDER_PAIRS own open orders (checked after every
  order placement at the exchange, by wrapping the simulator's place_order);
* resync_mismatch: within RESYNC_WINDOW_S after each "synced" event of the
  bot's WebSocket client, its long/short position qty and open order ids must
  equal the simulator's at least once (compared at a quiet moment: retried); a push
  lost at the end of a quiet table cannot be seen by sequence numbers, so a view still
  wrong then gets AUDIT_BOUND_S more (the bot's order audit must set it right: counted
  as a late agreement), and is a violation after that;
* unhandled_exception: threading.excepthook, or an ERROR log record carrying
  exc_info / a traceback, in any thread (bot, client, simulator);
* quote_gap: the longest interval with zero own open orders at the exchange
  (while the bot runs) must stay under QUOTE_GAP_BOUND_S, derived below;
* open_after_exit: own open orders left at the exchange after the bot exited;
* memory_growth: RSS growth >= 20 MB between minute 1 (25 % for runs shorter
  than 2 minutes) and the end;
* secret_in_logs / signature_in_logs: the captured DEBUG logs of the whole soak
  (bot, client, simulator, aiohttp, urllib3, websocket) contain the API secret
  or a signature the client produced (every one is recorded by wrapping
  ``signing.rest_signature`` / ``ws_signature``);
* bad_auth: a bot started (as the real ``marketmaker`` command) with a WRONG
  secret must exit with status 1, log "Authentication failed", within 15 s.

Quote-gap bound. The bot keeps quotes up except (a) while its socket is down:
it cancels everything, reconnects (first attempt after 0.25-0.5 s, a failed
attempt adds up to 1 s more), resubscribes, waits for every partial and
reconciles the order table over REST (~0.5 s on loopback, more with 5-50 ms
latency and 5xx retries), then requotes after the debounce and
API_REST_INTERVAL; (b) when a REST call of a cycle fails after its retries (a
5xx run or a -10053 burst of 3 s outlasting the 0.25+0.5+1 s retry schedule),
the cycle waits API_ERROR_INTERVAL (5 s) before trying again. Both can stack
once: 1.5 (reconnect) + 3 (resync incl. REST reconciliation under faults) +
5 (API_ERROR_INTERVAL) + 3 (burst) + 1.5 (requote 20 orders) = 14 s. Longer
gaps are flagged.

Exit status: 0 when every invariant held, 1 otherwise.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from market_maker.gte import signing  # noqa: E402
from market_maker.gte import ws_session as ws_module  # noqa: E402
from market_maker.cli import build_runner  # noqa: E402
from market_maker.exchange_interface import AUDIT_CONFIRM_S, ORDER_AUDIT_S  # noqa: E402
from market_maker.market_maker import OrderManager  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402
from market_maker.sim import SimConfig, run_simulator  # noqa: E402

ORDER_PAIRS = 10
MAX_OPEN = 2 * ORDER_PAIRS
CHECK_EVERY_S = 0.25
RESYNC_WINDOW_S = 2.0
# an undetectable lost push (the last message of a quiet table) is set right by the bot's order audit
# (ORDER_AUDIT_S, confirmed AUDIT_CONFIRM_S later, then a resync) or the position push of the exchange
AUDIT_BOUND_S = ORDER_AUDIT_S + AUDIT_CONFIRM_S + 2.0
QUOTE_GAP_BOUND_S = 14.0
MEMORY_BOUND_MB = 20.0
BAD_AUTH_BOUND_S = 15.0
BURST_EVERY_S, BURST_LENGTH_S = 120, 3
DISCONNECT_EVERY_S = 45
BOT_TIMEOUT_S = 1
# late creates: held past the bot's TIMEOUT, executed before the api-expires (now + 5 s) its client signs
LATE_CREATE_RATE, LATE_CREATE_MS = Decimal("0.01"), (1500, 4000)

BOT_SETTINGS = dict(
    ORDER_PAIRS=ORDER_PAIRS, INTERVAL=Decimal("0.002"), MIN_SPREAD=Decimal("0.002"),
    RELIST_INTERVAL=Decimal("0.002"), LOOP_INTERVAL=5, ORDER_START_SIZE=50, ORDER_STEP_SIZE=25,
    LEVERAGE=Decimal("10"), LOG_LEVEL="DEBUG", API_REST_INTERVAL=0.25, API_ERROR_INTERVAL=5,
    TIMEOUT=BOT_TIMEOUT_S,
)
VIOLATION_KINDS = ("duplicate_order", "too_many_open", "resync_mismatch", "unhandled_exception", "quote_gap",
                   "open_after_exit", "memory_growth", "secret_in_logs", "signature_in_logs", "bad_auth",
                   "bot_exit_status")
HEX64 = re.compile(r"[0-9a-f]{64}")


def mb(n: float) -> float:
    return n / (1 << 20)


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


# ----------------------------------------------------------------------------------------------------------------------
# Capture: logs into a file buffer, exceptions, signatures


class Capture(logging.Handler):
    """Every log record of the process, formatted at DEBUG into a temp file; flags tracebacks."""

    def __init__(self, report: Callable[[str, str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.file = tempfile.TemporaryFile(mode="w+", encoding="utf-8", prefix="soak-log-")
        self.lock_ = threading.Lock()
        self.report = report
        self.records = 0
        self.errors = 0
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # includes the formatted traceback of exc_info
        except Exception:
            text = f"<unformattable record {record.name}>"
        with self.lock_:
            self.records += 1
            self.file.write(text + "\n")
        if record.levelno >= logging.ERROR:
            self.errors += 1
            if record.exc_info or "Traceback" in text:
                self.report("unhandled_exception", f"{record.name}: {record.getMessage()[:200]}")

    def lines(self):
        with self.lock_:
            self.file.flush()
            self.file.seek(0)
            for line in self.file:
                yield line
            self.file.seek(0, os.SEEK_END)


class Signatures:
    """Records every signature the client computes (wrapping the signing functions)."""

    def __init__(self) -> None:
        self.seen: Set[bytes] = set()
        self.count = 0
        self._lock = threading.Lock()
        self._undo: List[Tuple[Any, str, Any]] = []

    def _wrap(self, fn: Callable[..., str]) -> Callable[..., str]:
        def wrapped(*args: Any, **kwargs: Any) -> str:
            sig = fn(*args, **kwargs)
            with self._lock:
                self.count += 1
                self.seen.add(bytes.fromhex(sig))
            return sig
        return wrapped

    def install(self) -> None:
        for module, name in ((signing, "rest_signature"), (signing, "ws_signature"), (ws_module, "ws_signature")):
            original = getattr(module, name)
            self._undo.append((module, name, original))
            setattr(module, name, self._wrap(original))

    def uninstall(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()

    def __contains__(self, hex_text: str) -> bool:
        return bytes.fromhex(hex_text) in self.seen


# ----------------------------------------------------------------------------------------------------------------------
# The soak


class Soak:
    def __init__(self, seconds: float, seed: int, quiet: bool = False, log_file: Optional[str] = None) -> None:
        self.log_file = log_file
        self.seconds = seconds
        self.seed = seed
        self.quiet = quiet
        self.violations: Counter = Counter()
        self.examples: Dict[str, List[str]] = {}
        self._vlock = threading.Lock()
        self.capture = Capture(self.violation)
        self.signatures = Signatures()
        # simulator-side observations
        self.oid_to_order: Dict[str, str] = {}
        self.last_order_id: Optional[str] = None
        self.max_open = 0
        self.longest_gap = 0.0
        self.gap_at = 0.0
        self._zero_since: Optional[float] = None
        self.resync_checks = 0
        self.late_agreements = 0  # views that agreed only after the audit bound (a lost push seq could not show)
        self.resync_retries_max = 0
        self.resync_slowest = 0.0
        self._sync_events: List[float] = []
        self._sync_lock = threading.Lock()
        self.ws_events: Counter = Counter()

    # -- bookkeeping
    def violation(self, kind: str, detail: str) -> None:
        with self._vlock:
            self.violations[kind] += 1
            examples = self.examples.setdefault(kind, [])
            if len(examples) < 5:
                examples.append(detail)
        if not self.quiet:
            print(f"VIOLATION {kind}: {detail}", file=sys.stderr, flush=True)

    def log(self, text: str) -> None:
        if not self.quiet:
            print(f"[soak {time.monotonic() - self.t0:6.1f}s] {text}", file=sys.stderr, flush=True)

    # -- configuration
    def sim_config(self) -> SimConfig:
        burst_every = BURST_EVERY_S if self.seconds >= 360 else max(10, min(BURST_EVERY_S, int(self.seconds / 2)))
        disconnect_every = DISCONNECT_EVERY_S if self.seconds >= 360 else max(
            10, min(DISCONNECT_EVERY_S, int(self.seconds / 3)))
        # the market of the bot's embedded simulator (SIM_* settings: volatility, takers, depth) plus faults
        return SimConfig.from_settings(load_settings(None, overrides=BOT_SETTINGS, environ={},
                                                     cwd=Path(tempfile.gettempdir())),
                         host="127.0.0.1", port=0, seed=self.seed, flow=True, api_key=None, api_secret=None,
                         funding_interval_s=28800,
                         fault_ws_disconnect_every_s=Decimal(disconnect_every),
                         fault_drop_rate=Decimal("0.02"), fault_dup_rate=Decimal("0.01"),
                         fault_5xx_rate=Decimal("0.03"), fault_lost_response_rate=Decimal("0.01"),
                         fault_rate_limit_every_s=Decimal(burst_every),
                         fault_rate_limit_duration_s=Decimal(BURST_LENGTH_S),
                         fault_latency_ms=(5, 50),
                         fault_late_create_rate=LATE_CREATE_RATE, fault_late_create_ms=LATE_CREATE_MS)

    def bot_settings(self, sim: Any, secret: Optional[str] = None, cwd: Optional[Path] = None) -> Any:
        overrides = dict(BOT_SETTINGS, BASE_URL=sim.base_url, WS_URL=sim.ws_url, API_KEY=sim.api_key,
                         API_SECRET=secret or sim.api_secret)
        return load_settings(None, overrides=overrides, environ={}, cwd=cwd or Path(tempfile.gettempdir()))

    # -- simulator probes (run on the simulator's loop thread)
    def _wrap_place_order(self, sim: Any) -> None:
        """Exact peak of own open orders: check right after every order the exchange accepts."""
        ex = sim.exchange
        original = getattr(ex, "place_order", None)
        if original is None:
            return
        account_id = sim.account_id

        def place_order(account, *args: Any, **kwargs: Any):
            row = original(account, *args, **kwargs)
            if account == account_id:
                levels = Counter((r["side"], r["price"], r["close_flag"]) for r in ex.open_orders_of(account_id))
                twice = [level for level, n in levels.items() if n > 1]
                if twice:  # e.g. a create that executed late beside the one sent again
                    self.violation("duplicate_order", f"two own open orders at side/price/close_flag {twice[0]}")
                count = len(ex.open_order_ids(account_id))
                if count > self.max_open:
                    self.max_open = count
                if count > MAX_OPEN:
                    self.violation("too_many_open", f"{count} own open orders after placing "
                                   f"{row.get('client_oid')} at {row.get('price')} side {row.get('side')}")
            return row
        ex.place_order = place_order

    def probe(self, sim: Any) -> Dict[str, Any]:
        account_id = sim.account_id

        def run(ex: Any) -> Dict[str, Any]:
            new = ex.query_orders(account_id, None, None, None, self.last_order_id, None, 10 ** 9) \
                if self.last_order_id is not None else ex.query_orders(account_id, None, None, None, None, None,
                                                                       10 ** 9)
            open_ids = ex.open_order_ids(account_id)
            positions = {int(r["side"]): int(r["qty"]) for r in ex.position_rows(account_id)}
            return {"new": [(r["order_id"], r["client_oid"]) for r in new], "open": open_ids,
                    "positions": (positions.get(1, 0), positions.get(0, 0))}
        return sim.call(run)

    def check_sim(self, sim: Any, running: bool) -> Dict[str, Any]:
        state = self.probe(sim)
        for order_id, client_oid in state["new"]:
            if self.last_order_id is None or int(order_id) > int(self.last_order_id):
                self.last_order_id = order_id
            if not client_oid:
                continue
            known = self.oid_to_order.setdefault(client_oid, order_id)
            if known != order_id:
                self.violation("duplicate_order", f"client_oid {client_oid} -> orders {known} and {order_id}")
        count = len(state["open"])
        self.max_open = max(self.max_open, count)
        if count > MAX_OPEN:
            self.violation("too_many_open", f"{count} own open orders (poll)")
        now = time.monotonic()
        if running and self.quoting_started:
            if count == 0:
                if self._zero_since is None:
                    self._zero_since = now
                gap = now - self._zero_since
                if gap > self.longest_gap:
                    self.longest_gap, self.gap_at = gap, self._zero_since - self.t0
            else:
                self._zero_since = None
        elif running and count > 0:
            self.quoting_started = True
        return state

    # -- bot vs simulator after a resync
    def on_ws_event(self, kind: str) -> None:
        self.ws_events[kind] += 1
        if kind == "synced":
            with self._sync_lock:
                self._sync_events.append(time.monotonic())

    def bot_view(self, ws: Any) -> Tuple[Tuple[int, int], frozenset]:
        snap = ws.snapshot(depth=1)
        own = frozenset(o.order_id for o in snap.orders if o.client_oid.startswith(BOT_SETTINGS.get(
            "ORDERID_PREFIX", "mm_")))
        return (snap.positions.long.qty, snap.positions.short.qty), own

    def check_resync(self, sim: Any, ws: Any, synced_at: float) -> None:
        """Compare bot and simulator repeatedly until they agree or the window closes."""
        deadline = synced_at + RESYNC_WINDOW_S
        tries = 0
        last = None
        while True:
            tries += 1
            if ws.synced:
                before = self.bot_view(ws)
                state = self.probe_light(sim)
                after = self.bot_view(ws)
                exch = (state["positions"], frozenset(state["open"]))
                if exch in (before, after):
                    self.resync_checks += 1
                    self.resync_retries_max = max(self.resync_retries_max, tries)
                    self.resync_slowest = max(self.resync_slowest, time.monotonic() - synced_at)
                    return
                last = (after, exch)
            else:
                # blind again (a newer resync started): the window is superseded, the next
                # "synced" event opens a new one
                return
            if time.monotonic() >= deadline:
                if last is None:
                    # never synced in the window and no newer sync: the bot is blind, not wrong
                    return
                if deadline < synced_at + RESYNC_WINDOW_S + AUDIT_BOUND_S:
                    # a push lost at the end of a quiet table is invisible to sequence numbers: the
                    # bot's periodic audit (or the exchange's periodic position push) must set it right
                    deadline = synced_at + RESYNC_WINDOW_S + AUDIT_BOUND_S
                    self.late_agreements += 1
                    continue
                (bpos, bids), (spos, sids) = last
                self.late_agreements -= 1
                self.violation("resync_mismatch",
                               f"{RESYNC_WINDOW_S + AUDIT_BOUND_S}s after sync: bot positions {bpos} vs sim {spos}; "
                               f"orders only bot {sorted(bids - sids)[:5]} only sim {sorted(sids - bids)[:5]}")
                return
            time.sleep(0.03)

    def probe_light(self, sim: Any) -> Dict[str, Any]:
        account_id = sim.account_id

        def run(ex: Any) -> Dict[str, Any]:
            positions = {int(r["side"]): int(r["qty"]) for r in ex.position_rows(account_id)}
            return {"open": {str(i) for i in ex.open_order_ids(account_id)},
                    "positions": (positions.get(1, 0), positions.get(0, 0))}
        return sim.call(run)

    # -- the wrong-secret check
    def bad_auth(self, sim: Any) -> Dict[str, Any]:
        wrong = "wrong-" + sim.api_secret[::-1]
        with tempfile.TemporaryDirectory(prefix="soak-badauth-") as tmp:
            path = Path(tmp) / "settings.py"
            path.write_text(f"BASE_URL = {sim.base_url!r}\nWS_URL = {sim.ws_url!r}\nAPI_KEY = {sim.api_key!r}\n"
                            "LOG_LEVEL = 'DEBUG'\n")
            env = dict(os.environ, GTE_API_SECRET=wrong)
            env.pop("MM_SETTINGS", None)
            started = time.monotonic()
            try:
                proc = subprocess.run([sys.executable, str(ROOT / "marketmaker"), "--settings", str(path),
                                       "--duration", "60"], cwd=tmp, env=env, capture_output=True, text=True,
                                      timeout=BAD_AUTH_BOUND_S + 15)
                code, output = proc.returncode, proc.stdout + proc.stderr
            except subprocess.TimeoutExpired as exc:
                code, output = None, f"{exc.stdout or ''}{exc.stderr or ''}"
            elapsed = time.monotonic() - started
        said = bool(re.search(r"authentication failed", output, re.I))
        ok = code == 1 and said and elapsed < BAD_AUTH_BOUND_S
        if not ok:
            self.violation("bad_auth", f"exit {code} after {elapsed:.1f}s, 'authentication failed' logged: {said}; "
                           f"tail: {output[-300:]!r}")
        if wrong in output or sim.api_secret in output:
            self.violation("secret_in_logs", "the wrong-secret run printed a secret")
        return {"code": code, "elapsed": elapsed, "said": said, "ok": ok}

    # -- the run
    def run(self) -> int:
        self.t0 = time.monotonic()
        self.quoting_started = False
        root = logging.getLogger()
        old_level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self.capture)
        for name in ("market_maker", "aiohttp", "aiohttp.server", "aiohttp.web", "aiohttp.access",
                     "websocket", "urllib3", "asyncio"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        old_hook = threading.excepthook

        def hook(args: Any) -> None:
            self.violation("unhandled_exception", f"thread {getattr(args.thread, 'name', '?')}: "
                           + "".join(traceback.format_exception_only(args.exc_type, args.exc_value)).strip())
            old_hook(args)
        threading.excepthook = hook
        self.signatures.install()
        try:
            return self._run()
        finally:
            self.signatures.uninstall()
            threading.excepthook = old_hook
            root.removeHandler(self.capture)
            root.setLevel(old_level)

    def _run(self) -> int:
        seconds = self.seconds
        mem_at = 60.0 if seconds >= 120 else seconds * 0.25
        self.mem_start = rss()
        self.mem_mark: Optional[int] = None
        bot_result: Dict[str, Any] = {}
        with run_simulator(self.sim_config()) as sim, tempfile.TemporaryDirectory(prefix="soak-") as tmp:
            self.secret = sim.api_secret
            self._wrap_place_order(sim)
            settings = self.bot_settings(sim, cwd=Path(tmp))
            runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret,
                                  manager_cls=OrderManager, duration=seconds)
            ws = runner.exchange.ws
            original_event = ws._on_event

            def on_event(kind: str) -> None:
                self.on_ws_event(kind)
                if original_event is not None:
                    original_event(kind)
            ws._on_event = on_event

            def bot() -> None:
                try:
                    bot_result["code"] = runner.run()
                except BaseException as exc:  # reported, and counted as unhandled
                    bot_result["code"] = None
                    self.violation("unhandled_exception", f"bot thread: {type(exc).__name__}: {exc}")
            thread = threading.Thread(target=bot, name="soak-bot", daemon=True)
            thread.start()
            self.log(f"simulator at {sim.base_url}; bot started for {seconds:.0f}s (seed {self.seed})")

            # resync comparisons run in their own thread so the polling cadence is kept
            stop = threading.Event()
            checked: List[float] = []

            def resync_checker() -> None:
                while not stop.is_set():
                    with self._sync_lock:
                        pending = [t for t in self._sync_events if t not in checked]
                    if not pending:
                        stop.wait(0.05)
                        continue
                    t = pending[-1]
                    checked.extend(pending)
                    try:
                        self.check_resync(sim, ws, t)
                    except Exception as exc:
                        self.violation("unhandled_exception", f"soak resync checker: {exc!r}")
            checker = threading.Thread(target=resync_checker, name="soak-resync", daemon=True)
            checker.start()

            next_report = time.monotonic() + 30
            while thread.is_alive():
                thread.join(CHECK_EVERY_S)
                elapsed = time.monotonic() - self.t0
                running = thread.is_alive() and elapsed < seconds - 0.5
                try:
                    state = self.check_sim(sim, running)
                except Exception as exc:
                    self.violation("unhandled_exception", f"soak probe: {exc!r}")
                    continue
                if self.mem_mark is None and elapsed >= mem_at:
                    self.mem_mark = rss()
                    self.mem_mark_at = elapsed
                if time.monotonic() >= next_report:
                    next_report += 30
                    f = sim.fault_counters()
                    self.log(f"open {len(state['open'])} pos {state['positions']} faults "
                             + " ".join(f"{k}={v}" for k, v in sorted(f.items())) + " ws " + str(dict(ws.stats)))
                if elapsed > seconds + 60:
                    self.violation("unhandled_exception", "bot did not stop within 60 s of its duration")
                    runner.stop()
                    thread.join(10)
                    break
            stop.set()
            checker.join(5)
            self.mem_end = rss()
            if self.mem_mark is None:
                self.mem_mark, self.mem_mark_at = self.mem_start, 0.0
            if bot_result.get("code") != 0:
                self.violation("bot_exit_status", f"bot exited with {bot_result.get('code')}")
            # final checks at the exchange
            final = self.check_sim(sim, running=False)
            if final["open"]:
                self.violation("open_after_exit", f"{len(final['open'])} own open orders left after exit")
            growth = mb(self.mem_end - self.mem_mark)
            if growth >= MEMORY_BOUND_MB:
                self.violation("memory_growth", f"RSS grew {growth:.1f} MB from {self.mem_mark_at:.0f}s to the end")
            if self.longest_gap > QUOTE_GAP_BOUND_S:
                self.violation("quote_gap", f"no own open order for {self.longest_gap:.1f}s from "
                               f"t={self.gap_at:.0f}s (bound {QUOTE_GAP_BOUND_S}s)")
            faults = sim.fault_counters()
            sim_stats = sim.stats()
            snap = ws.snapshot(depth=1)
            bad = self.bad_auth(sim)
            self.report = dict(faults=faults, sim_stats=sim_stats, ws_stats=dict(ws.stats),
                               rest_stats=runner.exchange.rest.stats, counters=dict(runner.exchange.counters),
                               bot_positions=(snap.positions.long.qty, snap.positions.short.qty),
                               sim_positions=final["positions"], traded=snap.contracts_traded,
                               fills=snap.fill_count, bad_auth=bad, orders_total=len(self.oid_to_order))
        self.scan_logs()
        return 1 if sum(self.violations.values()) else 0

    def scan_logs(self) -> None:
        secret = self.secret
        self.log_bytes = 0
        found_secret = found_sig = 0
        dump = open(self.log_file, "w", encoding="utf-8") if self.log_file else None
        for line in self.capture.lines():
            if dump:
                dump.write(line)
            self.log_bytes += len(line)
            if secret in line:
                found_secret += 1
            for token in HEX64.findall(line):
                if token in self.signatures:
                    found_sig += 1
        if dump:
            dump.close()
        if found_secret:
            self.violation("secret_in_logs", f"{found_secret} log lines contain the API secret")
        if found_sig:
            self.violation("signature_in_logs", f"{found_sig} client signatures found in the logs")

    # -- the table
    def table(self) -> str:
        r = self.report
        faults, ws_stats, rest_stats, counters = r["faults"], r["ws_stats"], r["rest_stats"], r["counters"]
        rows: List[Tuple[str, str]] = []
        add = rows.append
        add(("duration / seed", f"{self.seconds:.0f} s / {self.seed}"))
        for kind in ("ws_disconnect", "drop", "dup", "http_5xx", "lost_response", "rate_limit_burst", "latency"):
            add((f"fault injected: {kind}", str(faults.get(kind, 0))))
        add(("fault injected: late_create (executed late / dropped expired)",
             f"{faults.get('late_create', 0)} / {faults.get('late_create_expired', 0)}"))
        add(("sim rate-limited answers (normal limits)", str(r["sim_stats"].get("rate_limited", 0))))
        add(("bot ws reconnects / disconnects", f"{ws_stats.get('reconnects', 0)} / {ws_stats.get('disconnects', 0)}"))
        add(("bot ws resyncs (stale tables) / synced events",
             f"{ws_stats.get('resyncs', 0)} / {self.ws_events.get('synced', 0)}"))
        add(("bot ws seq gaps / lost partials / duplicates ignored",
             f"{ws_stats.get('seq_gap', 0)} / {ws_stats.get('partial_lost', 0)} / {ws_stats.get('seq_duplicate', 0)}"))
        add(("resync comparisons passed (slowest, max tries)",
             f"{self.resync_checks} ({self.resync_slowest:.2f} s, {self.resync_retries_max})"))
        add(("views set right only by the order audit (bound)", f"{self.late_agreements} ({AUDIT_BOUND_S:.0f} s)"))
        add(("bot REST requests / retries / lost creates resolved",
             f"{sum(rest_stats.requests.values())} / {rest_stats.retries} / {rest_stats.lost_responses_resolved}"))
        add(("bot creates in doubt (held until they settled, never resent)", str(counters.get("orders_in_doubt", 0))))
        add(("orders sent (bot) / accepted at exchange / rejected",
             f"{counters.get('orders_sent', 0)} / {r['orders_total']} / {counters.get('orders_rejected', 0)}"))
        add(("cancels (orders) / cancel_batch calls",
             f"{counters.get('orders_cancelled', 0)} / {counters.get('cancel_batches', 0)}"))
        add(("fills / contracts traded (bot view)", f"{r['fills']} / {r['traded']}"))
        add(("final positions long/short: bot", f"{r['bot_positions'][0]} / {r['bot_positions'][1]}"))
        add(("final positions long/short: simulator", f"{r['sim_positions'][0]} / {r['sim_positions'][1]}"))
        add(("peak own open orders (limit)", f"{self.max_open} ({MAX_OPEN})"))
        add(("longest interval with no own order (bound)", f"{self.longest_gap:.1f} s ({QUOTE_GAP_BOUND_S:.0f} s)"))
        add(("memory RSS start / mark / end",
             f"{mb(self.mem_start):.1f} / {mb(self.mem_mark):.1f} (at {self.mem_mark_at:.0f} s) / "
             f"{mb(self.mem_end):.1f} MB"))
        add(("memory growth mark -> end (bound)",
             f"{mb(self.mem_end - self.mem_mark):+.1f} MB ({MEMORY_BOUND_MB:.0f} MB)"))
        add(("log records captured (DEBUG) / ERROR records",
             f"{self.capture.records} ({self.log_bytes / 1e6:.1f} MB) / {self.capture.errors}"))
        add(("signatures recorded / found in logs",
             f"{self.signatures.count} / {self.violations.get('signature_in_logs', 0)}"))
        add(("API secret found in logs", "yes" if self.violations.get("secret_in_logs") else "no"))
        b = r["bad_auth"]
        add(("wrong-secret bot: exit status / time / 'authentication failed'",
             f"{b['code']} / {b['elapsed']:.1f} s / {'yes' if b['said'] else 'no'}"))
        for kind in VIOLATION_KINDS:
            add((f"violations: {kind}", str(self.violations.get(kind, 0))))
        add(("VIOLATIONS TOTAL", str(sum(self.violations.values()))))
        width = max(len(k) for k, _ in rows)
        lines = [f"{'check':<{width}}  value", "-" * (width + 30)]
        lines += [f"{k:<{width}}  {v}" for k, v in rows]
        for kind, examples in self.examples.items():
            for example in examples:
                lines.append(f"  {kind}: {example}")
        return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="soak length in minutes (default 10)")
    length.add_argument("--seconds", type=float, help="soak length in seconds")
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (market flow and faults)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--log-file", metavar="PATH", help="also write the captured DEBUG log there")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes if args.minutes is not None else 10)
    soak = Soak(seconds, args.seed, quiet=args.quiet, log_file=args.log_file)
    code = soak.run()
    print(soak.table(), flush=True)
    print("RESULT:", "PASS" if code == 0 else "FAIL", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
