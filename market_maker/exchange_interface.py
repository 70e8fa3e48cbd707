"""ExchangeInterface: everything the manager does to the exchange, and the one view it reads.

It owns the REST and WebSocket clients, our own-order overlay (``tracker``), the
creates in doubt, the cancel pacing and this run's ``client_oid`` tag. The manager
decides; this carries the decisions out and reports what the exchange says.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import threading
import uuid
from collections import Counter
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Set

from .clock import SYSTEM_CLOCK, Clock, ms
from .events import EventBus
from .gte import errors
from .gte.rest import MAX_BATCH_CANCEL, MAX_CLIENT_OID, ORDER_CANCEL, ORDER_CREATE, SETTLE_GRACE_MS, GteRest
from .gte.signing import DEFAULT_EXPIRES_IN_MS, Credentials
from .gte.ws import GteWebSocket
from .models import OPEN_STATUSES, Book, DesiredOrder, MarketSnapshot, Order
from .paper import PAPER_DEPTH, PaperLedger
from .settings import Settings
from .tracker import OrderTracker

log = logging.getLogger("market_maker.manager")

RUN_TAG_BYTES = 3  # 6 hex characters after ORDERID_PREFIX in every client_oid of a run
# An earlier run's create can execute until its api-expires (plus the exchange's processing time);
# an order with another run's tag appearing later than that after our start is another live bot.
LEFTOVER_WINDOW_S = (DEFAULT_EXPIRES_IN_MS + SETTLE_GRACE_MS) / 1000
# Sequence numbers reveal a lost push only when the table's next message comes: the last message of a
# quiet table (an order's final update) can be lost unseen. So our open orders are compared with the
# exchange's over REST this often; a difference seen twice, AUDIT_CONFIRM_S apart, resyncs the table.
ORDER_AUDIT_S = 10.0
AUDIT_CONFIRM_S = 1.0


def fmt(value: Optional[Decimal]) -> str:
    return "-" if value is None else format(value, "f")


class AnotherInstance(Exception):
    """Another bot trades with our ORDERID_PREFIX on this account: stop rather than fight it."""


class ExchangeInterface:
    """Everything the manager does to the exchange, and the one view it reads.

    In DRY_RUN no secret is held, the REST transport refuses order requests, and
    orders live only in a local paper book so the converge logs read the same; the
    queue model fills them against the public book and trades (paper.py).
    """

    def __init__(self, settings: Settings, base_url: str, ws_url: str, api_key: Optional[str],
                 api_secret: Optional[str], *, rest: Optional[GteRest] = None, ws: Optional[GteWebSocket] = None,
                 clock: Clock = SYSTEM_CLOCK):
        self.settings = settings
        self.clock = clock
        self.events = EventBus(clock)  # what happened, for the journal, metrics, notifications
        self.dry_run = bool(settings.DRY_RUN)
        self.prefix = settings.ORDERID_PREFIX
        # Our orders' client_oid: the prefix, this run's tag, a random part. An open order with our prefix
        # and another run's tag is a leftover of an earlier run, or another bot using our prefix.
        self.run_tag = secrets.token_hex(RUN_TAG_BYTES)
        self.own_prefix = self.prefix + self.run_tag
        self._leftovers: Set[str] = set()  # ids of orders with our prefix that earlier runs left
        self._run_started: Optional[float] = None  # self.clock.monotonic() when this run took over the prefix
        credentials = None
        if not self.dry_run and api_key and api_secret:
            credentials = Credentials(api_key, api_secret)
        self.rest = rest or GteRest(base_url, credentials, timeout=settings.TIMEOUT,
                                    order_id_prefix=self.prefix, asset=settings.SETTLECURRENCY,
                                    symbol=settings.SYMBOL, read_only=self.dry_run)
        self.ws = ws or GteWebSocket(ws_url, settings.SYMBOL, settings.SETTLECURRENCY, credentials,
                                     rest=self.rest if credentials else None,
                                     ping_interval=settings.WS_PING_INTERVAL,
                                     silence_timeout=settings.WS_SILENCE_TIMEOUT,
                                     on_event=self._on_event)
        self.tracker = OrderTracker()
        self.counters: Counter = Counter()
        self.paper = PaperLedger(self.events)  # DRY_RUN: paper orders filled by the queue model (paper.py)
        self._paper: Dict[str, Order] = self.paper.orders
        self._paper_ids = itertools.count(1)
        self._wake = threading.Event()
        self._kinds: Set[str] = set()
        self._kinds_lock = threading.Lock()
        self._cancel_retry_at: Optional[float] = None  # monotonic time a deferred cancel can go
        self._audit_at = clock.monotonic() + ORDER_AUDIT_S  # when to compare our order table with REST
        self._suspects: Set[str] = set()  # order ids the last audit found out of line
        self._request_ids = itertools.count(1)  # groups the per-order ``order`` events of one request
        # The order table ``own_open_orders`` last read, kept alive with the orders of this run in it: a
        # snapshot taken while no order changed holds the very same (immutable) table.
        self._table_seen: Optional[tuple] = None
        self._table_own: List[Order] = []
        set_recorder = getattr(self.ws, "set_recorder", None)
        if set_recorder is not None:  # executions, positions, margin, market samples from the socket's tables
            set_recorder(self.events.emit, self.events.__bool__)

    # -- events (called in the WebSocket thread: record and wake, nothing else)
    def _on_event(self, kind: str) -> None:
        with self._kinds_lock:
            self._kinds.add(kind)
        self._wake.set()

    def wait_for_events(self, timeout: float) -> Set[str]:
        """Block until the WebSocket reports something or the timeout passes; returns the event kinds.

        Returns earlier when owed work falls due: a create in doubt to settle, cancels deferred by
        the rate limit (the kind "due")."""
        due = self._next_due()
        early = due is not None and due < timeout
        woken = self._wake.wait(due if early else timeout)
        self._wake.clear()
        with self._kinds_lock:
            kinds, self._kinds = self._kinds, set()
        if early and not woken:
            kinds.add("due")
        # No tracker.forget_all() on resync: an order whose REST answer is in but whose echo is not would
        # vanish from our view and be created twice. Tracked orders leave the overlay when the rebuilt
        # table (partial + REST reconciliation of recent final orders) knows them, or after the TTL.
        return kinds

    def wake(self) -> None:
        self._wake.set()

    def _next_due(self) -> Optional[float]:
        """Seconds until owed work falls due (None: nothing owed)."""
        waits = []
        settle_ms = self.tracker.next_due_ms()
        if settle_ms is not None:
            waits.append((settle_ms - ms(self.clock)) / 1000)
        if self._cancel_retry_at is not None:
            wait = self._cancel_retry_at - self.clock.monotonic()
            if wait > 0:
                waits.append(wait)
            else:
                self._cancel_retry_at = None  # its wake-up has happened: the cycle re-plans the cancels
        return max(0.0, min(waits)) if waits else None

    def deadline(self, at: float) -> "contextlib.AbstractContextManager[None]":
        """No REST request is sent, waited for or retried past ``at`` (``self.clock.monotonic()``) in the block."""
        bound = getattr(self.rest, "deadline", None)
        return bound(at) if bound is not None else contextlib.nullcontext()

    # -- lifecycle
    def connect(self) -> None:
        self.ws.start()

    def close(self) -> None:
        self.ws.stop()

    @property
    def connected(self) -> bool:
        return self.ws.connected

    # -- the view
    def snapshot(self, depth: int = 50) -> MarketSnapshot:
        """One consistent view: tables, book, and which of our unechoed creates the order table knew."""
        snap = self.ws.snapshot(depth, watch=self.tracker.awaiting_echo())
        if self.dry_run:
            snap = self.paper.update(snap, self.ws.top_of_book(PAPER_DEPTH), ms(self.clock))
        return snap

    def top_of_book(self) -> Book:
        """The best bid and ask now (fresher than the cycle's snapshot)."""
        return self.ws.top_of_book(1)

    def is_own(self, order: Order) -> bool:
        """Placed by this run (or left by an earlier one and taken over)."""
        return order.client_oid.startswith(self.own_prefix) or order.order_id in self._leftovers

    def new_client_oid(self) -> str:
        return self.own_prefix + uuid.uuid4().hex[:MAX_CLIENT_OID - len(self.own_prefix)]

    def _check_foreign(self, orders: Sequence[Order]) -> None:
        """Orders with our prefix but another run's tag: an earlier run's create executing late (taken
        over as a leftover), or -- once such a create can no longer execute -- another live bot."""
        for o in orders:
            if o.client_oid.startswith(self.own_prefix) or o.order_id in self._leftovers:
                continue
            since = self.clock.monotonic() - (self._run_started or self.clock.monotonic())
            if since <= LEFTOVER_WINDOW_S:
                log.info("Order %s left by an earlier run turned up: taking it over", o.client_oid)
                self._leftovers.add(o.order_id)
                continue
            raise AnotherInstance(
                f"order {o.client_oid} ({o.side} {o.remaining} @ {fmt(o.price)}) carries our ORDERID_PREFIX "
                f"{self.prefix!r} but another run's tag: another bot is trading with this prefix on this "
                f"account. Give each bot its own ORDERID_PREFIX")

    def own_open_orders(self, snap: MarketSnapshot) -> List[Order]:
        if self.dry_run:
            return list(self._paper.values())
        table = snap.orders
        if table is self._table_seen:  # the same table as last cycle (no order changed): the same own orders
            ws_own = self._table_own
        else:
            prefix, own_prefix = self.prefix, self.own_prefix
            ws_own = [o for o in table if o.client_oid.startswith(prefix)]
            if type(table) is tuple and all(o.client_oid.startswith(own_prefix) for o in ws_own):
                self._table_seen, self._table_own = table, ws_own
            else:  # not remembered: whether an order with another run's tag is taken over depends on the time
                self._check_foreign(ws_own)
                ws_own = [o for o in ws_own if self.is_own(o)]
        # ``snap.echoed`` was taken with ``snap.orders``: an echo arriving since cannot hide an order
        return [o for o in self.tracker.merge(ws_own, snap.echoed, ms(self.clock)) if o.status in OPEN_STATUSES]

    @property
    def abandoned_in_doubt(self) -> int:
        """Creates in doubt the ladder gave up on: hidden, but they may still execute."""
        return self.tracker.abandoned

    def maintain(self) -> None:
        """Housekeeping before a decision: settle creates in doubt, audit the order table."""
        self.settle_in_doubt()
        self.audit_orders()

    def audit_orders(self) -> None:
        """Compare our open orders in the socket's table with the exchange's (REST), every
        ``ORDER_AUDIT_S``; an order in one and not the other, twice in a row and not explained by a
        request of ours in flight, resubscribes the order table (partial + REST reconciliation)."""
        now = self.clock.monotonic()
        if self.dry_run or now < self._audit_at:
            return
        before = {o.order_id for o in self.ws.snapshot(1).orders if self.is_own(o)}
        try:
            exchange = {o.order_id for o in self.rest.open_orders() if self.is_own(o)}
        except errors.GteError as exc:
            log.info("Order audit skipped: %s", exc)
            self._audit_at = now + AUDIT_CONFIRM_S
            return
        after = {o.order_id for o in self.ws.snapshot(1).orders if self.is_own(o)}
        differ = ((before & after) - exchange) | (exchange - before - after)
        differ -= self.tracker.in_flight()
        if differ and differ & self._suspects:
            self.ws.resync("order", f"{len(differ)} own orders differ from the exchange's")
            differ = set()
        self._suspects = differ
        self._audit_at = now + (AUDIT_CONFIRM_S if differ else ORDER_AUDIT_S)

    def blocked_levels(self) -> set:
        """(side, price, close_flag) where no order may be created now: a create given up there may
        still execute (it is cancelled when it turns up, and the level is free again)."""
        return self.tracker.abandoned_levels() if self.tracker.doubtful else set()

    def settle_in_doubt(self) -> int:
        """Look up the creates in doubt whose moment has come: adopt, cancel or forget each.

        Returns how many stay in doubt. A failed lookup is retried a second later."""
        if self.dry_run or not self.tracker.doubtful:
            return 0
        now = ms(self.clock)
        for client_oid in self.tracker.due(now):
            try:
                found = self.rest.find_order_by_client_oid(client_oid)
            except errors.GteError as exc:
                log.warning("Could not look up order %s yet (%s); retrying", client_oid, exc)
                self.tracker.postpone(client_oid, now + 1000)
                continue
            abandoned = self.tracker.settle(client_oid, found, now)
            if found is None:
                log.info("Order %s never reached the book: forgotten", client_oid)
            elif not found.is_open:
                log.info("Order %s turned up, already final (status %d)", client_oid, found.status)
            elif abandoned:
                log.info("Order %s turned up after it was given up: cancelling it", client_oid)
                self.cancel_orders([found], allow_batch=False, block=True)
            else:
                log.info("Order %s turned up: %s %d @ %s", client_oid, found.side, found.remaining, fmt(found.price))
        return self.tracker.doubtful

    # -- actions
    def create_order(self, desired: DesiredOrder) -> Optional[Order]:
        """Send one order; returns it, or None when the exchange refused it (logged)."""
        kind = "close" if desired.close_flag else "open"
        if self.dry_run:
            order = Order(order_id=f"dry-{next(self._paper_ids)}", client_oid=self.new_client_oid(), side=desired.side,
                          close_flag=desired.close_flag, price=desired.price, qty=desired.qty, filled_qty=0, status=2)
            self.paper.add(order)
            log.info("Would create %s order (%s): %d @ %s (dry run)", desired.side, kind, desired.qty, fmt(desired.price))
            self._order_event("create", desired, "paper", None, order)
            return order
        log.info("Creating %s order (%s): %d @ %s", desired.side, kind, desired.qty, fmt(desired.price))
        self.counters["orders_sent"] += 1
        client_oid = self.new_client_oid()
        sent = self.clock.monotonic()
        try:
            order = self.rest.create_order(desired.side, desired.price, desired.qty, close_flag=desired.close_flag,
                                           client_oid=client_oid)
        except (errors.InsufficientMargin, errors.PositionExceeded, errors.BadParameter) as exc:
            self._order_event("create", desired, "refused", sent, client_oid=client_oid, error=exc)
            self.counters["orders_rejected"] += 1
            log.warning("Order %s %d @ %s refused: %s", desired.side, desired.qty, fmt(desired.price), exc)
            return None
        except errors.OrderInDoubt as exc:
            self._order_event("create", desired, "in_doubt", sent, client_oid=client_oid, error=exc)
            self.counters["orders_in_doubt"] += 1
            placeholder = Order(order_id="", client_oid=exc.client_oid, side=desired.side,
                                close_flag=desired.close_flag, price=desired.price, qty=desired.qty, filled_qty=0,
                                status=1)
            self.tracker.in_doubt(placeholder, exc.settles_at_ms)
            log.warning("Order %s %d @ %s: no answer and not found yet; counted as resting, never sent twice, "
                        "looked up again in %.1fs", desired.side, desired.qty, fmt(desired.price),
                        max(0, exc.settles_at_ms - ms(self.clock)) / 1000)
            return None
        except errors.GteError as exc:
            self._order_event("create", desired, "error", sent, client_oid=client_oid, error=exc)
            raise
        self._order_event("create", desired, "ok", sent, order)
        self.tracker.created(order, ms(self.clock))
        return order

    def _order_event(self, action: str, order: object, outcome: str, sent: Optional[float],
                     placed: Optional[Order] = None, client_oid: Optional[str] = None,
                     error: Optional[BaseException] = None, request_id: Optional[int] = None) -> None:
        """Tell the event bus about one order of a request (nothing when no sink listens)."""
        events = self.events
        if not events:
            return
        latency = None if sent is None else (self.clock.monotonic() - sent) * 1000
        placed = placed if placed is not None else order if isinstance(order, Order) else None
        events.emit("order", action=action, client_oid=placed.client_oid if placed else client_oid,
                    order_id=(placed.order_id or None) if placed else None,
                    side=order.side, price=order.price, qty=order.qty,  # type: ignore[attr-defined]
                    close_flag=order.close_flag,  # type: ignore[attr-defined]
                    outcome=outcome, status=placed.status if placed and action == "create" else None,
                    error_code=getattr(error, "code", None), latency_ms=latency,
                    request_id=request_id if request_id is not None else next(self._request_ids))

    def wait_for_create_slot(self) -> float:
        """Wait on the clock until the create rate limit lets an order go out at once; the seconds waited.

        A create that waited inside the REST client's limiter would meet a book its post-only check
        never saw: the manager waits here first, then checks, then sends."""
        if self.dry_run:
            return 0.0
        waited = 0.0
        wait = self.rest.rate_limiter.time_until_available(ORDER_CREATE)
        while wait > 0:
            self.clock.sleep(wait)
            waited += wait
            wait = self.rest.rate_limiter.time_until_available(ORDER_CREATE)
        return waited

    def cancel_batch_ready(self) -> bool:
        return self.rest.rate_limiter.time_until_available("cancel_batch") <= 0

    def cancel_orders(self, orders: Sequence[Order], allow_batch: bool = True, block: bool = False) -> int:
        """Cancel ours: up to 50 through one cancel_batch when its window allows, the others one by one.

        Without ``block`` single cancels go only while the cancel rate limit allows them now; the
        others stay in our view and are cancelled in a later cycle (the loop wakes when the limit
        allows). An order still in doubt cannot be cancelled yet: it is abandoned (cancelled if it
        turns up). Returns how many cancels were deferred.
        """
        prefix = self.prefix
        orders = [o for o in orders if o.client_oid.startswith(prefix)]  # is_own, inlined
        if not orders:
            return 0
        if log.isEnabledFor(logging.INFO):  # the arguments cost ~1 us an order even when not logged
            for order in orders:
                log.info("%s %s order (%s): %d @ %s", "Would cancel" if self.dry_run else "Cancelling", order.side,
                         "close" if order.close_flag else "open", order.remaining, fmt(order.price))
        if self.dry_run:
            for order in orders:
                self.paper.remove(order.order_id)
                self._order_event("cancel", order, "paper", None)
            return 0
        doubtful = [o.client_oid for o in orders if not o.order_id]
        if doubtful:
            self.tracker.abandon(doubtful)
        ids = [o.order_id for o in orders if o.order_id]
        singles = ids
        by_id = {o.order_id: o for o in orders} if self.events else {}
        if allow_batch and len(ids) >= 2 and self.cancel_batch_ready():
            sent_at, request_id = self.clock.monotonic(), next(self._request_ids)
            try:
                self.rest.cancel_batch(ids[:MAX_BATCH_CANCEL])
                self.counters["cancel_batches"] += 1
                singles = ids[MAX_BATCH_CANCEL:]
                outcome, failure = "ok", None
            except (errors.RateLimited, errors.ServerError, errors.TransportError) as exc:
                log.warning("cancel_batch failed (%s); cancelling one by one", exc)
                outcome, failure = "error", exc
            for order_id in ids[:MAX_BATCH_CANCEL] if by_id else ():
                self._order_event("cancel_batch", by_id[order_id], outcome, sent_at, error=failure,
                                  request_id=request_id)
        deferred = []
        limiter = self.rest.rate_limiter
        for i, order_id in enumerate(singles):
            if not block:
                wait = limiter.time_until_available(ORDER_CANCEL)
                if wait > 0:
                    deferred = singles[i:]
                    self._cancel_retry_at = self.clock.monotonic() + wait
                    log.info("Cancel rate limit reached: %d cancels deferred by %.2fs", len(deferred), wait)
                    for later in deferred if by_id else ():
                        self._order_event("cancel", by_id[later], "deferred", None)
                    break
            sent_at, outcome, failure = self.clock.monotonic(), "ok", None
            try:
                self.rest.cancel_order(order_id)
            except errors.OrderNotFound as exc:
                outcome, failure = "not_found", exc  # already filled or cancelled: gone either way
                self.counters["cancels_found_gone"] += 1
            except errors.GteError as exc:
                if by_id:
                    self._order_event("cancel", by_id[order_id], "error", sent_at, error=exc)
                raise
            if by_id:
                self._order_event("cancel", by_id[order_id], outcome, sent_at, error=failure)
        sent = ids[:len(ids) - len(deferred)]
        self.counters["orders_cancelled"] += len(sent)
        self.tracker.cancelled(sent, ms(self.clock))
        return len(deferred)

    def cancel_leftovers(self) -> int:
        """At start: cancel every open order with our prefix that earlier runs left; this run takes over
        the prefix. Returns how many there were."""
        self._run_started = self.clock.monotonic()
        if self.dry_run:
            return 0
        orders = [o for o in self.rest.open_orders() if o.client_oid.startswith(self.prefix)]
        self._leftovers.update(o.order_id for o in orders)
        if orders:
            log.info("Cancelling all %d own orders: left over from a previous run", len(orders))
            self.cancel_orders(orders, block=True)
        return len(orders)

    def cancel_all_own(self, reason: str) -> int:
        """Cancel every open order of this run (and leftovers), read from REST (works with the socket down)."""
        if self.dry_run:
            orders = list(self._paper.values())
        else:
            orders = [o for o in self.rest.open_orders() if self.is_own(o)]
            self.tracker.abandon_all()  # a create in doubt that turns up later is cancelled then
        if orders:
            log.info("Cancelling all %d own orders: %s", len(orders), reason)
            self.cancel_orders(orders, block=True)
        return len(orders)

    def set_leverage(self, leverage: Decimal, margin_mode: str) -> None:
        if self.dry_run:
            return
        mode = 1 if margin_mode == "cross" else 2
        if mode == 1:
            self.rest.change_leverage(leverage, mode)
        else:
            for long_flag in (1, 0):
                self.rest.change_leverage(leverage, mode, long_flag)
