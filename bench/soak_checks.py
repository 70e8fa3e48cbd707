"""The chaos soak's bounds and invariant checks (bench/soak.py): what it reads at the simulator, how it
compares the bot's view after a resync, the wrong-secret run and the log scan. Mixed into ``Soak``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, Tuple

from market_maker.exchange_interface import AUDIT_CONFIRM_S, ORDER_AUDIT_S

ROOT = Path(__file__).resolve().parents[1]
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


class SoakChecks:
    """The invariant checks of ``Soak``; they report through ``self.violation``."""

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

