"""The bot's market-data view in a backtest: what its WebSocket client would hold, latency late.

After every operation on the simulated exchange (a market step, a request of the bot)
the engine hands the exchange's queued events to ``SimFeed.absorb``. It notes what
changed -- the book, public trades, and our account's orders, executions, position and
margin -- captures that state as it is at that moment, and delivers it to the bot's view
one latency later (at once without latency). A delivery wakes the loop with the kinds a
WebSocket would report ("book", "trade", "order", "execution", "position", "margin").
Like the simulator's server, positions and margins are also pushed every
``position_push_s`` (their unrealised PnL moves with the mark) and the instrument every
``instrument_push_s``.

Models (``market_maker.models``) are built straight from the simulator's state, never
through the wire client. Money stays exact (``Decimal``).
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, Callable, Deque, Dict, FrozenSet, Iterable, List, Optional, Set, Tuple

from ..models import BUY, LONG, SELL, SHORT, Book, Fill, Instrument, Margin, MarketSnapshot, Order, Position, \
    Positions, Trade
from ..sim import accounts as ac
from ..sim.exchange import Exchange
from ..sim.rows import ustr
from .clock import SimClock, to_us
from .latency import Latency

CAPTURE_DEPTH = 50  # levels per side a delayed book keeps (the most a snapshot asks for)
MAX_TRADES = 500  # public trades kept, as the live tables keep
MARKET_SAMPLE_MS = 1000  # a market sample is recorded at most this often (and before each of our fills)
_ZERO = Decimal(0)
_FLAT = Positions()


def order_of_row(row: Dict[str, Any]) -> Order:
    """An ``Order`` from a simulator order row (its strings are the exchange's exact decimals)."""
    return Order(order_id=str(row["order_id"]), client_oid=row.get("client_oid") or "",
                 side=BUY if str(row["side"]) == "1" else SELL, close_flag=int(row.get("close_flag") or 0),
                 price=Decimal(row["price"]), qty=int(row["qty"]), filled_qty=int(row.get("filled_qty") or 0),
                 status=int(row["status"]), avg_price=Decimal(row.get("avg_price") or 0),
                 fee=Decimal(row.get("fee") or 0), ctime=int(row.get("ctime") or 0))


def position_of_row(row: Dict[str, Any]) -> Position:
    return Position(side=LONG if str(row["side"]) == "1" else SHORT, qty=int(row["qty"]),
                    avail_qty=int(row["avail_qty"]), entry_price=Decimal(row["entry_price"]),
                    leverage=Decimal(row["leverage"]), liquidation_price=Decimal(row["liquidation_price"]),
                    unrealised_pnl=Decimal(row["pnl"]), realised_pnl=Decimal(row["realised_pnl"]),
                    pos_margin=Decimal(row["pos_margin"]))


def margin_of_row(row: Dict[str, Any]) -> Margin:
    return Margin(settle_currency=row["settle_currency"], total=Decimal(row["total"]),
                  available=Decimal(row["available"]), order_margin=Decimal(row["order_margin"]),
                  pos_margin=Decimal(row["pos_margin"]))


def instrument_of_row(row: Dict[str, Any]) -> Instrument:
    return Instrument(symbol=row["symbol"], settle_currency=row["settle_currency"],
                      tick_size=Decimal(row["tick_size"]), price_precision=int(row["price_precision"]),
                      face_value=Decimal(row["face_value"]), symbol_id=int(row["symbol_id"]),
                      last_price=Decimal(row["last_price"]), mark_price=Decimal(row["mark_price"]),
                      index_price=Decimal(row["index_price"]), funding_rate=Decimal(row["funding_rate"]))


class Capture:
    """What changed in one operation, as it was then."""
    __slots__ = ("book", "trades", "orders", "known", "executions", "positions", "margin", "instrument", "states",
                 "funding")

    def __init__(self) -> None:
        self.book: Optional[Tuple[tuple, tuple]] = None  # delayed book levels (None: read the live book)
        self.trades: List[Trade] = []
        self.orders: Optional[Tuple[Order, ...]] = None
        self.known: List[str] = []
        self.executions: List[Tuple[Fill, int]] = []  # (fill, its order's cumulative filled quantity)
        self.states: List[Order] = []  # our orders this operation changed, as they are after it
        self.funding: List[Dict[str, Any]] = []  # our funding payments (the ``funding`` event's fields)
        self.positions: Optional[Positions] = None
        self.margin: Optional[Margin] = None
        self.instrument: Optional[Instrument] = None


class SimFeed:
    """The WebSocket surface the manager and ``ExchangeInterface`` read (snapshot, top_of_book...)."""

    ws_url = "backtest"
    fatal_error = None

    def __init__(self, exchange: Exchange, account_id: int, symbol: str, clock: SimClock, latency: Latency):
        self.ex = exchange
        self.account_id = account_id
        self.symbol = symbol
        self.market = exchange.market(symbol)
        self.asset = self.market.asset
        self.clock = clock
        self.latency = latency
        self.delayed = not latency.zero
        self._record: Optional[Callable[..., None]] = None  # set_recorder: what the live tables tell the bus
        self._listening: Optional[Callable[[], bool]] = None
        self._sampled_at = -1.0
        self.kinds: Set[str] = set()
        self.woken = False
        self.connected = True
        # the bot's view
        self._book: Tuple[tuple, tuple] = ((), ())
        self._orders: Tuple[Order, ...] = ()
        self._known: Set[str] = set()
        self._positions = _FLAT
        self._margin: Optional[Margin] = None
        self._instrument: Optional[Instrument] = None
        self._trades: Deque[Trade] = deque(maxlen=MAX_TRADES)
        self._trades_view: Optional[Tuple[Trade, ...]] = ()
        self._last_market_ms = 0
        self.contracts = 0
        self.fill_count = 0
        self.maker_fill_count = 0
        self.fees_paid = _ZERO
        self._last_delivery = 0
        self._models: Dict[int, Tuple[int, int, Order]] = {}  # oid -> (filled, status, model)
        # the exchange's truth (at the moment it happened), for the run's figures
        self.true_fills = 0
        self.true_maker_fills = 0
        self.true_volume = 0
        self.market_events = 0
        self._book_changes_seen = exchange.book_changes

    # -- lifecycle (the WebSocket surface)
    def start(self) -> None:
        self.connected = True
        record = self.recorder()
        if record is not None:
            record("connection", up=True, reason="first connection")

    def stop(self, timeout: float = 0.0) -> None:
        pass

    def resync(self, table: str, reason: str) -> None:
        """An audit found our copy wrong: take the exchange's state now (a fresh partial)."""
        capture = Capture()
        self._capture_private(capture)
        self._apply(capture, {"resync"})

    def has_news(self) -> bool:
        return bool(self.kinds) or self.woken

    # -- absorbing the exchange's events
    def absorb(self, events: Iterable[Any], market: bool = False) -> None:
        """The events of one operation on the exchange: capture what the bot will see of them."""
        me = self.account_id
        # the book changes the exchange counted instead of queuing (Exchange.book_as_count)
        count = self.ex.book_changes - self._book_changes_seen
        self._book_changes_seen += count
        book = count > 0
        capture: Optional[Capture] = None
        private = False
        for ev in events:
            count += 1
            aid = ev.account_id
            if aid is None:
                kind = ev.kind
                if kind == "order_book":
                    book = True
                elif kind == "trade":
                    row = ev.row
                    if capture is None:
                        capture = Capture()
                    capture.trades.append(Trade(side=BUY if row["side"] == "buy" else SELL,
                                                price=Decimal(row["price"]), qty=int(row["qty"]),
                                                time=int(row["trade_time"])))
            elif aid == me:
                if capture is None:
                    capture = Capture()
                private = True
                kind = ev.kind
                if kind == "order":
                    order_id = ev.row["order_id"]
                    if not capture.known or capture.known[-1] != order_id:
                        capture.known.append(order_id)
                elif kind == "execution":
                    self._execution(capture, ev.row)
                elif kind == "funding" and ev.symbol == self.symbol:  # what the exchange booked, as booked
                    row = ev.row
                    capture.funding.append(dict(amount=row["amount"], rate=row["rate"], ts_ex_ms=row["funding_time"],
                                                side=LONG if row["side"] == ac.LONG else SHORT, qty=row["qty"]))
        if market:
            self.market_events += count
        if not book and capture is None:
            return
        if capture is None:
            capture = Capture()
        if private:
            self._capture_private(capture)
        kinds = set()
        if book:
            kinds.add("book")
            if self.delayed:
                capture.book = self._live_book(CAPTURE_DEPTH)
        if capture.trades:
            kinds.add("trade")
        if private:
            kinds.update(("order", "position", "margin"))
            if capture.executions:
                kinds.add("fill")
        self._deliver(capture, kinds)

    def _execution(self, capture: Capture, row: Dict[str, Any]) -> None:
        qty = int(row["last_qty"])
        if qty <= 0:
            return
        fill = Fill(exec_id=row["exec_id"], order_id=row["order_id"], side=BUY if row["side"] == "1" else SELL,
                    close_flag=int(row["close_flag"]), price=Decimal(row["last_price"]), qty=qty,
                    fee=Decimal(row["fee"]), maker=row["maker_flag"] == "1", time=int(row["ctime"]))
        capture.executions.append((fill, int(row["cum_qty"])))
        self.true_fills += 1
        self.true_maker_fills += fill.maker
        self.true_volume += qty

    def _capture_private(self, capture: Capture) -> None:
        market, symbol, models = self.market, self.symbol, self._models
        orders = []
        acct = self.ex.account(self.account_id)
        for oid, o in acct.open_orders.items():
            if o.symbol != symbol:
                continue
            held = models.get(oid)
            if held is not None and held[0] == o.filled and held[1] == o.status:
                orders.append(held[2])
                continue
            model = Order(order_id=str(oid), client_oid=o.client_oid or "", side=BUY if o.side else SELL,
                          close_flag=o.close_flag, price=market.price(o.ticks), qty=o.qty, filled_qty=o.filled,
                          status=o.status, fee=Decimal(ustr(o.fee)) if o.fee else _ZERO, ctime=o.ctime)
            models[oid] = (o.filled, o.status, model)
            orders.append(model)
        if len(models) > 4 * len(orders) + 100:
            live = set(acct.open_orders)
            for oid in [k for k in models if k not in live]:
                del models[oid]
        capture.orders = tuple(orders)
        if self.recorder() is not None:
            history = acct.orders
            for order_id in capture.known:
                o = history.get(int(order_id))
                if o is not None:
                    capture.states.append(Order(
                        order_id=order_id, client_oid=o.client_oid or "", side=BUY if o.side else SELL,
                        close_flag=o.close_flag, price=market.price(o.ticks), qty=o.qty, filled_qty=o.filled,
                        status=o.status, fee=Decimal(ustr(o.fee)) if o.fee else _ZERO, ctime=o.ctime))
        self._capture_account(capture)

    def _capture_account(self, capture: Capture) -> None:
        long = short = None
        for row in self.ex.position_rows(self.account_id):
            if row["symbol"] == self.symbol:
                if str(row["side"]) == "1":
                    long = position_of_row(row)
                else:
                    short = position_of_row(row)
        capture.positions = Positions(long=long or Position(LONG), short=short or Position(SHORT))
        for row in self.ex.margin_rows(self.account_id):
            if row["settle_currency"] == self.asset:
                capture.margin = margin_of_row(row)

    def push_account(self) -> None:
        """The periodic position and margin push."""
        capture = Capture()
        self._capture_account(capture)
        self._deliver(capture, {"position", "margin"})

    def push_instrument(self) -> None:
        capture = Capture()
        capture.instrument = instrument_of_row(self.ex.instrument_row(self.symbol, self.clock.now_ms()))
        self._deliver(capture, {"instrument"})

    def _live_book(self, depth: int) -> Tuple[tuple, tuple]:
        book, price = self.market.book, self.market.price
        levels = book.levels
        bids = tuple([(price(k), levels[k].total) for k in book.bid_keys[:-depth - 1:-1]])
        asks = tuple([(price(-k), levels[k].total) for k in book.ask_keys[:-depth - 1:-1]])
        return bids, asks

    # -- delivery
    def _deliver(self, capture: Capture, kinds: Set[str]) -> None:
        if not self.delayed:
            self._apply(capture, kinds)
            return
        clock = self.clock
        when = max(clock.now_us + self.latency.draw_us(), self._last_delivery)  # one stream: never overtaken
        self._last_delivery = when
        clock.at(when, lambda: self._apply(capture, kinds))

    def _apply(self, capture: Capture, kinds: Set[str]) -> None:
        now_ms = self.clock.now_ms()
        if capture.book is not None:
            self._book = capture.book
        if "book" in kinds or capture.trades:
            self._last_market_ms = now_ms
        if capture.trades:
            self._trades.extend(capture.trades)
            self._trades_view = None
        if capture.known:
            self._known.update(capture.known)
        if capture.orders is not None:
            self._orders = capture.orders
        if capture.instrument is not None:
            self._instrument = capture.instrument
        record = self.recorder()
        if capture.executions:
            if record is not None:
                self._sample("fill", now_ms)  # the market just before our fills
            for fill, cum in capture.executions:
                self.fill_count += 1
                self.maker_fill_count += fill.maker
                self.fees_paid += fill.fee
                self.contracts += fill.qty
                if record is not None:
                    record("execution", exec_id=fill.exec_id, order_id=fill.order_id,
                           client_oid=self._client_oid(fill.order_id), side=fill.side, close_flag=fill.close_flag,
                           price=fill.price, qty=fill.qty, fee=fill.fee, maker=fill.maker, realised_pnl=None,
                           ts_ex_ms=fill.time or None, source="live", cum_qty=cum)
        elif record is not None and "book" in kinds and (now_ms - self._sampled_at) >= MARKET_SAMPLE_MS:
            self._sample("sample", now_ms)
        if capture.positions is not None:
            self._positions = pos = capture.positions
            if record is not None:
                record("position", long=pos.long, short=pos.short, long_qty=pos.long.qty,
                       long_entry=pos.long.entry_price, short_qty=pos.short.qty, short_entry=pos.short.entry_price,
                       realised_pnl=pos.long.realised_pnl + pos.short.realised_pnl,
                       unrealised_pnl=pos.long.unrealised_pnl + pos.short.unrealised_pnl, ts_ex_ms=None)
        if capture.margin is not None:
            self._margin = m = capture.margin
            if record is not None:
                record("margin", total=m.total, available=m.available, order_margin=m.order_margin,
                       pos_margin=m.pos_margin, ts_ex_ms=None)
        if record is not None:
            for paid in capture.funding:
                record("funding", **paid)
            for order in capture.states:
                record("order_state", order_id=order.order_id, client_oid=order.client_oid, side=order.side,
                       close_flag=order.close_flag, price=order.price, qty=order.qty, status=order.status,
                       filled_qty=order.filled_qty, avg_price=order.avg_price, fee=order.fee, ctime=order.ctime)
        self.kinds |= kinds

    def set_recorder(self, record: Optional[Callable[..., None]], listening: Optional[Callable[[], bool]] = None) -> None:
        """``record(kind, **fields)`` is told what the live WebSocket tables tell: our executions,
        positions, margin, funding, orders' states, market samples (about once a second and just
        before our fills), the connection. ``listening()`` False: nobody listens, nothing is told."""
        self._record = record
        self._listening = listening

    def recorder(self) -> Optional[Callable[..., None]]:
        """``record`` when someone listens, else None."""
        if self._record is None or (self._listening is not None and not self._listening()):
            return None
        return self._record

    def _sample(self, reason: str, now_ms: int) -> None:
        self._sampled_at = now_ms
        book = self._book_view(1)
        bid, ask = book.best_bid, book.best_ask
        inst = self._instrument
        self._record("market", best_bid=bid, best_ask=ask,  # type: ignore[misc]
                     mid=(bid + ask) / 2 if bid is not None and ask is not None else None,
                     mark=inst.mark_price if inst is not None else None, reason=reason)

    def _client_oid(self, order_id: str) -> str:
        try:
            order = self.ex.account(self.account_id).orders.get(int(order_id))
        except (TypeError, ValueError):
            order = None
        return (order.client_oid or "") if order is not None else ""

    # -- reads (the WebSocket client's surface)
    def _book_view(self, depth: int) -> Book:
        bids, asks = self._book if self.delayed else self._live_book(depth)
        if self.delayed and (len(bids) > depth or len(asks) > depth):
            bids, asks = bids[:depth], asks[:depth]
        return Book(bids=bids, asks=asks)

    def snapshot(self, depth: int = 50, watch: Iterable[str] = ()) -> MarketSnapshot:
        known = self._known
        echoed: FrozenSet[str] = frozenset(w for w in watch if w in known) if watch else frozenset()
        trades = self._trades_view
        if trades is None:
            trades = self._trades_view = tuple(self._trades)
        return MarketSnapshot(
            instrument=self._instrument, book=self._book_view(depth), orders=self._orders,
            positions=self._positions, margin=self._margin, last_update_ms=self._last_market_ms,
            connected=self.connected, synced=True, contracts_traded=self.contracts, fill_count=self.fill_count,
            maker_fill_count=self.maker_fill_count, fees_paid=self.fees_paid, recent_trades=trades,
            echoed=echoed, unsynced_since_ms=0)

    def top_of_book(self, depth: int = 1) -> Book:
        return self._book_view(depth)

    def known_order_ids(self, order_ids: Iterable[str]) -> FrozenSet[str]:
        return frozenset(o for o in order_ids if o in self._known)

    @property
    def synced(self) -> bool:
        return True


def every(clock: SimClock, seconds: float, fn: Callable[[], None], first_us: int = 0) -> None:
    """Call ``fn`` at ``first_us`` and then every ``seconds`` of simulated time."""
    period = max(1, to_us(seconds))

    def tick(at: int = first_us) -> None:
        fn()
        clock.at(at + period, lambda: tick(at + period))
    clock.at(first_us, tick)
