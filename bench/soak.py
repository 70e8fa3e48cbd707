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
  (while the bot runs) must stay under QUOTE_GAP_BOUND_S (derived in soak_checks.py);
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
import logging
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from market_maker.cli import build_runner  # noqa: E402
from market_maker.market_maker import OrderManager  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402
from market_maker.sim import SimConfig, run_simulator  # noqa: E402
from bench.soak_capture import Capture, Signatures, mb, rss  # noqa: E402
from bench.soak_checks import (BOT_SETTINGS, BURST_EVERY_S, BURST_LENGTH_S, CHECK_EVERY_S,  # noqa: E402
                               DISCONNECT_EVERY_S, LATE_CREATE_MS, LATE_CREATE_RATE, MEMORY_BOUND_MB,
                               QUOTE_GAP_BOUND_S, SoakChecks)
from bench.soak_report import SoakReport  # noqa: E402


class Soak(SoakChecks, SoakReport):
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
