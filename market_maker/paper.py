"""DRY_RUN paper fills: the orders a dry run would have placed, filled by the backtest's queue model
against the live public book and trades, with the position and PnL they would have made.

The ledger sees the market through the WebSocket client's snapshots (taken at each decision):
the new public trades since the last snapshot, then the book levels that changed. Trades are
applied before the book, as the exchange reports them; levels outside the visible depth are
left as they were. It books each fill as a maker fill at the order's price with the maker fee
(``maker_fee``, default the simulator's), in exact integer units of 1e-12 of the settle
currency, inverse-contract style (a fill's cost is qty * face / price; a close realises the
difference with its pro-rata share of the leg's cost), and emits an ``execution`` event with
source "paper". ``view`` lays the paper position, fills and fees over the snapshot, so the
strategy skews and the logs report as if the fills had happened.

What it cannot know: its own market impact (a paper order takes no liquidity from anyone),
and trades identical in every field arriving in a burst may be undercounted: the client keeps
recent trades without ids, so new trades are found by aligning the last snapshot's trades
with the new ones.
"""
from __future__ import annotations

import dataclasses
import logging
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .backtest.queue import ASK, BID, QueueModel
from .models import BUY, LONG, SHORT, Book, MarketSnapshot, Order, Position, Positions, Trade

if TYPE_CHECKING:
    from .events import EventBus

log = logging.getLogger("market_maker.manager")

UNIT = Decimal("1e-12")              # settle-currency units of the ledger
DEFAULT_MAKER_FEE = Decimal("-0.00025")
PAPER_DEPTH = 200                    # book levels a side the ledger watches


def new_trades(before: Sequence[Trade], now: Sequence[Trade]) -> List[Trade]:
    """The trades of ``now`` that came after ``before`` (both the client's recent trades, oldest first).

    ``now`` is ``before`` with some trades dropped from the front (the client keeps the last N) and
    new ones appended: the longest tail of ``before`` that ``now`` starts with marks the split. No
    overlap at all (the trade table was rebuilt after a resync) counts as no new trades."""
    if not before:
        return []
    n = len(now)
    last = before[-1]
    for idx in range(n - 1, -1, -1):
        if now[idx] == last:
            k = idx + 1
            if k <= len(before) and tuple(now[:k]) == tuple(before[len(before) - k:]):
                return list(now[k:])
    return []


@dataclasses.dataclass
class _Leg:
    qty: int = 0
    cost: int = 0          # units of 1e-12: sum of qty * face / price of the open contracts
    realised: int = 0


class PaperLedger:
    """Paper orders, their queue positions and the position their fills make (see module doc)."""

    def __init__(self, events: Optional["EventBus"] = None, maker_fee: Decimal = DEFAULT_MAKER_FEE) -> None:
        self.events = events
        self.maker_fee = maker_fee
        self.orders: Dict[str, Order] = {}
        self.queue = QueueModel()
        self.legs = {LONG: _Leg(), SHORT: _Leg()}
        self.fill_count = 0
        self.contracts = 0
        self.fees = 0
        self.face = Decimal(1)
        self._trades: Tuple[Trade, ...] = ()
        self._started = False
        self._exec_ids = 0

    # ------------------------------------------------------------------ orders
    def add(self, order: Order) -> None:
        """A paper order rests: it joins the back of its price level's queue."""
        self.orders[order.order_id] = order
        self.queue.join(order.order_id, BID if order.side == BUY else ASK, order.price, order.remaining)

    def remove(self, order_id: str) -> None:
        self.orders.pop(order_id, None)
        self.queue.leave(order_id)

    def closing(self, leg: str) -> int:
        """Contracts of ``leg`` that open paper close orders would close."""
        closes = "sell" if leg == LONG else BUY
        return sum(o.remaining for o in self.orders.values() if o.close_flag and o.side == closes)

    # ------------------------------------------------------------------ the market
    def observe(self, book: Book, trades: Sequence[Trade], now_ms: int) -> int:
        """Take the market as of a snapshot: new trades first, then the book. Returns the fills made."""
        fills = 0
        if self._started:
            for t in new_trades(self._trades, trades):
                for key, qty, _ in self.queue.trade(t.side, t.price, t.qty):
                    self._fill(str(key), qty, now_ms)
                    fills += 1
        self._trades = tuple(trades)
        for side, levels in ((BID, book.bids), (ASK, book.asks)):
            seen = {price: size for price, size in levels}
            known = self.queue.levels[side]
            if levels:
                worst = levels[-1][0]
                for price in [p for p in known if p not in seen and (p >= worst if side == BID else p <= worst)]:
                    self.queue.set_level(side, price, 0)
            for price, size in seen.items():
                if known.get(price) != size:
                    self.queue.set_level(side, price, size)
        self._started = True
        return fills

    # ------------------------------------------------------------------ the ledger
    def _cost(self, qty: int, price: Decimal) -> int:
        return int((qty * self.face / price / UNIT).to_integral_value(ROUND_HALF_EVEN))

    def _fill(self, order_id: str, qty: int, now_ms: int) -> None:
        order = self.orders[order_id]
        price = order.price
        cost = self._cost(qty, price)
        fee = int((cost * self.maker_fee).to_integral_value(ROUND_HALF_EVEN))
        realised = -fee
        if order.close_flag:
            leg = self.legs[SHORT if order.side == BUY else LONG]
            closed = min(qty, leg.qty)
            if closed:
                share = leg.cost * closed // leg.qty if closed < leg.qty else leg.cost
                part = self._cost(closed, price) if closed < qty else cost
                pnl = share - part if leg is self.legs[LONG] else part - share
                leg.qty -= closed
                leg.cost -= share
                realised += pnl
                cost -= part
            opened = qty - closed
        else:
            opened = qty
        if opened:
            leg_open = self.legs[LONG if order.side == BUY else SHORT]
            leg_open.qty += opened
            leg_open.cost += cost
        if order.close_flag:                       # realised PnL and fee go to the leg the order trades
            traded = SHORT if order.side == BUY else LONG
        else:
            traded = LONG if order.side == BUY else SHORT
        self.legs[traded].realised += realised
        self.fees += fee
        self.fill_count += 1
        self.contracts += qty
        filled = order.filled_qty + qty
        if filled >= order.qty:
            self.orders.pop(order_id, None)
        else:
            self.orders[order_id] = dataclasses.replace(order, filled_qty=filled, status=16)
        log.info("Paper fill: %s %d @ %s (dry run)", order.side, qty, format(price, "f"))
        if self.events:
            self._exec_ids += 1
            self.events.emit("execution", exec_id=f"paper-{self._exec_ids}", order_id=order_id,
                             client_oid=order.client_oid, side=order.side, price=price, qty=qty,
                             fee=fee * UNIT, maker=True, realised_pnl=realised * UNIT, ts_ex_ms=now_ms,
                             source="paper")

    def positions(self, mark: Optional[Decimal]) -> Positions:
        out = {}
        for name, leg in self.legs.items():
            upnl = Decimal(0)
            entry = Decimal(0)
            if leg.qty:
                entry = leg.qty * self.face / (leg.cost * UNIT)
                if mark:
                    now = self._cost(leg.qty, mark)
                    upnl = (leg.cost - now if name == LONG else now - leg.cost) * UNIT
            out[name] = Position(name, leg.qty, max(0, leg.qty - self.closing(name)), entry,
                                 unrealised_pnl=upnl, realised_pnl=leg.realised * UNIT)
        return Positions(long=out[LONG], short=out[SHORT])

    def view(self, snap: MarketSnapshot) -> MarketSnapshot:
        """``snap`` with the paper position, fills and fees in place of the (empty) account's."""
        book = snap.book
        mark = (book.best_bid + book.best_ask) / 2 if book.best_bid and book.best_ask else None
        return dataclasses.replace(snap, positions=self.positions(mark), contracts_traded=self.contracts,
                                   fill_count=self.fill_count, maker_fill_count=self.fill_count,
                                   fees_paid=self.fees * UNIT)

    def update(self, snap: MarketSnapshot, book: Book, now_ms: int) -> MarketSnapshot:
        """Observe the market of ``snap`` (``book``: deeper than the snapshot's) and lay the paper over it."""
        if snap.instrument is not None:
            self.face = snap.instrument.face_value
        self.observe(book, snap.recent_trades, now_ms)
        return self.view(snap)


__all__ = ["PaperLedger", "new_trades"]
