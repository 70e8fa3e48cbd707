"""Speed of ``python marketmaker report`` on a generated 24-hour journal (~1 million records).

The generator is deterministic (seeded) and consistent: a random-walk market (best bid and
ask one tick apart, a mark that wanders around the mid), our two-level ladder requoted every
second (cancels and creates when a level's price changes, a cancel_batch for two or more),
fills of our best quotes by takers and when the market trades through them, a few taker fills
of ours, pauses, funding every 8 hours, and positions and margins booked by a small two-way
ledger with the simulator's rules (1e-12 units: each fill's cost and fee rounded, a close
realises against a pro-rata cost basis, equity = balance + unrealised PnL at the mark). So
the report's net PnL must equal the journal's equity change with nothing unexplained; the
bench checks it.

    python bench/report_speed.py [--hours 24] [--seed 1] [--out FILE] [--keep]

It prints the journal's size, the time of the report in-process (read + summary, figures,
HTML) and of the whole command in a fresh process (``python marketmaker report``).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from market_maker.journal.schema import migrate  # noqa: E402

T0 = 1_767_225_600_000          # 2026-01-01 00:00:00 UTC
LEDGER = 10 ** 12
FINE = 10 ** 8
LEVELS = 2
SIZE = 100
MAX_NET = 2_000
MAKER_FEE = (-1, 4000)          # -0.00025
TAKER_FEE = (3, 4000)           # 0.00075
FUNDING_EVERY_S = 8 * 3600
FUNDING_RATE = (1, 10_000)      # 0.0001
BALANCE = 1 * LEDGER


def rdiv(n: int, d: int) -> int:
    return (2 * n + d) // (2 * d)


def half_text(h: int) -> str:
    """A price given in half-dollar ticks (``h`` / 2) as text."""
    return f"{h // 2}.{5 if h % 2 else 0}"


def units_text(units: int) -> str:
    """Ledger units as a plain decimal string."""
    return format(Decimal(units).scaleb(-12), "f")


class Ledger:
    """Two legs and a balance, booked like the simulator's accounts (ledger units of 1e-12)."""

    def __init__(self) -> None:
        self.balance = BALANCE
        self.qty = {1: 0, -1: 0}        # +1 long leg, -1 short leg
        self.cost = {1: 0, -1: 0}
        self.realised = {1: 0, -1: 0}

    def fill(self, side: int, close: bool, qty: int, h: int, maker: bool) -> tuple:
        """Book a fill of ``qty`` at price h/2; (fee, realised PnL, leg touched)."""
        cost = rdiv(2 * qty * LEDGER, h)
        num, den = MAKER_FEE if maker else TAKER_FEE
        fee = rdiv(cost * num, den)
        pnl = 0
        if close:
            leg = -side                     # a buy closes the short leg
            basis = self.cost[leg] if qty == self.qty[leg] else rdiv(self.cost[leg] * qty, self.qty[leg])
            pnl = basis - cost if leg == 1 else cost - basis
            self.qty[leg] -= qty
            self.cost[leg] -= basis
            self.realised[leg] += pnl
            self.balance += pnl
        else:
            leg = side
            self.qty[leg] += qty
            self.cost[leg] += cost
        self.balance -= fee
        return fee, pnl, leg

    def upnl(self, leg: int, im: int) -> int:
        """Unrealised PnL of a leg in 1e-20 units at inverse mark ``im``."""
        return (self.cost[leg] * FINE - self.qty[leg] * im) * leg

    def total(self, im: int) -> int:
        return self.balance + rdiv(self.upnl(1, im) + self.upnl(-1, im), FINE)

    @property
    def net(self) -> int:
        return self.qty[1] - self.qty[-1]


class Journal:
    """Rows kept in memory and written at the end in one transaction."""

    def __init__(self) -> None:
        self.rows: Dict[str, List[tuple]] = {t: [] for t in ("market", "requotes", "order_requests", "executions",
                                                             "positions", "margins", "funding", "events")}
        self.orders: Dict[str, list] = {}

    def count(self) -> int:
        return sum(len(v) for v in self.rows.values()) + len(self.orders) + 1


def generate(path: str, seconds: int = 86_400, seed: int = 1, funding_every_s: int = FUNDING_EVERY_S) -> int:
    """Write a journal of one run of ``seconds`` at ``path``; returns its number of records."""
    rnd = random.Random(seed)
    j = Journal()
    led = Ledger()
    run_id = 1
    bid = 20_000                      # market best bid in half-dollar ticks; ask = bid + 1
    mark_c = 1_000_025                # mark in cents
    resting: Dict[tuple, Optional[dict]] = {(s, lvl): None for s in (1, -1) for lvl in range(LEVELS)}
    ids = {"order": 0, "request": 0, "exec": 0}
    paused_until = -1
    ev = j.rows["events"]
    ev.append((run_id, T0, "start", "Started", None))

    def im_of() -> int:
        return rdiv(100 * 10 ** 20, mark_c)

    def margin_row(ts: int) -> None:
        im = im_of()
        om = sum(rdiv(2 * o["left"] * LEDGER, o["h"] * 10) for o in resting.values() if o and not o["close"])
        pm = rdiv(led.cost[1] + led.cost[-1], 10)
        total = led.total(im)
        j.rows["margins"].append((run_id, ts, units_text(total), units_text(total - om - pm), units_text(om),
                                  units_text(pm)))

    def position_row(ts: int, leg: int) -> None:
        q, c = led.qty[leg], led.cost[leg]
        entry = str((Decimal(q) * LEDGER / Decimal(c)).quantize(Decimal("1e-8"))) if q else "0"
        j.rows["positions"].append((run_id, ts, "long" if leg == 1 else "short", q, q, entry, "10", "0",
                                    units_text(rdiv(led.upnl(leg, im_of()), FINE)), units_text(led.realised[leg]),
                                    units_text(rdiv(c, 10))))

    def market_row(ts: int, reason: str) -> None:
        j.rows["market"].append((run_id, ts, half_text(bid), half_text(bid + 1), f"{(2 * bid + 1) / 4}",
                                 f"{mark_c // 100}.{mark_c % 100:02d}", reason))

    def execute(ts: int, o: dict, qty: int, maker: bool, h: int) -> None:
        fee, pnl, leg = led.fill(o["side"], o["close"], qty, h, maker)
        ids["exec"] += 1
        o["left"] -= qty
        o["filled"] += qty
        o["fee"] += fee
        o["updated"] = ts
        market_row(ts, "fill")
        j.rows["executions"].append((f"e{ids['exec']}", run_id, ts, ts - 3, o["id"], o["oid"],
                                     "buy" if o["side"] > 0 else "sell", int(o["close"]), half_text(h), qty,
                                     units_text(fee), int(maker), units_text(pnl), "backtest"))
        position_row(ts, leg)
        margin_row(ts)

    def request(ts: int, kind: str, o: dict, outcome: str = "ok", rid: Optional[int] = None) -> None:
        if rid is None:
            ids["request"] += 1
            rid = ids["request"]
        j.rows["order_requests"].append((run_id, ts, rid, kind, o["oid"], o["id"], "buy" if o["side"] > 0 else "sell",
                                         half_text(o["h"]), o["qty"], int(o["close"]), outcome,
                                         2 if outcome == "ok" else None, -20001 if outcome == "refused" else None,
                                         round(rnd.uniform(2, 15), 2)))

    def cancel_all(ts: int, keys: List[tuple]) -> None:
        gone = [resting[k] for k in keys if resting[k]]
        rid = None
        if len(gone) > 1:
            ids["request"] += 1
            rid = ids["request"]
        for o in gone:
            request(ts, "cancel_batch" if rid else "cancel", o, rid=rid)
            o["status"], o["updated"] = 8, ts
        for k in keys:
            resting[k] = None

    for t in range(seconds + 1):
        ts = T0 + t * 1000
        market_row(ts, "sample")
        if t and t % funding_every_s == 0:
            for leg in (1, -1):
                if led.qty[leg]:
                    pay = rdiv(led.qty[leg] * im_of() * FUNDING_RATE[0], FINE * FUNDING_RATE[1])
                    led.balance -= pay * leg
                    j.rows["funding"].append((run_id, ts, ts, "long" if leg == 1 else "short", led.qty[leg],
                                              units_text(-pay * leg), "0.0001"))
            margin_row(ts)
        if t == seconds:
            break
        if t % 60 == 0:
            margin_row(ts)
        if t % 21_600 == 10_800:                           # a pause of 30 s every 6 hours
            paused_until = t + 30
            cancel_all(ts, list(resting))
            ev.append((run_id, ts, "pause", "Market data is stale; quoting paused", None))
        elif t == paused_until:
            ev.append((run_id, ts, "resume", "Quoting resumed", None))
        quoting = t >= paused_until
        if quoting:                                        # the ladder, skewed by the net position
            skew = led.net // 400
            changed = []
            for side in (1, -1):
                for lvl in range(LEVELS):
                    k = (side, lvl)
                    h = (bid - 2 - skew - 2 * lvl) if side > 0 else (bid + 3 - skew + 2 * lvl)
                    allowed = side * led.net < MAX_NET
                    o = resting[k]
                    if o and (not allowed or o["h"] != h or o["left"] == 0):
                        changed.append(k)
                    if allowed and (o is None or k in changed):
                        changed.append(("new",) + k + (h,))
            cancel_all(ts, [k for k in changed if k[0] != "new"])
            for _, side, lvl, h in [k for k in changed if k[0] == "new"]:
                ids["order"] += 1
                close = led.qty[-side] >= SIZE * (lvl + 1) and rnd.random() > 0.05
                o = {"id": str(ids["order"]), "oid": f"mmbot-a1b2c3-{ids['order']}", "side": side, "h": h,
                     "qty": SIZE, "left": SIZE, "filled": 0, "close": close, "fee": 0, "status": 2,
                     "ctime": ts + 4, "updated": ts + 4}
                if rnd.random() < 0.001:
                    o["id"] = None
                    request(ts, "create", o, "refused")
                    continue
                request(ts, "create", o)
                j.orders[o["id"]] = o
                resting[(side, lvl)] = o
            best = [resting[(s, 0)]["h"] if resting[(s, 0)] else None for s in (1, -1)]
            created = sum(1 for k in changed if k[0] == "new")
            cancelled = len(changed) - created
            kept = sum(1 for o in resting.values() if o) - created
            j.rows["requotes"].append((run_id, ts, kept, cancelled, created,
                                       half_text(best[0]) if best[0] else None,
                                       half_text(best[1]) if best[1] else None, led.net))
        # the market moves within the second; takers hit our best quotes, or the market trades through them
        step = rnd.choice((-2, -1, -1, 0, 0, 0, 0, 1, 1, 2)) * (3 if rnd.random() < 0.02 else 1)
        fill_ts = ts + rnd.randint(100, 800)
        for side in (1, -1):
            o = resting[(side, 0)]
            if not quoting or not o or o["left"] == 0:
                continue
            through = (bid + step < o["h"]) if side > 0 else (bid + 1 + step > o["h"])
            if through or rnd.random() < 0.3:
                qty = o["left"] if through else rnd.randint(1, o["left"])
                execute(fill_ts, o, qty, True, o["h"])
                o["status"] = 32 if o["left"] == 0 else 16
        if quoting and rnd.random() < 0.004:               # one of ours that crossed: a taker fill
            side = rnd.choice((1, -1))
            ids["order"] += 1
            h = bid + 1 if side > 0 else bid
            reserved = sum(o["left"] for o in resting.values() if o and o["side"] == side and o["close"])
            o = {"id": str(ids["order"]), "oid": f"mmbot-a1b2c3-{ids['order']}", "side": side, "h": h, "qty": 10,
                 "left": 10, "filled": 0, "close": led.qty[-side] - reserved >= 10, "fee": 0, "status": 32,
                 "ctime": fill_ts - 5, "updated": fill_ts}
            request(fill_ts - 10, "create", o)
            j.orders[o["id"]] = o
            execute(fill_ts, o, 10, False, h)
        bid += step
        mark_c = max(100, (2 * bid + 1) * 25 + rnd.randint(-40, 40))

    end = T0 + seconds * 1000
    cancel_all(end, list(resting))
    margin_row(end)
    ev.append((run_id, end, "stop", "Stopped", None))
    _write(path, j, run_id, end, seed)
    return j.count()


def _write(path: str, j: Journal, run_id: int, end: int, seed: int) -> None:
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    try:
        migrate(db)
        db.execute("BEGIN")
        db.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                   (run_id, T0, end, 0, "backtest", "BTC_USD", "BTC", "market_maker.market_maker:OrderManager",
                    "0.1.0", json.dumps({"ORDER_PAIRS": LEVELS}), seed, "a1b2c3"))
        cols = {"market": "run_id, ts_ms, best_bid, best_ask, mid, mark, reason",
                "requotes": "run_id, ts_ms, kept, cancelled, created, best_bid, best_ask, net_position",
                "order_requests": "run_id, ts_ms, request_id, kind, client_oid, order_id, side, price, qty, "
                                  "close_flag, outcome, status, error_code, latency_ms",
                "executions": "exec_id, run_id, ts_ms, exchange_ms, order_id, client_oid, side, close_flag, price, "
                              "qty, fee, maker, realised_pnl, source",
                "positions": "run_id, ts_ms, side, qty, avail_qty, entry_price, leverage, liquidation_price, "
                             "unrealised_pnl, realised_pnl, pos_margin",
                "margins": "run_id, ts_ms, total, available, order_margin, pos_margin",
                "funding": "run_id, ts_ms, exchange_ms, side, qty, amount, rate",
                "events": "run_id, ts_ms, kind, detail, data_json"}
        for table, rows in j.rows.items():
            marks = ", ".join("?" * len(cols[table].split(",")))
            db.executemany(f"INSERT INTO {table} ({cols[table]}) VALUES ({marks})", rows)
        db.executemany("INSERT INTO orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       [(o["id"], run_id, o["oid"], "buy" if o["side"] > 0 else "sell", int(o["close"]),
                         half_text(o["h"]), o["qty"], o["status"], o["filled"],
                         half_text(o["h"]) if o["filled"] else "0", units_text(o["fee"]), o["ctime"], o["updated"])
                        for o in j.orders.values()])
        db.execute("COMMIT")
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="journal file to write (default: a temporary file)")
    ap.add_argument("--keep", action="store_true", help="keep the journal and the HTML")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="report_speed_")
    path = args.out or os.path.join(tmp, "journal.sqlite")
    t = time.perf_counter()
    records = generate(path, int(args.hours * 3600), args.seed)
    gen_s = time.perf_counter() - t
    print(f"{'journal':<44} {path}: {records} records, {os.path.getsize(path) / 1e6:.1f} MB "
          f"({args.hours:g} h; generated in {gen_s:.1f} s)")

    from market_maker.journal.report import command, plots
    from market_maker.journal.report.reader import load_run, open_journal
    from market_maker.journal.report.summary import build, text
    html = os.path.join(tmp, "report.html")
    t = time.perf_counter()
    db = open_journal(path)
    data = load_run(db, 1)
    t_load = time.perf_counter() - t
    report = build(data)
    summary = text(report)
    t_summary = time.perf_counter() - t
    figures = plots.figures(report) if plots.available() else []
    t_plots = time.perf_counter() - t
    db.close()
    a = report.attribution
    print(f"{'in-process: read / + summary / + figures':<44} {t_load:.2f} / {t_summary:.2f} / {t_plots:.2f} s "
          f"({len(figures)} figures)")
    with redirect_stdout(io.StringIO()):
        t = time.perf_counter()
        code = command.main([path, "--html", html])
        t_cmd = time.perf_counter() - t
    print(f"{'in-process: report command (summary + HTML)':<44} {t_cmd:.2f} s, exit {code}")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "marketmaker"), "report", path, "--html", html],
                          capture_output=True, text=True)
    t_proc = time.perf_counter() - t
    print(f"{'python marketmaker report (fresh process)':<44} {t_proc:.2f} s, exit {proc.returncode}, "
          f"HTML {os.path.getsize(html) / 1e6:.1f} MB")
    print(f"{'fills / net PnL / unexplained':<44} {len(data.fills)} / {a.net / 10 ** 20:.8f} BTC / {a.unexplained}")
    print(summary)
    if a.unexplained != 0 or a.exchange_change is None:
        sys.exit("the attribution does not match the generated ledger")
    if not args.keep:
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
