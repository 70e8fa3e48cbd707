"""The market maker: ExchangeInterface (the hands) and OrderManager (the decisions).

The loop that drives them is ``runner.Runner``; the command line is ``cli.run``.

Data flows one way: WebSocket tables -> snapshot -> quoting -> converge -> REST.
The OrderManager decides in its own thread; the WebSocket thread only records
what happened and wakes it up.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
import secrets
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import converge, quoting
from .gte import errors
from .gte.rest import MAX_BATCH_CANCEL, MAX_CLIENT_OID, ORDER_CANCEL, SETTLE_GRACE_MS, GteRest
from .gte.signing import DEFAULT_EXPIRES_IN_MS, Credentials
from .gte.ws import GteWebSocket
from .models import OPEN_STATUSES, Book, DesiredOrder, MarketSnapshot, Order
from .settings import Settings
from .tracker import OrderTracker

log = logging.getLogger("market_maker.manager")

RUN_TAG_BYTES = 3  # 6 hex characters after ORDERID_PREFIX in every client_oid of a run
# An earlier run's create can execute until its api-expires (plus the exchange's processing time);
# an order with another run's tag appearing later than that after our start is another live bot.
LEFTOVER_WINDOW_S = (DEFAULT_EXPIRES_IN_MS + SETTLE_GRACE_MS) / 1000

def now_ms() -> int:
    return int(time.time() * 1000)


def fmt(value: Optional[Decimal]) -> str:
    return "-" if value is None else format(value, "f")


def _describe(exc: BaseException) -> str:
    """An exchange error as its message; anything else with its class, so a bug is not mistaken for one."""
    return str(exc) if isinstance(exc, errors.GteError) else f"{type(exc).__name__}: {exc}"


class KillSwitch(Exception):
    """Equity fell by MAX_DRAWDOWN: stop trading."""


class AnotherInstance(Exception):
    """Another bot trades with our ORDERID_PREFIX on this account: stop rather than fight it."""


# ----------------------------------------------------------------------------------------------------------------------
# ExchangeInterface


class ExchangeInterface:
    """Everything the manager does to the exchange, and the one view it reads.

    In DRY_RUN no secret is held, the REST transport refuses order requests, and
    orders live only in a local paper book so the converge logs read the same.
    """

    def __init__(self, settings: Settings, base_url: str, ws_url: str, api_key: Optional[str],
                 api_secret: Optional[str], *, rest: Optional[GteRest] = None, ws: Optional[GteWebSocket] = None):
        self.settings = settings
        self.dry_run = bool(settings.DRY_RUN)
        self.prefix = settings.ORDERID_PREFIX
        # Our orders' client_oid: the prefix, this run's tag, a random part. An open order with our prefix
        # and another run's tag is a leftover of an earlier run, or another bot using our prefix.
        self.run_tag = secrets.token_hex(RUN_TAG_BYTES)
        self.own_prefix = self.prefix + self.run_tag
        self._leftovers: Set[str] = set()  # ids of orders with our prefix that earlier runs left
        self._run_started: Optional[float] = None  # time.monotonic() when this run took over the prefix
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
        self._paper: Dict[str, Order] = {}
        self._paper_ids = itertools.count(1)
        self._wake = threading.Event()
        self._kinds: Set[str] = set()
        self._kinds_lock = threading.Lock()
        self._cancel_retry_at: Optional[float] = None  # monotonic time a deferred cancel can go

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
            waits.append((settle_ms - now_ms()) / 1000)
        if self._cancel_retry_at is not None:
            wait = self._cancel_retry_at - time.monotonic()
            if wait > 0:
                waits.append(wait)
            else:
                self._cancel_retry_at = None  # its wake-up has happened: the cycle re-plans the cancels
        return max(0.0, min(waits)) if waits else None

    def deadline(self, at: float) -> "contextlib.AbstractContextManager[None]":
        """No REST request is sent, waited for or retried past ``at`` (``time.monotonic()``) in the block."""
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
        return self.ws.snapshot(depth, watch=self.tracker.awaiting_echo())

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
            since = time.monotonic() - (self._run_started or time.monotonic())
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
        prefix, own_prefix = self.prefix, self.own_prefix
        ws_own = [o for o in snap.orders if o.client_oid.startswith(prefix)]
        if not all(o.client_oid.startswith(own_prefix) for o in ws_own):
            self._check_foreign(ws_own)
            ws_own = [o for o in ws_own if self.is_own(o)]
        # ``snap.echoed`` was taken with ``snap.orders``: an echo arriving since cannot hide an order
        return [o for o in self.tracker.merge(ws_own, snap.echoed, now_ms()) if o.status in OPEN_STATUSES]

    @property
    def abandoned_in_doubt(self) -> int:
        """Creates in doubt the ladder gave up on: hidden, but they may still execute."""
        return self.tracker.abandoned

    def settle_in_doubt(self) -> int:
        """Look up the creates in doubt whose moment has come: adopt, cancel or forget each.

        Returns how many stay in doubt. A failed lookup is retried a second later."""
        if self.dry_run or not self.tracker.doubtful:
            return 0
        now = now_ms()
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
            self._paper[order.order_id] = order
            log.info("Would create %s order (%s): %d @ %s (dry run)", desired.side, kind, desired.qty, fmt(desired.price))
            return order
        log.info("Creating %s order (%s): %d @ %s", desired.side, kind, desired.qty, fmt(desired.price))
        self.counters["orders_sent"] += 1
        try:
            order = self.rest.create_order(desired.side, desired.price, desired.qty, close_flag=desired.close_flag,
                                           client_oid=self.new_client_oid())
        except (errors.InsufficientMargin, errors.PositionExceeded, errors.BadParameter) as exc:
            self.counters["orders_rejected"] += 1
            log.warning("Order %s %d @ %s refused: %s", desired.side, desired.qty, fmt(desired.price), exc)
            return None
        except errors.OrderInDoubt as exc:
            self.counters["orders_in_doubt"] += 1
            placeholder = Order(order_id="", client_oid=exc.client_oid, side=desired.side,
                                close_flag=desired.close_flag, price=desired.price, qty=desired.qty, filled_qty=0,
                                status=1)
            self.tracker.in_doubt(placeholder, exc.settles_at_ms)
            log.warning("Order %s %d @ %s: no answer and not found yet; counted as resting, never sent twice, "
                        "looked up again in %.1fs", desired.side, desired.qty, fmt(desired.price),
                        max(0, exc.settles_at_ms - now_ms()) / 1000)
            return None
        self.tracker.created(order, now_ms())
        return order

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
                self._paper.pop(order.order_id, None)
            return 0
        doubtful = [o.client_oid for o in orders if not o.order_id]
        if doubtful:
            self.tracker.abandon(doubtful)
        ids = [o.order_id for o in orders if o.order_id]
        singles = ids
        if allow_batch and len(ids) >= 2 and self.cancel_batch_ready():
            try:
                self.rest.cancel_batch(ids[:MAX_BATCH_CANCEL])
                self.counters["cancel_batches"] += 1
                singles = ids[MAX_BATCH_CANCEL:]
            except (errors.RateLimited, errors.ServerError, errors.TransportError) as exc:
                log.warning("cancel_batch failed (%s); cancelling one by one", exc)
        deferred = []
        limiter = self.rest.rate_limiter
        for i, order_id in enumerate(singles):
            if not block:
                wait = limiter.time_until_available(ORDER_CANCEL)
                if wait > 0:
                    deferred = singles[i:]
                    self._cancel_retry_at = time.monotonic() + wait
                    log.info("Cancel rate limit reached: %d cancels deferred by %.2fs", len(deferred), wait)
                    break
            try:
                self.rest.cancel_order(order_id)
            except errors.OrderNotFound:
                pass  # already filled or cancelled: gone either way
        sent = ids[:len(ids) - len(deferred)]
        self.counters["orders_cancelled"] += len(sent)
        self.tracker.cancelled(sent, now_ms())
        return len(deferred)

    def cancel_leftovers(self) -> int:
        """At start: cancel every open order with our prefix that earlier runs left; this run takes over
        the prefix. Returns how many there were."""
        self._run_started = time.monotonic()
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


# ----------------------------------------------------------------------------------------------------------------------
# OrderManager


class OrderManager:
    """A BitMEX-style grid: ORDER_PAIRS buys and sells laddered around the market.

    Subclass and override ``place_orders()`` for your own strategy; call
    ``converge_orders(buy_orders, sell_orders)`` with the orders you want resting.
    """

    book_depth = 10  # levels per side in self.snap.book; the grid needs only the touch, raise it for your strategy
    resync_grace = 2.0  # seconds our orders may rest while a table resyncs; then they are cancelled

    def __init__(self, settings: Settings, exchange: ExchangeInterface, rng: Optional[random.Random] = None):
        self.settings = settings
        self.exchange = exchange
        self.rng = rng or random.Random()
        self.snap: Optional[MarketSnapshot] = None
        self.live: Optional[List[Order]] = None
        self.start_time = time.time()
        self.start_equity: Optional[Decimal] = None
        self.start_realised: Optional[Decimal] = None
        self.start_traded = 0
        self.start_fills = 0
        self.start_maker_fills = 0
        self.start_fees = Decimal(0)
        self.start_positions: Tuple[Optional[Decimal], Optional[Decimal]] = (None, None)
        self.paused: Optional[str] = None
        self._cancel_owed = False
        self._last_send = 0.0
        self._params: Optional[quoting.QuoteParams] = None

    # -- lifecycle
    def start(self, fresh: bool = True) -> None:
        """First start: cancel orders left by a previous run and set leverage. Reload: just adopt the state."""
        self.snap = self.exchange.snapshot(self.book_depth)
        if fresh:
            count = self.exchange.cancel_leftovers()
            if not count:
                log.info("No own orders left over from a previous run")
            self.exchange.set_leverage(self.settings.LEVERAGE, self.settings.MARGIN_MODE)
            log.info("Leverage set to %s (%s margin)", fmt(self.settings.LEVERAGE), self.settings.MARGIN_MODE)
        self.snap = self.exchange.snapshot(self.book_depth)
        self.start_equity = self.equity()
        self.start_realised = self.realised_pnl()
        self.start_traded = self.snap.contracts_traded
        self.start_fills, self.start_fees = self.snap.fill_count, self.snap.fees_paid
        self.start_maker_fills = self.snap.maker_fill_count
        self.print_status()

    exit_cancel_timeout = 15.0  # seconds to keep retrying the cancel-all on exit (a rate-limit burst lasts seconds)
    exit_retry_wait = 0.5

    def exit(self) -> None:
        """Cancel our orders and print the run's summary.

        Transient errors (rate limit, 5xx, no answer) are retried until a fresh
        read finds no own open order and no create is in doubt any more (one that
        turns up late is cancelled), for at most ``exit_cancel_timeout`` seconds.
        """
        deadline = time.monotonic() + self.exit_cancel_timeout
        with self.exchange.deadline(deadline):
            self._cancel_all_on_exit(deadline)
        self.print_summary()

    def _cancel_all_on_exit(self, deadline: float) -> None:
        reason = "shutting down"
        while True:
            try:
                left = self.exchange.cancel_all_own(reason)
                doubtful = self.exchange.settle_in_doubt()  # a late create that turns up is cancelled
                if not left and not doubtful:
                    break
                if left:
                    reason = "shutting down (left after the previous attempt)"
                if time.monotonic() >= deadline:
                    log.error("Own orders still open or in doubt after %.0fs of cancelling on exit",
                              self.exit_cancel_timeout)
                    break
                if not left:  # waiting for creates in doubt to settle
                    time.sleep(self.exit_retry_wait)
            except errors.AuthenticationError as exc:
                log.error("Could not cancel all orders on exit: %s", exc)
                break
            except Exception as exc:  # whatever goes wrong (bad data, a bug): keep cancelling until the deadline
                if time.monotonic() >= deadline:
                    log.error("Could not cancel all orders on exit: %s", _describe(exc))
                    break
                log.warning("Cancelling all orders on exit failed, retrying: %s", _describe(exc))
                time.sleep(self.exit_retry_wait)

    # -- one decision
    def step(self) -> None:
        """Settle creates in doubt whose moment has come, sanity checks, then requote."""
        self.exchange.settle_in_doubt()
        self.snap = self.exchange.snapshot(self.book_depth)
        self.live = None
        if not self.sanity_check():
            return
        self.place_orders()

    @property
    def params(self) -> quoting.QuoteParams:
        if self._params is None:
            self._params = quoting.QuoteParams.from_settings(self.settings, self.tick_size)
        return self._params

    @property
    def tick_size(self) -> Decimal:
        instrument = self.snap.instrument if self.snap else None
        return instrument.tick_size if instrument else Decimal(self.settings.SIM_TICK_SIZE)

    def own_orders(self) -> List[Order]:
        """Our open orders as of this cycle's snapshot (including ones the socket has not echoed yet)."""
        if self.live is None:
            self.live = self.exchange.own_open_orders(self.snap)
        return self.live

    def place_orders(self) -> None:
        """Build the ladder and converge to it. Override for a custom strategy."""
        ladder = quoting.build_ladder(self.snap.book, self.own_orders(), self.snap.positions, self.params, self.rng)
        self.start_positions = (ladder.start_buy, ladder.start_sell)
        self.converge_orders(list(ladder.buys), list(ladder.sells))

    def converge_orders(self, buy_orders: Sequence[DesiredOrder], sell_orders: Sequence[DesiredOrder]) -> None:
        """Make the live orders equal the given ones with as few calls as possible.

        Orders converge cannot honour (our buys crossing our sells, two at one price, a size of 0)
        are refused whole, and nothing is sent this cycle.
        """
        live = self.own_orders()
        max_open = 2 * self.settings.ORDER_PAIRS
        try:
            plan = converge.plan_converge(buy_orders, sell_orders, live, self.settings.RELIST_INTERVAL, max_open)
        except ValueError as exc:
            log.error("Refusing to quote: %s", exc)
            return
        if plan.reason:
            log.warning("Rebuilding all orders: %s", plan.reason)
        if not plan.to_cancel and not plan.to_create:
            return
        since = time.monotonic() - self._last_send  # pace rounds that send, not rounds that decide nothing
        if since < self.settings.API_REST_INTERVAL:
            time.sleep(self.settings.API_REST_INTERVAL - since)
        self._last_send = time.monotonic()
        self.live = None  # what we send changes it
        # creates in doubt that the ladder gives up on may still execute: they keep their slots
        budget = max_open - self.exchange.abandoned_in_doubt - sum(1 for o in plan.to_cancel if not o.order_id)
        steps = converge.ordered_steps(plan, self.snap.book.best_bid, self.snap.book.best_ask, budget)
        room = budget - len(plan.keep)
        allow_batch = True
        for action, payload in steps:
            if action == "cancel":
                if self.exchange.cancel_orders(payload, allow_batch):
                    break  # the creates after the cancels may depend on the deferred ones: next cycle
                allow_batch = False  # one batch per round: the endpoint allows one per 10 s
            elif room > 0 and self.post_only_holds(payload):  # innermost first: the outermost wait for slots
                room -= 1
                self.exchange.create_order(payload)

    def post_only_holds(self, order: DesiredOrder) -> bool:
        """POST_ONLY checked again against the freshest book just before ``order`` is sent.

        The cycle's snapshot ages while the earlier calls of the round go out, and the book
        moves meanwhile; an order that would now take liquidity (or meet an empty opposite
        side) is not sent: the next cycle requotes from the newer book."""
        if not self.settings.POST_ONLY:
            return True
        conflict = quoting.post_only_conflict(order, self.exchange.top_of_book())
        if conflict is None:
            return True
        log.info("Not sending %s order %d @ %s: %s (post-only)", order.side, order.qty, fmt(order.price), conflict)
        self.exchange.counters["post_only_skips"] += 1
        return False

    # -- checks
    def sanity_check(self) -> bool:
        """False means: do not quote this cycle (the reason is logged once).

        Every pause but a resync in progress cancels our orders: on a stale feed we would quote blind, and
        an empty or crossed book is usually a sweep, through which resting orders would go unmanaged.
        """
        snap = self.snap
        fatal = getattr(self.exchange.ws, "fatal_error", None)
        if fatal is not None:  # e.g. the key was refused when the socket reconnected: no point waiting
            raise fatal
        if not snap.connected:
            return self._pause("WebSocket down", cancel=True)
        if not snap.synced:
            out = time.time() - snap.unsynced_since_ms / 1000 if snap.unsynced_since_ms else 0.0
            if out > self.resync_grace:  # a resync normally takes a fraction of a second
                return self._pause("the WebSocket tables are out of sync", cancel=True, detail=f"for {out:.1f}s")
            return self._pause("waiting for the WebSocket tables to resync", cancel=False)
        age = time.time() - snap.last_update_ms / 1000  # last book or trade message, not pongs nor acks
        if age > self.settings.STALE_DATA_SECONDS:
            return self._pause("market data is stale", cancel=True, detail=f"no book or trade update for {age:.0f}s")
        book = snap.book
        if book.best_bid is None or book.best_ask is None:
            return self._pause("the order book has an empty side", cancel=True)
        if book.crossed:
            return self._pause("the order book is crossed", cancel=True,
                               detail=f"{fmt(book.best_bid)} >= {fmt(book.best_ask)}")
        self.check_drawdown()
        if self.paused:
            log.info("Resuming: %s is over", self.paused)
            self.paused = None
            self._cancel_owed = False
        return True

    def _pause(self, reason: str, cancel: bool, detail: str = "") -> bool:
        """Log a new ``reason`` once (``detail`` is logged with it, not compared); cancel once if asked."""
        if self.paused != reason:
            log.warning("Pausing: %s%s", reason, f" ({detail})" if detail else "")
            self.paused = reason
            self._cancel_owed = self._cancel_owed or cancel
        if self._cancel_owed:  # retried every cycle until it goes through (a rate-limit burst lasts seconds)
            try:
                self.exchange.cancel_all_own(reason)
                self._cancel_owed = False
            except errors.AuthenticationError:
                raise
            except errors.GteError as exc:
                log.error("Could not cancel orders while pausing, will retry: %s", exc)
        return False

    def check_drawdown(self) -> None:
        limit = self.settings.MAX_DRAWDOWN
        if not limit or self.start_equity is None:
            return
        equity = self.equity()
        if equity is None:
            return
        if self.start_equity - equity >= limit:
            raise KillSwitch(f"equity {fmt(equity)} fell {fmt(self.start_equity - equity)} "
                             f"{self.settings.SETTLECURRENCY} from {fmt(self.start_equity)} (MAX_DRAWDOWN {fmt(limit)})")

    # -- figures
    def balance(self) -> Optional[Decimal]:
        if self.settings.DRY_RUN:
            return Decimal(self.settings.DRY_BTC)
        margin = self.snap.margin if self.snap else None
        return margin.total if margin else None

    def equity(self) -> Optional[Decimal]:
        """The account's equity as the exchange states it: the margin row's ``total`` already
        includes the unrealised PnL of the positions (DRY_RUN: the paper balance)."""
        return self.balance()

    def realised_pnl(self) -> Decimal:
        positions = self.snap.positions
        return positions.long.realised_pnl + positions.short.realised_pnl

    def print_status(self) -> None:
        snap = self.snap or self.exchange.snapshot(self.book_depth)
        pos = snap.positions
        book = snap.book
        mid = (book.best_bid + book.best_ask) / 2 if book.best_bid and book.best_ask else None
        currency = self.settings.SETTLECURRENCY
        log.info("Ticker %s: bid %s ask %s mid %s; start positions buy %s sell %s", self.settings.SYMBOL,
                 fmt(book.best_bid), fmt(book.best_ask), fmt(mid), fmt(self.start_positions[0]),
                 fmt(self.start_positions[1]))
        log.info("Balance: %s %s", fmt(self.balance()), currency)
        entry_q = self.tick_size / 100  # an average entry is not on the grid; two more decimals say enough
        log.info("Positions: long %d @ %s, short %d @ %s, net %+d", pos.long.qty,
                 fmt(pos.long.entry_price.quantize(entry_q)), pos.short.qty,
                 fmt(pos.short.entry_price.quantize(entry_q)), pos.net)
        log.info("Contracts traded this run: %d; realised PnL %s %s; unrealised PnL %s %s",
                 snap.contracts_traded - self.start_traded, fmt(self.realised_pnl() - (self.start_realised or 0)),
                 currency, fmt(pos.long.unrealised_pnl + pos.short.unrealised_pnl), currency)

    def print_summary(self) -> None:
        snap = self.exchange.snapshot(self.book_depth)
        self.snap = snap
        counters = self.exchange.counters
        fills, fees = snap.fill_count - self.start_fills, snap.fees_paid - self.start_fees
        maker = snap.maker_fill_count - self.start_maker_fills
        maker_share = f" ({100 * maker // fills} % maker)" if fills else ""  # rounded down: 100 % means all
        log.info("Summary: ran %.0fs; %d orders sent, %d cancelled, %d fills%s, %d contracts traded; "
                 "realised PnL %s %s; fees %s %s",
                 time.time() - self.start_time, counters["orders_sent"], counters["orders_cancelled"], fills,
                 maker_share,
                 snap.contracts_traded - self.start_traded, fmt(self.realised_pnl() - (self.start_realised or 0)),
                 self.settings.SETTLECURRENCY, fmt(fees), self.settings.SETTLECURRENCY)
