"""Incremental L2 order book keyed by GTE level ids (gte-api.md §3, order_book).

Prices live as integer ticks, ``ticks = 100000000 * symbol_id - id``, so a level
update costs a dict lookup and an ``int()`` -- no Decimal. Levels are keyed by
the wire id string exactly as received (no parsing on update/delete). Each side
keeps an ascending list of ticks maintained with ``bisect`` on insert/delete;
reads never sort.
"""
from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..models import BUY, SELL, Book
from .errors import GteError

_ID_BASE = 100_000_000
_PRICE_CACHE_MAX = 100_000

Row = Mapping[str, Any]


class StreamError(GteError):
    """A pushed message cannot be applied; the caller resyncs the table."""

    description = "WebSocket message cannot be applied"

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


class BookInconsistent(StreamError):
    """A message does not fit the current book (unknown id, duplicate insert)."""

    description = "Order book inconsistent"


class MalformedMessage(StreamError):
    """A message or row is malformed (bad id/size/side, price disagreeing with its id)."""

    description = "Malformed WebSocket message"


def _size(raw: Any) -> int:
    """A level size: a positive whole number, as a decimal string (or a JSON int)."""
    if raw.__class__ is str or raw.__class__ is int:
        size = int(raw)
        if size > 0:
            return size
    raise ValueError("size must be a positive whole number")


def _wire_id(raw: Any) -> str:
    """A level id as its canonical decimal string."""
    if raw.__class__ is str:
        return raw
    if raw.__class__ is int:
        return str(raw)
    raise ValueError("level id must be a decimal string")


class OrderBook:
    """One symbol's book.

    ``_size``: id -> size; ``_where``: id -> +ticks (bid) / -ticks (ask);
    ``_id_at``: ticks -> id (one level per price: the id formula has no side).
    """

    __slots__ = (
        "_asks",
        "_base",
        "_bids",
        "_id_at",
        "_prices",
        "_size",
        "_where",
        "symbol_id",
        "tick_size",
    )

    def __init__(self, tick_size: Decimal, symbol_id: int) -> None:
        if tick_size <= 0:
            raise ValueError("tick_size must be positive")
        self.tick_size = tick_size
        self.symbol_id = symbol_id
        self._base = _ID_BASE * symbol_id
        self._size: dict[str, int] = {}
        self._where: dict[str, int] = {}
        self._id_at: dict[int, str] = {}
        self._bids: list[int] = []  # ascending ticks: best bid is the last
        self._asks: list[int] = []  # ascending ticks: best ask is the first
        self._prices: dict[int, str] = {}  # ticks -> a price string already verified

    # ----------------------------------------------------------------- reads
    def __len__(self) -> int:
        return len(self._size)

    @property
    def depth(self) -> tuple[int, int]:
        """(number of bid levels, number of ask levels)."""
        return len(self._bids), len(self._asks)

    @property
    def best_bid_ticks(self) -> int | None:
        return self._bids[-1] if self._bids else None

    @property
    def best_ask_ticks(self) -> int | None:
        return self._asks[0] if self._asks else None

    @property
    def best_bid(self) -> Decimal | None:
        return self._bids[-1] * self.tick_size if self._bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self._asks[0] * self.tick_size if self._asks else None

    def level(self, level_id: Any) -> tuple[str, int, int] | None:
        """(side, ticks, size) of a level by its wire id, or None."""
        lid = _wire_id(level_id)
        where = self._where.get(lid)
        if where is None:
            return None
        return (BUY, where, self._size[lid]) if where > 0 else (SELL, -where, self._size[lid])

    def levels(self) -> dict[str, tuple[str, int, int]]:
        """Every level: wire id -> (side, ticks, size)."""
        return {lid: self.level(lid) for lid in self._size}  # type: ignore[misc]

    def top_ticks(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Best ``n`` levels per side as (ticks, size), best first."""
        size, id_at, bids = self._size, self._id_at, self._bids
        lo = max(len(bids) - n, 0)
        return ([(t, size[id_at[t]]) for t in reversed(bids[lo:])],
                [(t, size[id_at[t]]) for t in self._asks[:max(n, 0)]])

    def top(self, n: int) -> Book:
        """Best ``n`` levels per side as a ``models.Book`` (Decimal prices)."""
        tick = self.tick_size
        bids, asks = self.top_ticks(n)
        return Book(bids=tuple((t * tick, s) for t, s in bids),
                    asks=tuple((t * tick, s) for t, s in asks))

    # ---------------------------------------------------------------- writes
    def clear(self) -> None:
        self._size.clear()
        self._where.clear()
        self._id_at.clear()
        self._bids.clear()
        self._asks.clear()

    def apply(self, rows: Iterable[Row], action: Any) -> str:
        """Apply one message's rows for ``action``; returns the event kind ``"book"``.

        ``update`` (the hot path) is inlined here: it sets the new total size.
        """
        if action == "update":
            sizes = self._size
            try:
                for row in rows:
                    lid = row["id"]
                    raw = row["size"]
                    size = int(raw) if raw.__class__ is str else _size(raw)
                    if lid not in sizes:
                        lid = self._known_id(lid)
                    if size <= 0:
                        raise MalformedMessage(f"non-positive size for level id {lid}")
                    if "price" in row:
                        self._check_price(row["price"], abs(self._where[lid]))
                    side = row.get("side")
                    if side is not None and (side == "buy") != (self._where[lid] > 0):
                        raise BookInconsistent(f"update of level id {lid} changes its side to {str(side)[:10]!r}")
                    sizes[lid] = size
            except (KeyError, TypeError, ValueError):
                raise MalformedMessage("book update row needs an id and an integer size") from None
        elif action == "insert":
            self.insert(rows)
        elif action == "delete":
            self.delete(rows)
        elif action == "partial":
            self.apply_partial(rows)
        else:
            raise MalformedMessage(f"unknown book action {str(action)[:20]!r}")
        return "book"

    def update(self, rows: Iterable[Row]) -> None:
        """Set the new total size of existing levels (not a delta)."""
        self.apply(rows, "update")

    def apply_partial(self, rows: Iterable[Row]) -> None:
        """Replace the whole book with a full image; the book is empty on error."""
        self.clear()
        try:
            for row in rows:
                self._add(row, sort=False)
        except BaseException:
            self.clear()
            raise
        where = self._where.values()
        self._bids = sorted(w for w in where if w > 0)
        self._asks = sorted(-w for w in where if w < 0)

    def insert(self, rows: Iterable[Row]) -> None:
        """Add new levels; an id (or price) already present raises ``BookInconsistent``."""
        for row in rows:
            self._add(row, sort=True)

    def delete(self, rows: Iterable[Row]) -> None:
        """Remove levels; an unknown id raises ``BookInconsistent``."""
        where = self._where
        for row in rows:
            try:
                lid = row["id"]
            except (KeyError, TypeError):
                raise MalformedMessage("book delete row needs an id") from None
            if lid not in where:
                lid = self._known_id(lid)
            w = where.pop(lid)
            del self._size[lid]
            if w > 0:
                side, ticks = self._bids, w
            else:
                side, ticks = self._asks, -w
            del self._id_at[ticks]
            del side[bisect_left(side, ticks)]

    # --------------------------------------------------------------- helpers
    def _known_id(self, raw: Any) -> str:
        """Slow path of a lookup miss: normalise a non-string id, else BookInconsistent."""
        try:
            lid = _wire_id(raw)
        except ValueError:
            raise MalformedMessage("book row has a non-decimal id") from None
        if lid not in self._size:
            raise BookInconsistent(f"no level with id {lid[:30]}")
        return lid

    def _add(self, row: Row, sort: bool) -> None:
        """Validate a full (partial/insert) row and add its level."""
        try:
            lid = _wire_id(row["id"])
            ticks = self._base - int(lid)
            size = _size(row["size"])
            side = row["side"]
        except (KeyError, TypeError, ValueError):
            raise MalformedMessage("book row needs a decimal id, a positive size and a side") from None
        if side == "buy":
            is_bid = True
        elif side == "sell":
            is_bid = False
        else:
            raise MalformedMessage(f"unknown book side {str(side)[:10]!r}")
        if ticks <= 0:
            raise MalformedMessage(f"level id {lid[:30]} gives a non-positive price")
        price = row.get("price")
        if price is not None:
            self._check_price(price, ticks)
        if lid in self._size or ticks in self._id_at:
            raise BookInconsistent(f"insert of existing level id {lid[:30]}")
        self._size[lid] = size
        self._where[lid] = ticks if is_bid else -ticks
        self._id_at[ticks] = lid
        if sort:
            insort(self._bids if is_bid else self._asks, ticks)

    def _check_price(self, price: Any, ticks: int) -> None:
        """The row's price must equal ticks * tick_size (cached per price string)."""
        if self._prices.get(ticks) == price:
            return
        try:
            ok = isinstance(price, str) and Decimal(price) == ticks * self.tick_size
        except InvalidOperation:
            ok = False
        if not ok:
            raise MalformedMessage(f"price {str(price)[:30]!r} disagrees with level ticks {ticks}")
        if len(self._prices) >= _PRICE_CACHE_MAX:
            self._prices.clear()
        self._prices[ticks] = price
