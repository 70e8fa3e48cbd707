"""Domain types shared by the client, the quoting math and the OrderManager.

They are plain frozen values with exact numbers (``Decimal`` prices, ``int``
contract quantities). The GTE client turns wire rows into these; quoting and
converge only ever see these, never JSON.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple, Optional, Tuple

BUY = "buy"
SELL = "sell"
LONG = "long"
SHORT = "short"

CANCEL_PENDING = 4
OPEN_STATUSES = frozenset({1, 2, CANCEL_PENDING, 16})
FINAL_STATUSES = frozenset({8, 32})
# Open and no cancel pending: the orders a requote may keep or replace. An order whose cancel is
# pending is on its way out, but until it is final it still holds its margin or closable quantity.
ACTIVE_STATUSES = OPEN_STATUSES - {CANCEL_PENDING}


@dataclass(frozen=True)
class Instrument:
    symbol: str
    settle_currency: str
    tick_size: Decimal
    price_precision: int
    face_value: Decimal
    symbol_id: int
    last_price: Optional[Decimal] = None
    mark_price: Optional[Decimal] = None
    index_price: Optional[Decimal] = None
    funding_rate: Optional[Decimal] = None


@dataclass(frozen=True)
class Order:
    """One of our orders as the exchange reports it."""

    order_id: str
    client_oid: str
    side: str  # BUY or SELL
    close_flag: int  # 0 open, 1 close
    price: Decimal
    qty: int
    filled_qty: int
    status: int
    avg_price: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    ctime: int = 0

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def is_active(self) -> bool:
        """Open with no cancel pending (see ``ACTIVE_STATUSES``)."""
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True)
class Position:
    """One leg of a two-way position (GTE keeps a long and a short per symbol)."""

    side: str  # LONG or SHORT
    qty: int = 0
    avail_qty: int = 0
    entry_price: Decimal = Decimal(0)
    leverage: Decimal = Decimal(0)
    liquidation_price: Decimal = Decimal(0)
    unrealised_pnl: Decimal = Decimal(0)
    realised_pnl: Decimal = Decimal(0)
    pos_margin: Decimal = Decimal(0)


@dataclass(frozen=True)
class Positions:
    long: Position = field(default_factory=lambda: Position(LONG))
    short: Position = field(default_factory=lambda: Position(SHORT))

    @property
    def net(self) -> int:
        """Net exposure in contracts: long minus short."""
        return self.long.qty - self.short.qty


@dataclass(frozen=True)
class Margin:
    settle_currency: str
    total: Decimal = Decimal(0)
    available: Decimal = Decimal(0)
    order_margin: Decimal = Decimal(0)
    pos_margin: Decimal = Decimal(0)


@dataclass(frozen=True)
class Fill:
    """One execution of one of our orders."""

    exec_id: str
    order_id: str
    side: str
    close_flag: int
    price: Decimal
    qty: int
    fee: Decimal
    maker: bool
    time: int


@dataclass(frozen=True)
class Trade:
    """A public trade; ``side`` is the taker's side."""

    side: str
    price: Decimal
    qty: int
    time: int


@dataclass(frozen=True)
class Book:
    """Top of the order book: levels best first as (price, size)."""

    bids: Tuple[Tuple[Decimal, int], ...] = ()
    asks: Tuple[Tuple[Decimal, int], ...] = ()

    @property
    def best_bid(self) -> Optional[Decimal]:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> Optional[Decimal]:
        return self.asks[0][0] if self.asks else None

    @property
    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids[0][0] >= self.asks[0][0])


@dataclass(frozen=True)
class MarketSnapshot:
    """A consistent view of everything the strategy may look at, taken at once."""

    instrument: Optional[Instrument]
    book: Book
    orders: Tuple[Order, ...]  # our open orders
    positions: Positions
    margin: Optional[Margin]
    last_update_ms: int  # local wall time (ms) of the last market data applied: a book or trade message
    connected: bool
    synced: bool  # every table has its partial and no gap is pending
    contracts_traded: int = 0  # contracts filled on our orders since the client started
    fill_count: int = 0  # executions of our orders since the client started
    maker_fill_count: int = 0  # those of them where our order was resting (maker)
    fees_paid: Decimal = Decimal(0)  # their fees (settle currency; negative = rebates earned)
    recent_trades: Tuple[Trade, ...] = ()
    echoed: frozenset = frozenset()  # of the order ids the snapshot was asked to watch, those the table knew
    unsynced_since_ms: int = 0  # local wall time (ms) the tables went out of sync; 0 while synced


class DesiredOrder(NamedTuple):
    """An order the strategy wants resting on the book.

    A named tuple rather than a frozen dataclass: a requote builds hundreds of
    them, and a tuple is built several times faster.
    """

    side: str
    price: Decimal
    qty: int
    close_flag: int = 0
