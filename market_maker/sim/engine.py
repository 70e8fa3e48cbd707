"""Price-time priority limit order book in integer ticks (pure; no accounting).

Levels are keyed by a signed key: ``+ticks`` for bids, ``-ticks`` for asks, so both
sorted key lists hold the best level at their end (O(1) best price, ``bisect``
insertion).  Each level keeps its orders in an insertion-ordered dict (time
priority, O(1) cancel).  Every level touched during one operation is recorded
once in ``touched`` (coalescing), with whether it existed before the operation.
(``Exchange`` rests and removes single orders of a non-matching operation itself,
on the same structures, and publishes the one changed level directly.)
"""
from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal

BUY = 1
SELL = 0

# order statuses
CREATED, NEW, CANCEL_PENDING, CANCELLED, PARTIAL, FILLED = 1, 2, 4, 8, 16, 32
OPEN_STATUSES = frozenset({CREATED, NEW, CANCEL_PENDING, PARTIAL})


class Order:
    """One limit order; the engine uses side/ticks/qty/filled, the exchange the rest."""
    __slots__ = ("oid", "account_id", "symbol", "side", "close_flag", "ticks", "qty", "filled",
                 "status", "client_oid", "ctime", "fee", "margin", "unit", "leverage",
                 "value", "tpl")

    def __init__(self, oid: int, account_id: int, symbol: str, side: int, close_flag: int,
                 ticks: int, qty: int, client_oid: str | None, ctime: int,
                 leverage: Decimal, unit: tuple | None, margin: int) -> None:
        self.oid = oid
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.close_flag = close_flag
        self.ticks = ticks
        self.qty = qty
        self.filled = 0
        self.status = CREATED
        self.client_oid = client_oid
        self.ctime = ctime
        self.fee = 0                  # ledger units (1e-12), see accounts.py
        self.margin = margin          # ledger units reserved (open orders only)
        self.unit = unit              # accounts.Rate of face / price / leverage (None: close)
        self.leverage = leverage
        self.value = 0                # sum(fill qty * face / fill price) in accounts' value
                                      # units (1e-40), for avg_price
        self.tpl: dict | None = None  # exchange's cached row of this order while it rests

    @property
    def remaining(self) -> int:
        """Unfilled contracts."""
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        """True while the order may still trade or be cancelled."""
        return self.status in OPEN_STATUSES


class Level:
    """Orders resting at one price, oldest first, and their total remaining size."""
    __slots__ = ("orders", "total")

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        self.total = 0


Fill = tuple[Order, int, int]   # (maker order, qty, price in ticks)


class OrderBook:
    """The book of one symbol."""

    def __init__(self) -> None:
        self.levels: dict[int, Level] = {}
        self.bid_keys: list[int] = []       # ascending ticks; best bid last
        self.ask_keys: list[int] = []       # ascending -ticks; best ask last
        self.touched: dict[int, bool] = {}  # key -> level existed before the operation

    def best_bid(self) -> int | None:
        """Best bid in ticks, or None."""
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> int | None:
        """Best ask in ticks, or None."""
        return -self.ask_keys[-1] if self.ask_keys else None

    def match(self, taker: Order) -> list[Fill]:
        """Match ``taker`` against the opposite side while it crosses; makers' price."""
        fills: list[Fill] = []
        rem = taker.qty - taker.filled
        if taker.side == BUY:
            keys, limit = self.ask_keys, -taker.ticks
        else:
            keys, limit = self.bid_keys, taker.ticks
        levels = self.levels
        touched = self.touched
        while rem and keys and keys[-1] >= limit:
            key = keys[-1]
            level = levels[key]
            if key not in touched:
                touched[key] = True
            px = key if key > 0 else -key
            orders = level.orders
            while rem and orders:
                maker = next(iter(orders.values()))
                mrem = maker.qty - maker.filled
                q = rem if rem < mrem else mrem
                maker.filled += q
                rem -= q
                level.total -= q
                fills.append((maker, q, px))
                if q == mrem:
                    del orders[maker.oid]
            if not orders:
                del levels[key]
                keys.pop()
        taker.filled = taker.qty - rem
        return fills

    def rest(self, order: Order) -> None:
        """Append ``order`` (with its remaining size) at the back of its level."""
        key = order.ticks if order.side == BUY else -order.ticks
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = Level()
            insort(self.bid_keys if key > 0 else self.ask_keys, key)
            if key not in self.touched:
                self.touched[key] = False
        elif key not in self.touched:
            self.touched[key] = True
        level.orders[order.oid] = order
        level.total += order.qty - order.filled

    def remove(self, order: Order) -> None:
        """Take a resting ``order`` out of the book."""
        key = order.ticks if order.side == BUY else -order.ticks
        level = self.levels[key]
        if key not in self.touched:
            self.touched[key] = True
        del level.orders[order.oid]
        level.total -= order.qty - order.filled
        if not level.orders:
            del self.levels[key]
            keys = self.bid_keys if key > 0 else self.ask_keys
            del keys[bisect_left(keys, key)]

    def take_touched(self) -> list[tuple[int, int, int, bool]]:
        """Levels changed since the last call: (side, ticks, new size or 0, existed before)."""
        if not self.touched:
            return []
        out = []
        levels = self.levels
        for key, existed in self.touched.items():
            level = levels.get(key)
            size = level.total if level is not None else 0
            if size or existed:
                out.append((BUY, key, size, existed) if key > 0 else (SELL, -key, size, existed))
        self.touched.clear()
        return out

    def depth(self, side: int, size: int | None = None) -> list[tuple[int, int]]:
        """Up to ``size`` levels of ``side`` as (ticks, total), best first."""
        keys = self.bid_keys if side == BUY else self.ask_keys
        n = len(keys) if size is None else min(size, len(keys))
        levels = self.levels
        out = []
        for i in range(1, n + 1):
            key = keys[-i]
            out.append((key if key > 0 else -key, levels[key].total))
        return out
