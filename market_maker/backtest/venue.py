"""``BacktestExchange``: the bot's ``ExchangeInterface`` over the in-process simulated exchange.

It is the live ``ExchangeInterface`` itself (our-order overlay, cancel pacing, the
``cancel_batch`` window, the order audit, post-only checks upstream in the manager) with
two transports swapped: ``SimRest`` carries requests to the simulator's ``Exchange``
(``place_order``/``cancel_order``/``cancel_batch``...) and ``feed.SimFeed`` is the
WebSocket view. Nothing goes through the wire client (``gte/``) nor a socket.

A request of the bot: the bot's own client-side rate limiter (``gte.ratelimit``, on the
simulated clock) waits for a slot; the request travels one latency (the market moves
meanwhile); the exchange applies its own rate limits (the simulator's limiter, the limits
of its endpoint table) and executes it; the answer travels back one latency. The bot's
call returns then, as the blocking REST call does live. The interface tells the event bus
about each request (``order`` events) as it does live; the feed tells what the live
WebSocket tables tell (executions, positions, margin, orders' states, market samples).
"""
from __future__ import annotations

import contextlib
import random
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, List, Optional, Set

from ..clock import ms
from ..exchange_interface import ExchangeInterface
from ..gte import errors
from ..gte.ratelimit import RateLimiter
from ..gte.rest import MAX_CLIENT_OID
from ..models import BUY, Order
from ..settings import Settings
from ..sim.core import SimError
from ..sim.exchange import Exchange
from ..sim.ratelimit import RateLimiter as ServerLimiter
from ..sim.rest import ENDPOINTS
from .clock import SimClock, to_us
from .feed import SimFeed, order_of_row
from .latency import Latency

# the exchange's own limits (calls, window seconds) per endpoint key, as the simulator enforces them
SERVER_LIMITS = {e.path.split("/api/", 1)[1]: (e.limit, e.window_s) for e in ENDPOINTS}
CREATE, CANCEL, CANCEL_BATCH = "pc/order/create", "pc/order/cancel", "pc/order/cancel_batch"
QUERY, LEVERAGE = "pc/order/query", "pc/leverage/change"


class SimRest:
    """The REST surface ``ExchangeInterface`` uses, executed on the simulated exchange."""

    base_url = "backtest"

    def __init__(self, exchange: Exchange, account_id: int, symbol: str, clock: SimClock, latency: Latency,
                 feed: SimFeed):
        self.ex = exchange
        self.account_id = account_id
        self.symbol = symbol
        self.clock = clock
        self.latency = latency
        self.feed = feed
        self.rate_limiter = RateLimiter(clock=clock.monotonic, sleep=clock.sleep)
        self._server = ServerLimiter(clock=clock.monotonic)
        self.refused_by_exchange = 0  # calls the exchange's rate limit refused (the bot's limiter should prevent them)
        self.last_latency_ms = 0.0

    def deadline(self, at: float) -> "contextlib.AbstractContextManager[None]":
        return contextlib.nullcontext()

    def _call(self, endpoint: str, fn: Callable[[int], Any]) -> Any:
        """One request: client-side limit, the way there, the exchange, the way back."""
        clock = self.clock
        self.rate_limiter.acquire(endpoint)
        sent = clock.now_us
        clock.run_until(sent + self.latency.draw_us())
        failure: Optional[errors.GteError] = None
        result = None
        limit, window = SERVER_LIMITS[endpoint]
        if not self._server.allow(endpoint, limit, window):
            self.refused_by_exchange += 1
            failure = errors.error_from_code(-10053)
        else:
            try:
                result = fn(clock.now_ms())
            except SimError as exc:
                failure = errors.error_from_code(exc.code, exc.msg)
            self.feed.absorb(self.ex.drain_events())
        clock.run_until(clock.now_us + self.latency.draw_us())
        self.last_latency_ms = (clock.now_us - sent) / 1000
        if failure is not None:
            raise failure
        return result

    # -- orders
    def create_order(self, side: str, price: Decimal, qty: int, close_flag: int = 0,
                     client_oid: Optional[str] = None) -> Order:
        oid = client_oid or ""
        row = self._call(CREATE, lambda now: self.ex.place_order(
            self.account_id, self.symbol, 1 if side == BUY else 0, close_flag, price, qty, oid or None, now))
        return Order(order_id=row["order_id"], client_oid=oid, side=side, close_flag=close_flag, price=price, qty=qty,
                     filled_qty=0, status=1)

    def cancel_order(self, order_id: str) -> str:
        row = self._call(CANCEL, lambda now: self.ex.cancel_order(self.account_id, self.symbol, str(order_id), now))
        return str(row.get("order_id", order_id))

    def cancel_batch(self, order_ids: Iterable[str]) -> None:
        ids = [str(i) for i in order_ids]
        if ids:
            self._call(CANCEL_BATCH, lambda now: self.ex.cancel_batch(self.account_id, self.symbol, ids, now))

    # -- reads
    def open_orders(self, max_pages: int = 50) -> List[Order]:
        rows = self._call(QUERY, lambda now: self.ex.open_orders_of(self.account_id))
        return [order_of_row(r) for r in rows if r.get("symbol", self.symbol) == self.symbol]

    def find_order_by_client_oid(self, client_oid: str, max_pages: int = 3) -> Optional[Order]:
        rows = self._call(QUERY, lambda now: self.ex.orders_by_client_oid(self.account_id, client_oid))
        return order_of_row(rows[-1]) if rows else None

    def change_leverage(self, leverage: Decimal, mode: int, long_flag: Optional[int] = None) -> None:
        self._call(LEVERAGE, lambda now: self.ex.change_leverage(self.account_id, self.symbol, mode, long_flag,
                                                                leverage, now))


class BacktestExchange(ExchangeInterface):
    """The live ``ExchangeInterface`` on the simulated exchange, waiting in simulated time."""

    def __init__(self, settings: Settings, exchange: Exchange, account_id: int, clock: SimClock,
                 latency: Latency, seed: int):
        feed = SimFeed(exchange, account_id, settings.SYMBOL, clock, latency)
        rest = SimRest(exchange, account_id, settings.SYMBOL, clock, latency, feed)
        super().__init__(settings, "backtest", "backtest", None, None, rest=rest, ws=feed,  # type: ignore[arg-type]
                         clock=clock)
        self.sim = exchange
        self.account_id = account_id
        self.feed, self.sim_rest = feed, rest
        # this run's tag and client_oids come from the seed: the same run gives the same journal rows
        self._oid_rng = random.Random(f"client-oid-{seed}")
        self.run_tag = f"{self._oid_rng.getrandbits(24):06x}"
        self.own_prefix = self.prefix + self.run_tag

    def new_client_oid(self) -> str:
        return self.own_prefix + f"{self._oid_rng.getrandbits(128):032x}"[:MAX_CLIENT_OID - len(self.own_prefix)]

    def wait_for_events(self, timeout: float) -> Set[str]:
        """Let simulated time pass until a delivery reaches the bot, owed work falls due, or ``timeout``."""
        feed, clock = self.feed, self.clock
        due = self._next_due()
        early = due is not None and due < timeout
        if not feed.has_news():
            clock.run_until(clock.now_us + to_us(due if early else timeout), feed.has_news)  # type: ignore[attr-defined]
        woken = feed.has_news()
        feed.woken = False
        kinds, feed.kinds = feed.kinds, set()
        if early and not woken:
            kinds.add("due")
        return kinds

    def wake(self) -> None:
        self.feed.woken = True

    def connect(self) -> None:
        self.feed.start()

    def close(self) -> None:
        self.feed.stop()

    def exchange_ms(self) -> int:
        return ms(self.clock)


__all__ = ["BacktestExchange", "SimRest"]
