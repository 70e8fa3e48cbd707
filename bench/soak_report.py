"""The chaos soak's result table (bench/soak.py). Mixed into ``Soak``."""
from __future__ import annotations

from typing import List, Tuple

from bench.soak_capture import mb
from bench.soak_checks import AUDIT_BOUND_S, MAX_OPEN, MEMORY_BOUND_MB, QUOTE_GAP_BOUND_S, VIOLATION_KINDS


class SoakReport:
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
