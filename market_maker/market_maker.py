"""The market maker: ExchangeInterface (the hands) and OrderManager (the decisions).

The loop that drives them is ``runner.Runner``; the command line is ``cli.run``.

Data flows one way: WebSocket tables -> snapshot -> quoting -> converge -> REST.
The OrderManager decides in its own thread; the WebSocket thread only records
what happened and wakes it up.
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Set, Tuple

from . import converge, quoting
from .gte import errors
from .gte.rest import GteRest
from .gte.signing import Credentials
from .gte.ws import GteWebSocket
from .models import OPEN_STATUSES, DesiredOrder, MarketSnapshot, Order
from .settings import Settings
from .tracker import OrderTracker

log = logging.getLogger("market_maker.manager")

def now_ms() -> int:
    return int(time.time() * 1000)


def fmt(value: Optional[Decimal]) -> str:
    return "-" if value is None else format(value, "f")


class KillSwitch(Exception):
    """Equity fell by MAX_DRAWDOWN: stop trading."""


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

    # -- events (called in the WebSocket thread: record and wake, nothing else)
    def _on_event(self, kind: str) -> None:
        with self._kinds_lock:
            self._kinds.add(kind)
        self._wake.set()

    def wait_for_events(self, timeout: float) -> Set[str]:
        """Block until the WebSocket reports something or the timeout passes; returns the event kinds."""
        self._wake.wait(timeout)
        self._wake.clear()
        with self._kinds_lock:
            kinds, self._kinds = self._kinds, set()
        # No tracker.forget_all() on resync: an order whose REST answer is in but whose echo is not would
        # vanish from our view and be created twice. Tracked orders leave the overlay when the rebuilt
        # table (partial + REST reconciliation of recent final orders) knows them, or after the TTL.
        return kinds

    def wake(self) -> None:
        self._wake.set()

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
        return self.ws.snapshot(depth)

    def is_own(self, order: Order) -> bool:
        return order.client_oid.startswith(self.prefix)

    def own_open_orders(self, snap: MarketSnapshot) -> List[Order]:
        if self.dry_run:
            return list(self._paper.values())
        prefix = self.prefix
        ws_own = [o for o in snap.orders if o.client_oid.startswith(prefix)]  # is_own, inlined
        awaiting = self.tracker.awaiting_echo()
        echoed = self.ws.known_order_ids(awaiting) if awaiting else set()
        return [o for o in self.tracker.merge(ws_own, echoed, now_ms()) if o.status in OPEN_STATUSES]  # is_open

    # -- actions
    def create_order(self, desired: DesiredOrder) -> Optional[Order]:
        """Send one order; returns it, or None when the exchange refused it (logged)."""
        kind = "close" if desired.close_flag else "open"
        if self.dry_run:
            order = Order(order_id=f"dry-{next(self._paper_ids)}", client_oid=f"{self.prefix}dry", side=desired.side,
                          close_flag=desired.close_flag, price=desired.price, qty=desired.qty, filled_qty=0, status=2)
            self._paper[order.order_id] = order
            log.info("Would create %s order (%s): %d @ %s (dry run)", desired.side, kind, desired.qty, fmt(desired.price))
            return order
        log.info("Creating %s order (%s): %d @ %s", desired.side, kind, desired.qty, fmt(desired.price))
        self.counters["orders_sent"] += 1
        try:
            order = self.rest.create_order(desired.side, desired.price, desired.qty, close_flag=desired.close_flag)
        except (errors.InsufficientMargin, errors.PositionExceeded, errors.BadParameter) as exc:
            self.counters["orders_rejected"] += 1
            log.warning("Order %s %d @ %s refused: %s", desired.side, desired.qty, fmt(desired.price), exc)
            return None
        self.tracker.created(order, now_ms())
        return order

    def cancel_batch_ready(self) -> bool:
        return self.rest.rate_limiter.time_until_available("cancel_batch") <= 0

    def cancel_orders(self, orders: Sequence[Order], allow_batch: bool = True) -> None:
        """Cancel ours: two or more through cancel_batch when its window allows, else one by one."""
        prefix = self.prefix
        orders = [o for o in orders if o.client_oid.startswith(prefix)]  # is_own, inlined
        if not orders:
            return
        if log.isEnabledFor(logging.INFO):  # the arguments cost ~1 us an order even when not logged
            for order in orders:
                log.info("%s %s order (%s): %d @ %s", "Would cancel" if self.dry_run else "Cancelling", order.side,
                         "close" if order.close_flag else "open", order.remaining, fmt(order.price))
        if self.dry_run:
            for order in orders:
                self._paper.pop(order.order_id, None)
            return
        ids = [o.order_id for o in orders]
        singles = ids
        if allow_batch and len(ids) >= 2 and self.cancel_batch_ready():
            try:
                self.rest.cancel_batch(ids)
                self.counters["cancel_batches"] += 1
                singles = []
            except (errors.RateLimited, errors.ServerError, errors.TransportError) as exc:
                log.warning("cancel_batch failed (%s); cancelling one by one", exc)
        if singles:
            for order_id in singles:
                try:
                    self.rest.cancel_order(order_id)
                except errors.OrderNotFound:
                    pass  # already filled or cancelled: gone either way
        self.counters["orders_cancelled"] += len(ids)
        self.tracker.cancelled(ids, now_ms())

    def cancel_all_own(self, reason: str) -> int:
        """Cancel every open order carrying our prefix, read from REST (works with the socket down)."""
        if self.dry_run:
            orders = list(self._paper.values())
        else:
            orders = [o for o in self.rest.open_orders() if self.is_own(o)]
        if orders:
            log.info("Cancelling all %d own orders: %s", len(orders), reason)
            self.cancel_orders(orders)
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
        log.info("Leverage set to %s (%s margin)", fmt(leverage), margin_mode)


# ----------------------------------------------------------------------------------------------------------------------
# OrderManager


class OrderManager:
    """A BitMEX-style grid: ORDER_PAIRS buys and sells laddered around the market.

    Subclass and override ``place_orders()`` for your own strategy; call
    ``converge_orders(buy_orders, sell_orders)`` with the orders you want resting.
    """

    book_depth = 10  # levels per side in self.snap.book; the grid needs only the touch, raise it for your strategy

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
            count = self.exchange.cancel_all_own("left over from a previous run")
            if not count:
                log.info("No own orders left over from a previous run")
            self.exchange.set_leverage(self.settings.LEVERAGE, self.settings.MARGIN_MODE)
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
        read finds no own open order, for at most ``exit_cancel_timeout`` seconds.
        """
        deadline = time.monotonic() + self.exit_cancel_timeout
        reason = "shutting down"
        while True:
            try:
                if not self.exchange.cancel_all_own(reason):
                    break
                reason = "shutting down (left after the previous attempt)"
                if time.monotonic() >= deadline:
                    log.error("Own orders still open after %.0fs of cancelling on exit", self.exit_cancel_timeout)
                    break
            except errors.AuthenticationError as exc:
                log.error("Could not cancel all orders on exit: %s", exc)
                break
            except errors.GteError as exc:
                if time.monotonic() >= deadline:
                    log.error("Could not cancel all orders on exit: %s", exc)
                    break
                log.warning("Cancelling all orders on exit failed, retrying: %s", exc)
                time.sleep(self.exit_retry_wait)
        self.print_summary()

    # -- one decision
    def step(self) -> None:
        """Sanity checks, then requote."""
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
        allow_batch = True
        steps = converge.ordered_steps(plan, self.snap.book.best_bid, self.snap.book.best_ask, max_open)
        for action, payload in steps:
            if action == "cancel":
                self.exchange.cancel_orders(payload, allow_batch)
                allow_batch = False  # one batch per round: the endpoint allows one per 10 s
            elif self.post_only_holds(payload):
                self.exchange.create_order(payload)

    def post_only_holds(self, order: DesiredOrder) -> bool:
        """POST_ONLY checked again against the freshest book just before ``order`` is sent.

        The cycle's snapshot ages while the earlier calls of the round go out, and the book
        moves meanwhile; an order that would now take liquidity (or meet an empty opposite
        side) is not sent: the next cycle requotes from the newer book."""
        if not self.settings.POST_ONLY:
            return True
        conflict = quoting.post_only_conflict(order, self.exchange.ws.top_of_book(1))
        if conflict is None:
            return True
        log.info("Not sending %s order %d @ %s: %s (post-only)", order.side, order.qty, fmt(order.price), conflict)
        self.exchange.counters["post_only_skips"] += 1
        return False

    # -- checks
    def sanity_check(self) -> bool:
        """False means: do not quote this cycle (the reason is logged once)."""
        snap = self.snap
        fatal = getattr(self.exchange.ws, "fatal_error", None)
        if fatal is not None:  # e.g. the key was refused when the socket reconnected: no point waiting
            raise fatal
        if not snap.connected:
            return self._pause("WebSocket down", cancel=True)
        if not snap.synced:
            return self._pause("waiting for the WebSocket tables to resync", cancel=False)
        age = time.time() - snap.last_update_ms / 1000
        if age > self.settings.STALE_DATA_SECONDS:
            return self._pause(f"market data is {age:.0f}s old", cancel=True)
        if snap.book.best_bid is None or snap.book.best_ask is None:
            return self._pause("the order book has an empty side", cancel=False)
        if snap.book.crossed:
            return self._pause(f"the order book is crossed ({fmt(snap.book.best_bid)} >= {fmt(snap.book.best_ask)})",
                               cancel=False)
        self.check_drawdown()
        if self.paused:
            log.info("Resuming: %s is over", self.paused)
            self.paused = None
            self._cancel_owed = False
        return True

    def _pause(self, reason: str, cancel: bool) -> bool:
        if self.paused != reason:
            log.warning("Pausing: %s", reason)
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
        balance = self.balance()
        if balance is None:
            return None
        positions = self.snap.positions
        return balance + positions.long.unrealised_pnl + positions.short.unrealised_pnl

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
