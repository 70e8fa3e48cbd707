"""The market maker's decisions: OrderManager (subclass it for your own strategy).

The exchange is reached through ``exchange_interface.ExchangeInterface``, time
through one injectable clock (``self.clock``); the loop that drives the manager is
``runner.Runner`` (live) and the command line is ``cli.run``.

Data flows one way: WebSocket tables -> snapshot -> quoting -> converge -> REST.
The OrderManager decides in its own thread; the WebSocket thread only records
what happened and wakes it up.
"""
from __future__ import annotations

import logging
import random
from decimal import Decimal
from typing import List, Optional, Sequence, Tuple

from . import converge, quoting
from .clock import Clock
from .exchange_interface import AnotherInstance, ExchangeInterface, fmt
from .gte import errors
from .models import DesiredOrder, MarketSnapshot, Order
from .settings import Settings

__all__ = ["AnotherInstance", "ExchangeInterface", "KillSwitch", "OrderManager"]

log = logging.getLogger("market_maker.manager")


def _describe(exc: BaseException) -> str:
    """An exchange error as its message; anything else with its class, so a bug is not mistaken for one."""
    return str(exc) if isinstance(exc, errors.GteError) else f"{type(exc).__name__}: {exc}"


class KillSwitch(Exception):
    """Equity fell by MAX_DRAWDOWN: stop trading."""


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
        self.clock: Clock = exchange.clock
        self.rng = rng or random.Random()
        self.snap: Optional[MarketSnapshot] = None
        self.live: Optional[List[Order]] = None
        self.start_time = self.clock.time()
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
        self._quotes_told = False  # the journal knows our current quotes (told again after a pause)

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
        deadline = self.clock.monotonic() + self.exit_cancel_timeout
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
                if self.clock.monotonic() >= deadline:
                    log.error("Own orders still open or in doubt after %.0fs of cancelling on exit",
                              self.exit_cancel_timeout)
                    break
                if not left:  # waiting for creates in doubt to settle
                    self.clock.sleep(self.exit_retry_wait)
            except errors.AuthenticationError as exc:
                log.error("Could not cancel all orders on exit: %s", exc)
                break
            except Exception as exc:  # whatever goes wrong (bad data, a bug): keep cancelling until the deadline
                if self.clock.monotonic() >= deadline:
                    log.error("Could not cancel all orders on exit: %s", _describe(exc))
                    break
                log.warning("Cancelling all orders on exit failed, retrying: %s", _describe(exc))
                self.clock.sleep(self.exit_retry_wait)

    # -- one decision
    def step(self) -> None:
        """Housekeeping (creates in doubt, order audit), sanity checks, then requote."""
        self.exchange.maintain()
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
            if not self._quotes_told:
                self._tell_decision(plan.keep, 0, ())
            return
        since = self.clock.monotonic() - self._last_send  # pace rounds that send, not rounds that decide nothing
        if since < self.settings.API_REST_INTERVAL:
            self.clock.sleep(self.settings.API_REST_INTERVAL - since)
            if self._filled_since_snapshot():
                log.info("Our orders filled while this round waited to be sent: planning again from the new position")
                return  # the plan counted on orders and positions that have changed (close capacity above all)
        self._last_send = self.clock.monotonic()
        self.live = None  # what we send changes it
        # creates in doubt that the ladder gives up on may still execute: they keep their slots
        budget = max_open - self.exchange.abandoned_in_doubt - sum(1 for o in plan.to_cancel if not o.order_id)
        steps = converge.ordered_steps(plan, self.snap.book.best_bid, self.snap.book.best_ask, budget)
        room = budget - len(plan.keep)
        blocked = self.exchange.blocked_levels() | {(o.side, o.price, o.close_flag) for o in plan.to_cancel
                                                    if not o.order_id}  # in doubt, given up by this plan
        allow_batch = True
        cancelled, created = 0, []
        counters = self.exchange.counters
        for action, payload in steps:
            if action == "cancel":
                gone = counters["cancels_found_gone"]
                deferred = self.exchange.cancel_orders(payload, allow_batch)
                cancelled += len(payload) - deferred
                if deferred:
                    break  # the creates after the cancels may depend on the deferred ones: next cycle
                if counters["cancels_found_gone"] != gone:
                    log.info("An order to cancel had already filled or gone: its fills change what may be sent; "
                             "planning again next cycle")
                    break
                allow_batch = False  # one batch per round: the endpoint allows one per 10 s
            elif blocked and (payload.side, payload.price, payload.close_flag) in blocked:
                log.info("Not sending %s order %d @ %s yet: an order given up there may still execute",
                         payload.side, payload.qty, fmt(payload.price))
            elif room > 0:  # innermost first: the outermost wait for slots
                if self.exchange.wait_for_create_slot() and self._filled_since_snapshot():
                    log.info("Our orders filled while this round waited for the create rate limit: "
                             "planning again next cycle")
                    break
                if self.post_only_holds(payload):  # against the book of the moment it goes out
                    room -= 1
                    if self.exchange.create_order(payload) is not None:
                        created.append(payload)
        self._tell_decision(plan.keep, cancelled, created)

    def _filled_since_snapshot(self) -> bool:
        """Our orders have filled since this cycle's snapshot: a plan made from it may count on orders
        and positions that have changed (close capacity above all)."""
        return self.exchange.snapshot(self.book_depth).fill_count != self.snap.fill_count

    def _tell_decision(self, kept: Sequence[Order], cancelled: int, created: Sequence[DesiredOrder]) -> None:
        """The decision in brief, for the journal: counts and our best quotes after it."""
        events = self.exchange.events
        if not events:
            return
        resting = [*kept, *created]
        bids = [o.price for o in resting if o.side == "buy"]
        asks = [o.price for o in resting if o.side == "sell"]
        events.emit("decision", kept=len(kept), cancelled=cancelled, created=len(created),
                    best_bid=max(bids) if bids else None, best_ask=min(asks) if asks else None,
                    net_position=self.snap.positions.net if self.snap else 0)
        self._quotes_told = True

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
            out = self.clock.time() - snap.unsynced_since_ms / 1000 if snap.unsynced_since_ms else 0.0
            if out > self.resync_grace:  # a resync normally takes a fraction of a second
                return self._pause("the WebSocket tables are out of sync", cancel=True, detail=f"for {out:.1f}s")
            return self._pause("waiting for the WebSocket tables to resync", cancel=False)
        age = self.clock.time() - snap.last_update_ms / 1000  # last book or trade message, not pongs nor acks
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
            self.exchange.events.emit("pause", reason=None, cancel=False)
            self.paused = None
            self._cancel_owed = False
        return True

    def _pause(self, reason: str, cancel: bool, detail: str = "") -> bool:
        """Log a new ``reason`` once (``detail`` is logged with it, not compared); cancel once if asked."""
        if self.paused != reason:
            log.warning("Pausing: %s%s", reason, f" ({detail})" if detail else "")
            self.paused = reason
            self._quotes_told = False
            self.exchange.events.emit("pause", reason=reason, cancel=cancel)
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
            self.exchange.events.emit("kill_switch", equity=equity, start_equity=self.start_equity, limit=limit)
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
        equity = self.equity()
        net = equity - self.start_equity if equity is not None and self.start_equity is not None else None
        log.info("Net PnL since start: %s %s; inventory %+d contracts", fmt(net), currency, pos.net)

    def print_summary(self) -> None:
        snap = self.exchange.snapshot(self.book_depth)
        self.snap = snap
        counters = self.exchange.counters
        fills, fees = snap.fill_count - self.start_fills, snap.fees_paid - self.start_fees
        maker = snap.maker_fill_count - self.start_maker_fills
        maker_share = f" ({100 * maker // fills} % maker)" if fills else ""  # rounded down: 100 % means all
        log.info("Summary: ran %.0fs; %d orders sent, %d cancelled, %d fills%s, %d contracts traded; "
                 "realised PnL %s %s; fees %s %s",
                 self.clock.time() - self.start_time, counters["orders_sent"], counters["orders_cancelled"], fills,
                 maker_share,
                 snap.contracts_traded - self.start_traded, fmt(self.realised_pnl() - (self.start_realised or 0)),
                 self.settings.SETTLECURRENCY, fmt(fees), self.settings.SETTLECURRENCY)
