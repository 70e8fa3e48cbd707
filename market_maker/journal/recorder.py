"""JournalRecorder: an event-bus sink turning the bot's events into journal rows.

``open_journal`` checks the file (a bad one is a ``SettingsError`` naming JOURNAL_PATH),
migrates it, opens a run and returns the recorder; subscribe it to ``exchange.events``.
``handle`` only hands the event to the writer (a queue append in threaded mode); the
rows are made in the writer's thread (``writer.py``). ``close(exit_status)`` writes what
is queued and stops the run. The recorder knows no bot: events in, rows out.

Per order it keeps the journal's filled quantity, fee and inverse notional (sum of
qty / price, an exact fraction): a live execution whose ``cum_qty`` is already covered
(reconciled at start) is not counted again. See ``docs/journal.md``.
"""
from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from .. import __version__
from ..clock import SYSTEM_CLOCK, Clock, ms
from ..events import Event
from ..settings_file import SECRET_NAMES, SettingsError
from .schema import JournalVersionError, migrate
from .writer import JournalWriter, connect

log = logging.getLogger("market_maker.journal")

SQLITE_MAGIC = b"SQLite format 3\x00"
FINAL = (8, 32)
AVG_DECIMALS = 8  # the exchange states an order's average price to 1e-8


def _text(value: Any) -> Optional[str]:
    return None if value is None else format(value, "f") if isinstance(value, Decimal) else str(value)


def harmonic_avg(filled: int, notional: Fraction) -> Decimal:
    """filled / notional (the contract-weighted harmonic mean of the fill prices) to 1e-8, nearest,
    ties up, as the exchange states ``avg_price``; 0 before a fill."""
    if not filled or not notional:
        return Decimal(0)
    mean = Fraction(filled) / notional
    scaled = mean * 10 ** AVG_DECIMALS
    units = (2 * scaled.numerator + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(units).scaleb(-AVG_DECIMALS).normalize() if units % 10 ** AVG_DECIMALS else \
        Decimal(units // 10 ** AVG_DECIMALS)


def exact_decimal(value: Fraction, digits: int = 30) -> Decimal:
    """``value`` as a Decimal: exact when it terminates within ``digits`` decimals, else rounded there."""
    scaled = value * 10 ** digits
    units = (2 * scaled.numerator + scaled.denominator) // (2 * scaled.denominator)
    return Decimal(units).scaleb(-digits).normalize()


@dataclass
class OrderFills:
    """What the journal holds of one order's fills."""

    filled: int = 0
    fee: Decimal = Decimal(0)
    notional: Fraction = field(default_factory=Fraction)  # sum of qty / price

    def add(self, qty: int, price: Decimal, fee: Decimal) -> None:
        self.filled += qty
        self.fee += fee
        self.notional += Fraction(qty) / Fraction(price)


def public_settings(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """The settings without their secrets, JSON-ready (Decimals as text)."""
    out = {}
    for name in sorted(settings):
        if name in SECRET_NAMES:
            continue
        value = settings[name]
        out[name] = value if isinstance(value, (bool, int, float, str, type(None))) else _text(value) \
            if isinstance(value, Decimal) else [_text(v) for v in value] if isinstance(value, (list, tuple)) \
            else str(value)
    return out


def check_path(path: str) -> None:
    """A journal path we can use, or a SettingsError naming JOURNAL_PATH and what is wrong."""
    p = Path(path)
    where = f"JOURNAL_PATH = {path!r}"
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise SettingsError(f"{where} is a folder; give the path of a journal file (an SQLite file)")
    if not folder.is_dir():
        raise SettingsError(f"{where}: the folder {str(folder)!r} does not exist")
    if p.exists():
        if not os.access(p, os.R_OK | os.W_OK):
            raise SettingsError(f"{where}: the file cannot be read and written")
        with open(p, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if head and head != SQLITE_MAGIC:
            raise SettingsError(f"{where} is not an SQLite file (a journal is one); give another path")
    if not os.access(folder, os.W_OK):
        raise SettingsError(f"{where}: the folder {str(folder)!r} is not writable (the journal and its WAL "
                            f"file are written there)")


def open_journal(path: str, settings: Mapping[str, Any], *, mode: str, strategy: str,
                 sim_seed: Optional[int] = None, run_tag: Optional[str] = None, threaded: bool = True,
                 clock: Clock = SYSTEM_CLOCK) -> "JournalRecorder":
    """Open (create, migrate) the journal at ``path`` and start a run in it."""
    check_path(path)
    try:
        db = connect(path)
        migrate(db)
    except JournalVersionError as exc:
        raise SettingsError(f"JOURNAL_PATH = {path!r}: {exc}; use a newer bot or another journal") from None
    except sqlite3.Error as exc:
        raise SettingsError(f"JOURNAL_PATH = {path!r}: cannot open it as a journal ({exc})") from None
    cur = db.execute("INSERT INTO runs (started_ms, mode, symbol, settle_currency, strategy, version, settings_json, "
                     "sim_seed, run_tag) VALUES (?,?,?,?,?,?,?,?,?)",
                     (ms(clock), mode, str(settings.get("SYMBOL", "")), str(settings.get("SETTLECURRENCY", "")),
                      strategy, __version__, json.dumps(public_settings(settings), sort_keys=True), sim_seed,
                      run_tag))
    return JournalRecorder(db, int(cur.lastrowid), path, prefix=str(settings.get("ORDERID_PREFIX") or ""),
                           threaded=threaded, clock=clock)


class JournalRecorder:
    """Sink: ``handle(event)``; ``run_id``, ``lost``, ``close(exit_status)``."""

    def __init__(self, db: sqlite3.Connection, run_id: int, path: str, *, prefix: str = "", threaded: bool = True,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.run_id = run_id
        self.prefix = prefix
        self.clock = clock
        self.closed = False
        # writer-thread state
        self._fills: Dict[str, OrderFills] = {}
        self._requests: Dict[Any, int] = {}
        self._next_request = (db.execute("SELECT MAX(request_id) FROM order_requests").fetchone()[0] or 0) + 1
        self._legs: Dict[str, tuple] = {}
        self._realised: Dict[str, Decimal] = {}  # each leg's realised PnL at its last row
        self._closes: Dict[str, list] = {"long": [], "short": []}  # close fills since the leg's last row
        self._margin: Optional[tuple] = None
        self._market: Tuple[Optional[str], Optional[str], Optional[str], Optional[str]] = (None, None, None, None)
        self.duplicates = 0  # live executions already counted (reconciled at start)
        self._load_open_orders(db)
        self.writer = JournalWriter(db, self._apply, threaded=threaded)
        self._handlers = {
            "order": self._order, "execution": self._execution, "order_state": self._order_state,
            "position": self._position, "margin": self._margin_row, "funding": self._funding,
            "market": self._market_row, "decision": self._decision,
        }

    @property
    def lost(self) -> int:
        return self.writer.lost

    # -- the sink
    def handle(self, event: Event) -> None:
        self.writer.put(event)

    def submit(self, job: Any) -> None:
        """Run ``job(db)`` in the writer's thread, in order with the events."""
        self.writer.put(job)

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)

    def close(self, exit_status: int) -> None:
        """Stop the run with ``exit_status``: write what is queued, then the run's end."""
        if self.closed:
            return
        stopped = ms(self.clock)
        self.writer.put(lambda db: db.execute("UPDATE runs SET stopped_ms = ?, exit_status = ? WHERE run_id = ?",
                                              (stopped, exit_status, self.run_id)))
        if self.writer.lost:
            lost = self.writer.lost
            self.writer.put(lambda db: self._event_row(db, stopped, "journal_dropped",
                                                       f"{lost} records could not be written", None))
        self.writer.close()
        self.closed = True
        if self.writer.lost:
            log.warning("Journal: %d records could not be written", self.writer.lost)

    # -- the writer thread
    def _apply(self, db: sqlite3.Connection, item: Any) -> None:
        if callable(item):
            item(db)
            return
        ts = int(item.ts * 1000)
        handler = self._handlers.get(item.kind)
        if handler is not None:
            handler(db, ts, item.fields)
        else:
            self._other(db, ts, item.kind, item.fields)

    def _load_open_orders(self, db: sqlite3.Connection) -> None:
        """The fills the journal holds of orders not final at its last state (they may fill on)."""
        ids = [r[0] for r in db.execute("SELECT order_id FROM orders WHERE status NOT IN (8, 32)")]
        self._fills.update(fills_of(db, ids))

    def fills(self, db: sqlite3.Connection, order_id: str) -> OrderFills:
        state = self._fills.get(order_id)
        if state is None:
            state = self._fills[order_id] = OrderFills()
        return state

    def _request_id(self, key: Any) -> int:
        if key is not None and key in self._requests:
            return self._requests[key]
        rid = self._next_request
        self._next_request += 1
        if key is not None:
            if len(self._requests) > 1000:
                self._requests.clear()
            self._requests[key] = rid
        return rid

    def _order(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        action = f.get("action", "create")
        db.execute("INSERT INTO order_requests (run_id, ts_ms, request_id, kind, client_oid, order_id, side, price, "
                   "qty, close_flag, outcome, status, error_code, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (self.run_id, ts, self._request_id(f.get("request_id")), action, f.get("client_oid"),
                    f.get("order_id") or None, f.get("side"), _text(f.get("price")), f.get("qty"),
                    f.get("close_flag"), f.get("outcome", "ok"), f.get("status"), f.get("error_code"),
                    f.get("latency_ms")))
        if action == "create" and f.get("outcome") in ("ok", "paper") and f.get("order_id"):
            self._fills.setdefault(f["order_id"], OrderFills())
            db.execute("INSERT OR IGNORE INTO orders (order_id, run_id, client_oid, side, close_flag, price, qty, "
                       "status, filled_qty, avg_price, fee, ctime_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,0,'0','0',"
                       "?,?)", (f["order_id"], self.run_id, f.get("client_oid") or "", f.get("side"),
                                f.get("close_flag") or 0, _text(f.get("price")), f.get("qty"), f.get("status") or 2,
                                f.get("ts_ex_ms"), ts))

    def _order_state(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        """The exchange's latest view of one of our orders."""
        if self.prefix and not str(f.get("client_oid") or "").startswith(self.prefix):
            return
        upsert_order(db, self.run_id, ts, f)

    def _execution(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        order_id, qty = str(f["order_id"]), int(f["qty"])
        state = self.fills(db, order_id)
        cum = f.get("cum_qty")
        if cum is not None and state.filled >= int(cum):
            self.duplicates += 1  # counted already (reconciled at start)
            return
        price, fee = Decimal(f["price"]), Decimal(f.get("fee") or 0)
        maker = f.get("maker")
        cur = db.execute("INSERT OR IGNORE INTO executions (exec_id, run_id, ts_ms, exchange_ms, order_id, client_oid, "
                         "side, close_flag, price, qty, fee, maker, realised_pnl, source) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                         (str(f["exec_id"]), self.run_id, ts, f.get("ts_ex_ms"), order_id, f.get("client_oid"),
                          f.get("side"), int(f.get("close_flag") or 0), _text(price), qty, _text(fee),
                          None if maker is None else int(bool(maker)), _text(f.get("realised_pnl")),
                          f.get("source", "live")))
        if not cur.rowcount:
            return
        if f.get("close_flag") and f.get("realised_pnl") is None:  # a sell closes the long leg, a buy the short
            self._closes["long" if f.get("side") == "sell" else "short"].append(str(f["exec_id"]))
        state.add(qty, price, fee)
        db.execute("UPDATE orders SET filled_qty = ?, avg_price = ?, fee = ?, updated_ms = ? WHERE order_id = ? "
                   "AND filled_qty < ?", (state.filled, _text(harmonic_avg(state.filled, state.notional)),
                                          _text(state.fee), ts, order_id, state.filled))
        bid, ask, mid, mark = self._market
        if mid is not None or bid is not None:
            db.execute("INSERT INTO market (run_id, ts_ms, best_bid, best_ask, mid, mark, reason) "
                       "VALUES (?,?,?,?,?,?,'fill')", (self.run_id, ts, bid, ask, mid, mark))

    def _position(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        for leg in (f.get("long"), f.get("short")):
            if leg is None:
                continue
            row = (leg.qty, leg.avail_qty, _text(leg.entry_price), _text(leg.leverage), _text(leg.liquidation_price),
                   _text(leg.unrealised_pnl), _text(leg.realised_pnl), _text(leg.pos_margin))
            if self._legs.get(leg.side) == row:
                continue
            self._legs[leg.side] = row
            self._realised_of_close(db, leg.side, leg.realised_pnl)
            db.execute("INSERT INTO positions (run_id, ts_ms, side, qty, avail_qty, entry_price, leverage, "
                       "liquidation_price, unrealised_pnl, realised_pnl, pos_margin) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (self.run_id, ts, leg.side, *row))

    def _realised_of_close(self, db: sqlite3.Connection, side: str, realised: Decimal) -> None:
        """The exchange states realised PnL per leg, not per fill: a change of it after exactly one close
        fill of that leg is that fill's (after several, which fill made what is unknown: left NULL)."""
        before = self._realised.get(side)
        self._realised[side] = realised
        closes, self._closes[side] = self._closes.get(side, []), []
        if before is not None and len(closes) == 1 and realised != before:
            db.execute("UPDATE executions SET realised_pnl = ? WHERE exec_id = ?", (_text(realised - before), closes[0]))

    def _margin_row(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        row = tuple(_text(f.get(k) if f.get(k) is not None else Decimal(0))
                    for k in ("total", "available", "order_margin", "pos_margin"))
        if row == self._margin:
            return
        self._margin = row
        db.execute("INSERT INTO margins (run_id, ts_ms, total, available, order_margin, pos_margin) "
                   "VALUES (?,?,?,?,?,?)", (self.run_id, ts, *row))

    def _funding(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        db.execute("INSERT INTO funding (run_id, ts_ms, exchange_ms, side, qty, amount, rate) VALUES (?,?,?,?,?,?,?)",
                   (self.run_id, ts, f.get("ts_ex_ms"), f.get("side") or "", int(f.get("qty") or 0),
                    _text(f["amount"]), _text(f.get("rate"))))

    def _market_row(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        bid, ask = f.get("best_bid"), f.get("best_ask")
        mid = f.get("mid")
        if mid is None and bid is not None and ask is not None:
            mid = (bid + ask) / 2
        self._market = (_text(bid), _text(ask), _text(mid), _text(f.get("mark")))
        db.execute("INSERT INTO market (run_id, ts_ms, best_bid, best_ask, mid, mark, reason) VALUES (?,?,?,?,?,?,?)",
                   (self.run_id, ts, *self._market, f.get("reason") or "sample"))

    def _decision(self, db: sqlite3.Connection, ts: int, f: Mapping[str, Any]) -> None:
        db.execute("INSERT INTO requotes (run_id, ts_ms, kept, cancelled, created, best_bid, best_ask, net_position) "
                   "VALUES (?,?,?,?,?,?,?,?)", (self.run_id, ts, int(f.get("kept") or 0), int(f.get("cancelled") or 0),
                                                int(f.get("created") or 0), _text(f.get("best_bid")),
                                                _text(f.get("best_ask")), int(f.get("net_position") or 0)))

    def _other(self, db: sqlite3.Connection, ts: int, kind: str, f: Mapping[str, Any]) -> None:
        """Everything else: one line in ``events``."""
        kind, detail = describe(kind, f)
        data = json.dumps({k: _jsonable(v) for k, v in f.items()}, sort_keys=True) if f else None
        self._event_row(db, ts, kind, detail, data)

    def _event_row(self, db: sqlite3.Connection, ts: int, kind: str, detail: str, data: Optional[str]) -> None:
        db.execute("INSERT INTO events (run_id, ts_ms, kind, detail, data_json) VALUES (?,?,?,?,?)",
                   (self.run_id, ts, kind, detail, data))


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, Decimal):
        return _text(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def describe(kind: str, f: Mapping[str, Any]) -> Tuple[str, str]:
    """(events.kind, one line in English) for an event that has no table of its own."""
    if kind == "connection":
        return ("reconnect" if f.get("up") else "disconnect",
                "WebSocket " + ("connected" if f.get("up") else "down") + (f": {f['reason']}" if f.get("reason")
                                                                            else ""))
    if kind == "resync":
        return "resync", f"table {f.get('table')} resynced: {f.get('reason')}"
    if kind == "error":
        return "error", f"{f.get('where')}: {f.get('text')}"
    if kind == "pause":
        if f.get("reason") is None:
            return "resume", "quoting resumed"
        return "pause", f"paused: {f['reason']}" + (" (orders cancelled)" if f.get("cancel") else "")
    if kind == "kill_switch":
        return "kill_switch", (f"kill switch: equity {_text(f.get('equity'))} from {_text(f.get('start_equity'))} "
                               f"(limit {_text(f.get('limit'))})")
    if kind == "reload":
        changed = f.get("changed") or {}
        return "reload", "settings reloaded" + (f"; changed: {', '.join(sorted(changed))}" if changed else "")
    if kind == "run_start":
        return "start", f"run started (version {f.get('version')}, tag {f.get('run_tag')})"
    if kind == "run_stop":
        return "stop", f"run stopped with exit status {f.get('exit_code')}"
    return kind, kind.replace("_", " ")


def fills_of(db: sqlite3.Connection, order_ids: Sequence[str]) -> Dict[str, OrderFills]:
    """The journal's fills of these orders (every run), summed per order."""
    out: Dict[str, OrderFills] = {oid: OrderFills() for oid in order_ids}
    if not order_ids:
        return out
    wanted = set(order_ids)
    for order_id, qty, price, fee in db.execute("SELECT order_id, qty, price, fee FROM executions"):
        if order_id in wanted:
            out[order_id].add(int(qty), Decimal(price), Decimal(fee))
    return out


def upsert_order(db: sqlite3.Connection, run_id: int, ts: int, f: Mapping[str, Any]) -> None:
    """The ``orders`` row of one order as the exchange states it (fields of an ``Order``)."""
    db.execute("INSERT INTO orders (order_id, run_id, client_oid, side, close_flag, price, qty, status, filled_qty, "
               "avg_price, fee, ctime_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
               "ON CONFLICT(order_id) DO UPDATE SET status = excluded.status, filled_qty = excluded.filled_qty, "
               "avg_price = excluded.avg_price, fee = excluded.fee, updated_ms = excluded.updated_ms",
               (str(f["order_id"]), run_id, f.get("client_oid") or "", f.get("side"), int(f.get("close_flag") or 0),
                _text(f.get("price")), int(f.get("qty") or 0), int(f.get("status") or 0),
                int(f.get("filled_qty") or 0), _text(f.get("avg_price") or Decimal(0)),
                _text(f.get("fee") or Decimal(0)), f.get("ctime") or None, ts))
