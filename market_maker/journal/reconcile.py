"""Reconciliation at start: what filled while the bot was down, rebuilt from the order query.

GTE has no execution history. On a start with an existing journal (and at a stop), every own
order the journal did not know as final or whose executions fall short of its filled quantity,
and every own order placed after the newest one it knows
(a create whose answer was lost just before a crash), is read back from ``order/query``
(paging forward with ``gt_order_id``, all statuses). For each, the exchange's
``filled_qty``, fee and inverse notional (``filled_qty / avg_price``: the contract-weighted
harmonic mean makes qty / price add up) are compared with the journal's executions of that
order; a difference is journaled as one execution with source ``reconciled``:

* qty = exchange filled - journal filled, fee = exchange fee - journal fee (exact Decimals);
* price = qty / (exchange notional - journal notional), so the order's journal notional
  becomes the exchange's (the price is stored to 30 decimals; the journal's average price,
  rounded as the exchange rounds it, to 1e-8, is the exchange's ``avg_price``);
* exec id ``rec:<order_id>:<filled_qty>``: the same difference is never journaled twice,
  and a live execution whose ``cum_qty`` the reconciliation covered is skipped by the
  recorder (nothing is counted twice).

The comparison and the writes run in the journal writer's thread, in order with the
events, so fills arriving over the WebSocket meanwhile are neither lost nor doubled.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Dict, List, Optional, Sequence

from ..models import FINAL_STATUSES, Order
from .recorder import JournalRecorder, OrderFills, exact_decimal, fills_of, upsert_order

log = logging.getLogger("market_maker.journal")

PAGE = 100
MAX_PAGES = 100


@dataclass
class Difference:
    """A fill the journal missed: one ``reconciled`` execution."""

    order: Order
    qty: int
    price: Decimal
    fee: Decimal


@dataclass
class ReconcileResult:
    checked: int = 0                       # own orders compared
    fills: List[Difference] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # the journal holds more than the exchange says


def notional(order: Order) -> Fraction:
    """The exchange's inverse notional of an order: filled_qty / avg_price."""
    if not order.filled_qty or not order.avg_price:
        return Fraction(0)
    return Fraction(order.filled_qty) / Fraction(order.avg_price)


def difference(order: Order, held: OrderFills) -> Optional[Difference]:
    """What the exchange says filled beyond what the journal holds (None: nothing)."""
    qty = order.filled_qty - held.filled
    if qty <= 0:
        return None
    missed = notional(order) - held.notional
    price = exact_decimal(Fraction(qty) / missed) if missed > 0 else order.avg_price
    return Difference(order, qty, price, order.fee - held.fee)


def start_after(db: sqlite3.Connection) -> Optional[int]:
    """The order id after which to read the exchange's orders: just before the oldest the journal did
    not know as final or whose executions fall short of its filled quantity (the order's push came, an
    execution push was lost), or the newest it knows (None: an empty journal, nothing to rebuild)."""
    journaled = dict(db.execute("SELECT order_id, SUM(qty) FROM executions GROUP BY order_id"))
    ids = []
    for order_id, status, filled in db.execute("SELECT order_id, status, filled_qty FROM orders"):
        if str(order_id).isdigit():
            settled = status in FINAL_STATUSES and (journaled.get(order_id) or 0) >= (filled or 0)
            ids.append((int(order_id), settled))
    if not ids:
        return None
    newest = max(i for i, _ in ids)
    return min([newest, *(i - 1 for i, settled in ids if not settled)])


def exchange_orders(rest: Any, after: int, prefix: str, deadline: Optional[float] = None) -> List[Order]:
    """Our orders (``client_oid`` with ``prefix``) with an id above ``after``, all statuses
    (paging stops at ``deadline``, a ``time.monotonic()``: the oldest pages are then all that was read)."""
    found: Dict[str, Order] = {}
    gt = after
    for _ in range(MAX_PAGES):
        if deadline is not None and time.monotonic() > deadline:
            log.warning("Journal reconciliation: out of time after reading orders up to id %d", gt)
            break
        page = rest.query_orders(gt_order_id=str(gt), count=PAGE)
        for order in page:
            if order.client_oid.startswith(prefix):
                found[order.order_id] = order
        ids = [int(o.order_id) for o in page if o.order_id.isdigit()]
        if len(page) < PAGE or not ids or max(ids) <= gt:
            break
        gt = max(ids)
    return sorted(found.values(), key=lambda o: int(o.order_id) if o.order_id.isdigit() else 0)


def apply(db: sqlite3.Connection, recorder: JournalRecorder, orders: Sequence[Order], ts: int) -> ReconcileResult:
    """Compare ``orders`` (the exchange's) with the journal and journal the differences."""
    result = ReconcileResult(checked=len(orders))
    held = fills_of(db, [o.order_id for o in orders])
    for order in orders:
        mine = held[order.order_id]
        diff = difference(order, mine)
        if diff is None:
            if order.filled_qty < mine.filled or (order.filled_qty == mine.filled and order.fee != mine.fee):
                result.problems.append(f"order {order.order_id}: the journal has {mine.filled} filled, fee "
                                       f"{mine.fee}; the exchange {order.filled_qty}, fee {order.fee}")
        else:
            db.execute("INSERT OR IGNORE INTO executions (exec_id, run_id, ts_ms, exchange_ms, order_id, client_oid, "
                       "side, close_flag, price, qty, fee, maker, realised_pnl, source) "
                       "VALUES (?,?,?,NULL,?,?,?,?,?,?,?,NULL,NULL,'reconciled')",
                       (f"rec:{order.order_id}:{order.filled_qty}", recorder.run_id, ts, order.order_id,
                        order.client_oid, order.side, order.close_flag, format(diff.price, "f"), diff.qty,
                        format(diff.fee, "f")))
            mine.add(diff.qty, diff.price, diff.fee)
            result.fills.append(diff)
        state = recorder.fills(db, order.order_id)
        state.filled, state.fee, state.notional = mine.filled, mine.fee, mine.notional
        upsert_order(db, recorder.run_id, ts, {
            "order_id": order.order_id, "client_oid": order.client_oid, "side": order.side,
            "close_flag": order.close_flag, "price": order.price, "qty": order.qty, "status": order.status,
            "filled_qty": order.filled_qty, "avg_price": order.avg_price, "fee": order.fee,
            "ctime": order.ctime or None})
    detail = (f"reconciled {result.checked} own orders with the exchange: {len(result.fills)} fills missed "
              f"({sum(d.qty for d in result.fills)} contracts) journaled as 'reconciled'")
    db.execute("INSERT INTO events (run_id, ts_ms, kind, detail, data_json) VALUES (?,?,?,?,NULL)",
               (recorder.run_id, ts, "reconciled", detail))
    for problem in result.problems:
        db.execute("INSERT INTO events (run_id, ts_ms, kind, detail, data_json) VALUES (?,?,?,?,NULL)",
                   (recorder.run_id, ts, "error", "reconciliation: " + problem))
    return result


def reconcile(recorder: JournalRecorder, rest: Any, prefix: str, timeout: float = 60.0,
              at_stop: bool = False) -> ReconcileResult:
    """Rebuild what filled while the bot was down (at start) or while its socket was blind (``at_stop``:
    after the exit cancelled our orders, so the journal closes equal to the exchange; see the module
    docstring); raises what the order query raises. Runs in the writer's thread; waits for it."""
    outcome: Dict[str, Any] = {}
    done = threading.Event()
    deadline = time.monotonic() + timeout

    def job(db: sqlite3.Connection) -> None:
        try:
            after = start_after(db)
            if after is None:  # a new journal: nothing to rebuild
                outcome["result"] = ReconcileResult()
                return
            orders = exchange_orders(rest, after, prefix, deadline=deadline)
            outcome["result"] = apply(db, recorder, orders, int(recorder.clock.time() * 1000))
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc
        finally:
            done.set()
    recorder.submit(job)
    if not done.wait(timeout + 5):  # the paging stops at the deadline; this is for a stuck request
        raise TimeoutError(f"the journal's reconciliation took more than {timeout:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    result: ReconcileResult = outcome["result"]
    if result.fills:
        log.info("Journal: %d fills (%d contracts) %s; journaled as reconciled", len(result.fills),
                 sum(d.qty for d in result.fills),
                 "the WebSocket missed were read back from the exchange" if at_stop
                 else "happened while the bot was down")
    for problem in result.problems:
        log.error("Journal reconciliation: %s", problem)
    return result
