"""Read a journal file for the report: read-only, never migrated, one run at a time.

The file is opened with SQLite's ``mode=ro`` URI: the report cannot change it (no
migration, no journal created by mistake when the path is wrong). Its schema version
must be the one this code knows; a newer one is refused with ``JournalVersionError``.
Counts and extremes are aggregated in SQL; rows are read only for the series the
report walks (market, requotes, executions, margins), money kept as exact text.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import quote

from ..schema import VERSION, JournalVersionError
from .model import Fill, RunData

TABLES = ("runs", "order_requests", "orders", "executions", "positions", "margins", "funding", "market",
          "requotes", "events")
TIMED = ("market", "requotes", "executions", "margins", "order_requests", "events", "positions", "funding")


class ReportError(Exception):
    """A journal the report cannot read, or a run it does not have: one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def open_journal(path: str) -> sqlite3.Connection:
    """The journal at ``path``, opened read-only, its version checked."""
    p = Path(path)
    if not p.exists():
        raise ReportError(f"{path}: no such file")
    if p.is_dir():
        raise ReportError(f"{path} is a directory, not a journal")
    uri = "file:" + quote(str(p.resolve())) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise ReportError(f"{path}: cannot open: {exc}") from None
    try:
        found = db.execute("PRAGMA user_version").fetchone()[0]
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ReportError(f"{path} is not an SQLite journal ({exc})") from None
    if found > VERSION:
        db.close()
        raise JournalVersionError(f"{path}: the journal has schema version {found}; this report knows up to "
                                  f"{VERSION} (upgrade the bot)")
    missing = [t for t in TABLES if t not in names]
    if found < VERSION or missing:
        db.close()
        if found == 0:
            raise ReportError(f"{path} is an SQLite file but not a journal (no journal schema)")
        raise ReportError(f"{path}: journal schema version {found} is older than {VERSION}; run the bot on it "
                          f"once to migrate it")
    return db


def run_ids(db: sqlite3.Connection) -> List[int]:
    """Every run id, oldest start first."""
    return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY started_ms, run_id")]


def pick_runs(db: sqlite3.Connection, path: str, run: Optional[int], every: bool) -> List[int]:
    """The runs to report: ``run``, all of them, or the latest started."""
    ids = run_ids(db)
    if not ids:
        raise ReportError(f"{path} has no runs")
    if every:
        return ids
    if run is None:
        return [ids[-1]]
    if run not in ids:
        listed = ", ".join(str(i) for i in ids[-10:])
        more = " (last 10)" if len(ids) > 10 else ""
        raise ReportError(f"{path} has no run {run}; its runs{more}: {listed}")
    return [run]


def _max_ts(db: sqlite3.Connection, run_id: int) -> Optional[int]:
    latest = [db.execute(f"SELECT MAX(ts_ms) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0] for t in TIMED]
    known = [t for t in latest if t is not None]
    return max(known) if known else None


def load_run(db: sqlite3.Connection, run_id: int) -> RunData:
    """Everything the report needs about one run."""
    cur = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
    names = [d[0] for d in cur.description]
    run = dict(zip(names, cur.fetchone()))
    start = int(run["started_ms"])
    stopped = run["stopped_ms"] is not None
    end = int(run["stopped_ms"]) if stopped else max(start, _max_ts(db, run_id) or start)
    data = RunData(run=run, start_ms=start, end_ms=max(end, start), stopped=stopped)
    args = (run_id,)

    for ts, mid, mark in db.execute("SELECT ts_ms, mid, mark FROM market WHERE run_id = ? ORDER BY ts_ms, id",
                                    args):
        if mid is not None:
            data.mid_ts.append(ts)
            data.mid_text.append(mid)
        if mark is not None:
            data.mark_ts.append(ts)
            data.mark_text.append(mark)

    data.fills = [Fill(ts, exec_id, order_id, client_oid, 1 if side == "buy" else -1, close_flag, price, qty,
                       fee, maker, realised, source)
                  for ts, exec_id, order_id, client_oid, side, close_flag, price, qty, fee, maker, realised, source
                  in db.execute("SELECT ts_ms, exec_id, order_id, client_oid, side, close_flag, price, qty, fee, "
                                "maker, realised_pnl, source FROM executions WHERE run_id = ? "
                                "ORDER BY ts_ms, rowid", args)]

    data.quotes = db.execute("SELECT ts_ms, CAST(best_bid AS REAL), CAST(best_ask AS REAL) FROM requotes "
                             "WHERE run_id = ? ORDER BY ts_ms, id", args).fetchall()
    data.events = db.execute("SELECT ts_ms, kind, detail FROM events WHERE run_id = ? ORDER BY ts_ms, id",
                             args).fetchall()
    data.margins = db.execute("SELECT ts_ms, CAST(total AS REAL), CAST(order_margin AS REAL) + "
                              "CAST(pos_margin AS REAL) FROM margins WHERE run_id = ? ORDER BY ts_ms, id",
                              args).fetchall()
    data.equity_first = db.execute("SELECT ts_ms, total FROM margins WHERE run_id = ? ORDER BY ts_ms, id LIMIT 1",
                                   args).fetchone()
    data.equity_last = db.execute("SELECT ts_ms, total FROM margins WHERE run_id = ? "
                                  "ORDER BY ts_ms DESC, id DESC LIMIT 1", args).fetchone()
    data.funding = db.execute("SELECT ts_ms, amount FROM funding WHERE run_id = ? ORDER BY ts_ms, id",
                              args).fetchall()

    legs = {}
    for side in ("long", "short"):
        row = db.execute("SELECT qty FROM positions WHERE run_id = ? AND side = ? ORDER BY ts_ms DESC, id DESC "
                         "LIMIT 1", (run_id, side)).fetchone()
        if row is not None:
            legs[side] = row[0]
    if legs:
        data.position_end = legs.get("long", 0) - legs.get("short", 0)

    data.requests = request_counts(db, run_id)
    return data


def request_counts(db: sqlite3.Connection, run_id: int) -> dict:
    """Counts of ``order_requests`` by meaning (rows are per order; a request is a ``request_id``)."""
    counts = dict.fromkeys(("sent", "accepted", "rejected", "in_doubt", "create_errors", "paper", "cancelled",
                            "cancel_misses", "api_calls"), 0)
    for kind, outcome, n in db.execute("SELECT kind, outcome, COUNT(*) FROM order_requests WHERE run_id = ? "
                                       "GROUP BY kind, outcome", (run_id,)):
        if kind == "create":
            if outcome == "paper":
                counts["paper"] += n
            elif outcome != "deferred":
                counts["sent"] += n
            if outcome == "ok":
                counts["accepted"] += n
            elif outcome == "refused":
                counts["rejected"] += n
            elif outcome == "in_doubt":
                counts["in_doubt"] += n
            elif outcome == "error":
                counts["create_errors"] += n
        elif outcome == "ok":
            counts["cancelled"] += n
        elif outcome == "not_found":
            counts["cancel_misses"] += n
    counts["api_calls"] = db.execute("SELECT COUNT(DISTINCT request_id) FROM order_requests WHERE run_id = ? AND "
                                     "outcome NOT IN ('deferred', 'paper')", (run_id,)).fetchone()[0]
    return counts


def order_rows(db: sqlite3.Connection, run_ids_: Sequence[int]) -> tuple:
    """(column names, rows) of the ``orders`` table for the given runs, as stored."""
    marks = ", ".join("?" * len(run_ids_))
    cur = db.execute(f"SELECT * FROM orders WHERE run_id IN ({marks}) ORDER BY run_id, updated_ms, order_id",
                     tuple(run_ids_))
    return [d[0] for d in cur.description], cur.fetchall()


def default_html_path(journal: str, runs: Sequence[int], every: bool) -> str:
    """``report-<run>.html`` (``report-all.html`` for ``--all``) next to the journal."""
    name = "report-all.html" if every else f"report-{runs[0]}.html"
    return os.path.join(os.path.dirname(os.path.abspath(journal)), name)
