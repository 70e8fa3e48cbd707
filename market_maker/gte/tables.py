"""Live copies of the keyed WebSocket tables (gte-api.md §3) and fill accounting.

* ``KeyedTable``: rows keyed by the table's key tuple; ``update`` merges the
  changed fields into the stored row, every stored row is also kept parsed into
  its domain type (parsed once per change, so snapshots are cheap).
* ``OrderTable``: a ``KeyedTable`` that retires final orders (cancelled/filled)
  into a bounded "recently closed" map, so the live map holds open orders only
  and late pushes for a just-closed order are absorbed instead of failing.
* ``LiveTables``: every non-book table of one symbol, with fill accounting
  (``SeenSet``/``FillCounter``, module ``fills``).
"""
from __future__ import annotations

from decimal import Decimal

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from ..models import (BUY, FINAL_STATUSES, LONG, OPEN_STATUSES, SHORT, Fill, Instrument, Margin, Order, Position,
                      Positions, Trade)
from .book import StreamError
from .fills import FillCounter
from .funding import FundingState, payments
from .parse import MalformedRow, parse_instrument, parse_margin, parse_order, parse_position, parse_trade

T = TypeVar("T")
Row = Mapping[str, Any]
Key = tuple[str, ...]

INSTRUMENT_KEYS: Key = ("symbol",)
ORDER_KEYS: Key = ("order_id",)
POSITION_KEYS: Key = ("symbol", "side")
MARGIN_KEYS: Key = ("settle_currency",)
POSITION_FULL_ROW = ("qty", "avail_qty", "entry_price")
MARGIN_FULL_ROW = ("total", "available", "order_margin", "pos_margin")


_QUIET_STATUSES = frozenset((1, 2))  # created / resting unfilled: no ``order_state`` told for these
_FLAT_LONG, _FLAT_SHORT = Position(LONG), Position(SHORT)  # frozen, so every flat view can share them


class UnknownKey(StreamError):
    """An update/delete names a key the table does not hold."""

    description = "Update or delete for an unknown key"


class KeyedTable(Generic[T]):
    """Rows by key tuple, with their parsed domain values; all operations O(1) per row."""

    def __init__(self, name: str, keys: Key, parse: Callable[[Row], T],
                 full_row_fields: tuple[str, ...] = ()) -> None:
        """``full_row_fields``: for tables the exchange re-pushes periodically as full-image
        ``update`` rows (position, margin), an update for an unknown key that carries all of
        these fields is a complete row and is inserted; otherwise it is ``UnknownKey``."""
        self.name = name
        self.keys = keys
        self._parse = parse
        self._full_row_fields = full_row_fields
        self.rows: dict[Key, dict[str, Any]] = {}
        self.items: dict[Key, T] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def get(self, key: Key) -> T | None:
        return self.items.get(key)

    def values(self) -> Iterator[T]:
        return iter(self.items.values())

    def key_of(self, row: Row) -> Key:
        """The row's key tuple, values as strings; a missing key field is ``MalformedRow``."""
        try:
            return tuple(str(row[k]) for k in self.keys)
        except (KeyError, TypeError):
            raise MalformedRow(f"{self.name} row lacks key fields {self.keys}") from None

    def partial(self, rows: Iterable[Row]) -> None:
        """Replace the whole table with a full image (left empty if a row is bad)."""
        self.rows.clear()
        self.items.clear()
        try:
            for row in rows:
                self._store(self.key_of(row), dict(row))
        except BaseException:
            self.rows.clear()
            self.items.clear()
            raise

    def insert(self, rows: Iterable[Row]) -> None:
        """Add rows; an insert for a key already held merges into it."""
        for row in rows:
            key = self.key_of(row)
            old = self.rows.get(key)
            self._store(key, dict(row) if old is None else {**old, **row})

    def update(self, rows: Iterable[Row]) -> None:
        """Merge changed fields into held rows; an unknown key raises ``UnknownKey``."""
        for row in rows:
            key = self.key_of(row)
            old = self.rows.get(key)
            if old is None:
                if self._full_row_fields and all(f in row for f in self._full_row_fields):
                    self._store(key, dict(row))
                else:
                    self._unknown(key, row, "update")
                continue
            self._store(key, {**old, **row})

    def delete(self, rows: Iterable[Row]) -> None:
        """Remove rows; an unknown key raises ``UnknownKey``."""
        for row in rows:
            key = self.key_of(row)
            if self.rows.pop(key, None) is None:
                self._unknown(key, row, "delete")
                continue
            self.items.pop(key, None)

    def _store(self, key: Key, merged: dict[str, Any]) -> None:
        """Parse first so a bad row leaves the stored one untouched."""
        item = self._parse(merged)
        self.rows[key] = merged
        self.items[key] = item

    def _unknown(self, key: Key, row: Row, action: str) -> None:
        raise UnknownKey(f"{action} for unknown {self.name} key {key}")


class OrderTable(KeyedTable[Order]):
    """Our orders: open ones live; final ones retire to a bounded recently-closed map."""

    def __init__(self, max_closed: int = 1000) -> None:
        super().__init__("order", ORDER_KEYS, parse_order)
        self.max_closed = max_closed
        self.closed: OrderedDict[Key, tuple[dict[str, Any], Order]] = OrderedDict()

    def partial(self, rows: Iterable[Row]) -> None:
        super().partial(rows)
        for key in [k for k, o in self.items.items() if o.status in FINAL_STATUSES]:
            self._retire(key)

    def _store(self, key: Key, merged: dict[str, Any]) -> None:
        super()._store(key, merged)
        if self.items[key].status in FINAL_STATUSES:
            self._retire(key)

    def _retire(self, key: Key) -> None:
        row = self.rows.pop(key)
        self.closed[key] = (row, self.items.pop(key))
        self.closed.move_to_end(key)
        while len(self.closed) > self.max_closed:
            self.closed.popitem(last=False)

    def _unknown(self, key: Key, row: Row, action: str) -> None:
        """A push for a recently closed order is absorbed, not an inconsistency."""
        held = self.closed.get(key)
        if held is None:
            super()._unknown(key, row, action)
        elif action == "update":
            merged = {**held[0], **row}
            self.closed[key] = (merged, parse_order(merged))
        else:
            del self.closed[key]

    def symbol_of(self, key: Key) -> str | None:
        row = self.rows.get(key)
        return None if row is None else row.get("symbol")

    def open_orders(self, symbol: str) -> tuple[Order, ...]:
        """Open orders on ``symbol``, oldest first."""
        rows = self.rows
        return tuple(o for k, o in self.items.items()
                     if o.status in OPEN_STATUSES and rows[k].get("symbol", symbol) == symbol)  # o.is_open, inlined


def order_to_row(order: Order, symbol: str) -> dict[str, str]:
    """A wire-style order row for an ``Order`` learned over REST.

    Decimals are written in plain notation (``format(d, "f")``): ``str()`` gives
    exponents for small values (a fee of ``-6.76E-7``), which the strict wire
    parser rightly refuses.
    """
    return {"order_id": order.order_id, "client_oid": order.client_oid,
            "side": "1" if order.side == BUY else "0", "close_flag": str(order.close_flag),
            "price": format(order.price, "f"), "qty": str(order.qty), "filled_qty": str(order.filled_qty),
            "status": str(order.status), "avg_price": format(order.avg_price, "f"),
            "fee": format(order.fee, "f"), "ctime": str(order.ctime), "symbol": symbol}


class LiveTables:
    """Every non-book table of one symbol/settle currency; ``apply`` returns the event kind.

    Rows for other symbols (private tables are per settle currency) are stored
    but left out of the views. Not thread-safe: the WebSocket client holds its lock.
    """

    def __init__(self, symbol: str, settle_currency: str, *, max_trades: int = 500,
                 max_executions: int = 500, started_ms: int = 0) -> None:
        self.symbol = symbol
        self.settle_currency = settle_currency
        self.fill_count = 0
        self.maker_fill_count = 0
        self.fees_paid = Decimal(0)
        self.started_ms = started_ms
        self.instruments: KeyedTable[Instrument] = KeyedTable("instrument", INSTRUMENT_KEYS, parse_instrument)
        self.orders = OrderTable()
        self.positions: KeyedTable[Position] = KeyedTable(
            "position", POSITION_KEYS, parse_position, POSITION_FULL_ROW)
        self.margins: KeyedTable[Margin] = KeyedTable(
            "margin", MARGIN_KEYS, parse_margin, MARGIN_FULL_ROW)
        self.trades: deque[Trade] = deque(maxlen=max_trades)
        self.executions: deque[Fill] = deque(maxlen=max_executions)
        self.fills = FillCounter()
        self._keyed: dict[str, KeyedTable[Any]] = {
            "instrument": self.instruments, "order": self.orders,
            "position": self.positions, "margin": self.margins}
        self._kinds = {"instrument": "instrument", "order": "order", "position": "position",
                       "margin": "margin"}
        self.record: Callable[..., None] | None = None  # record(kind, **fields): see GteWebSocket.set_recorder
        self.listening: Callable[[], bool] | None = None  # False: nobody listens, nothing is told

    def apply(self, table: str, action: str, rows: list[Row], resync: bool = False) -> str | None:
        """Apply one message's rows; ``resync`` marks a partial that replaces a stale copy."""
        if table == "trade":
            return self._trade(action, rows)
        if table == "execution":
            return self._execution(action, rows, resync)
        keyed = self._keyed[table]
        before = self._funding_state() if table == "instrument" and self.recording() else None
        if action == "update":
            keyed.update(rows)
        elif action == "insert":
            keyed.insert(rows)
        elif action == "delete":
            keyed.delete(rows)
        elif action == "partial":
            keyed.partial(rows)
            if keyed is self.orders:
                self._orders_partial(resync)
        else:
            raise MalformedRow(f"unknown action {action!r}")
        if action != "delete" and self.recording():
            self._tell(table, rows)
            if before is not None:
                self._tell_funding(before)
        return self._kinds[table]

    # funding: GTE pushes no funding row; a payment shows as the instrument's next funding time moving on
    def _funding_state(self) -> FundingState | None:
        """(funding_rate_time, funding_rate, mark) of our instrument now, or None when unknown."""
        row = self.instruments.rows.get((self.symbol,))
        inst = self.instrument()
        if row is None or inst is None or inst.mark_price is None or inst.funding_rate is None:
            return None
        try:
            return int(row.get("funding_rate_time")), inst.funding_rate, inst.mark_price
        except (TypeError, ValueError):
            return None

    def _tell_funding(self, before: FundingState) -> None:
        """The funding time moved on: tell each leg's payment (see ``funding.payments``)."""
        after = self._funding_state()
        if after is None:
            return
        inst = self.instrument()
        pos = self.position_view()
        for paid in payments(before, after, pos.long.qty, pos.short.qty, self.executions,
                             inst.face_value if inst is not None else Decimal(1)):
            self.record("funding", **paid)  # type: ignore[misc]

    def recording(self) -> bool:
        """Someone listens to ``record`` (when it is set)."""
        return self.record is not None and (self.listening is None or self.listening())

    def _tell(self, table: str, rows: list[Row]) -> None:
        """The changed rows' new state, to the recorder (positions and margin whole, after the change)."""
        record = self.record
        if table == "position":
            pos = self.position_view()
            record("position", long=pos.long, short=pos.short, long_qty=pos.long.qty,  # type: ignore[misc]
                   long_entry=pos.long.entry_price, short_qty=pos.short.qty, short_entry=pos.short.entry_price,
                   realised_pnl=pos.long.realised_pnl + pos.short.realised_pnl,
                   unrealised_pnl=pos.long.unrealised_pnl + pos.short.unrealised_pnl, ts_ex_ms=None)
        elif table == "margin":
            m = self.margin()
            if m is not None:
                record("margin", total=m.total, available=m.available,  # type: ignore[misc]
                       order_margin=m.order_margin, pos_margin=m.pos_margin, ts_ex_ms=None)
        elif table == "order":
            orders = self.orders
            for row in rows:
                key = (str(row.get("order_id")),)
                order = orders.get(key)
                if order is None:
                    held = orders.closed.get(key)
                    order = held[1] if held is not None else None
                if order is None or (order.status in _QUIET_STATUSES and not order.filled_qty):
                    continue  # a new resting order: its create told it already
                if (orders.symbol_of(key) or row.get("symbol", self.symbol)) == self.symbol:
                    record("order_state", order_id=order.order_id, client_oid=order.client_oid,  # type: ignore[misc]
                           side=order.side, close_flag=order.close_flag, price=order.price, qty=order.qty,
                           status=order.status, filled_qty=order.filled_qty, avg_price=order.avg_price,
                           fee=order.fee, ctime=order.ctime)

    def _orders_partial(self, resync: bool) -> None:
        for order in self.orders.values():
            if resync:
                self.fills.reconcile(order.order_id, order.filled_qty)
            else:
                self.fills.baseline(order.order_id, order.filled_qty)

    def _trade(self, action: str, rows: list[Row]) -> str | None:
        if action == "partial":
            self.trades.clear()
        elif action != "insert":
            raise MalformedRow(f"trade action {action!r} (insert only)")
        trades = [parse_trade(r) for r in rows if r.get("symbol", self.symbol) == self.symbol]
        self.trades.extend(trades)
        return None

    def _execution(self, action: str, rows: list[Row], resync: bool) -> str | None:
        mine = [r for r in rows if r.get("symbol", self.symbol) == self.symbol]
        if action == "insert":
            fills = [f for f in map(self.fills.on_execution, mine) if f is not None]
            if fills and self.recording():
                self._tell_fills(fills, mine)
        elif action == "partial":
            if not resync:
                self.fills.mark_seen(mine)
                return None
            fills = self.fills.absorb_partial(mine, self.started_ms)
            if fills and self.recording():
                self._tell_fills(fills, mine)
        else:
            raise MalformedRow(f"execution action {action!r} (insert only)")
        self.executions.extend(fills)
        for fill in fills:
            self.fill_count += 1
            self.maker_fill_count += fill.maker
            self.fees_paid += fill.fee
        return "fill" if fills else None

    def _tell_fills(self, fills: list[Fill], rows: list[Row]) -> None:
        """Our new executions, to the recorder, with their order's cumulative filled quantity."""
        cums = {str(r.get("exec_id")): r.get("cum_qty") for r in rows}
        for fill in fills:
            key = (fill.order_id,)
            order = self.orders.get(key)
            if order is None:
                held = self.orders.closed.get(key)
                order = held[1] if held is not None else None
            cum = cums.get(fill.exec_id)
            self.record("execution", exec_id=fill.exec_id, order_id=fill.order_id,  # type: ignore[misc]
                        client_oid=order.client_oid if order is not None else None, side=fill.side,
                        close_flag=fill.close_flag, price=fill.price, qty=fill.qty, fee=fill.fee, maker=fill.maker,
                        realised_pnl=None, ts_ex_ms=fill.time or None, source="live",
                        cum_qty=int(cum) if cum not in (None, "") else None)

    def reconcile_orders(self, rest_orders: Iterable[Order]) -> int:
        """Merge a REST view of open orders (newer than the partial); returns contracts added."""
        added = 0
        for order in rest_orders:
            key = (order.order_id,)
            held = self.orders.get(key)
            if held is None or order.filled_qty >= held.filled_qty:
                self.orders.insert([order_to_row(order, self.symbol)])
            added += self.fills.reconcile(order.order_id, order.filled_qty)
        if self.recording():  # the exchange's word after a resync: fills missed meanwhile are rebuilt from it
            for order in rest_orders:
                self.record("order_state", order_id=order.order_id, client_oid=order.client_oid,  # type: ignore[misc]
                            side=order.side, close_flag=order.close_flag, price=order.price, qty=order.qty,
                            status=order.status, filled_qty=order.filled_qty, avg_price=order.avg_price,
                            fee=order.fee, ctime=order.ctime, resync=True)
        return added

    # ------------------------------------------------------------------ views
    def instrument(self) -> Instrument | None:
        return self.instruments.get((self.symbol,))

    def open_orders(self) -> tuple[Order, ...]:
        return self.orders.open_orders(self.symbol)

    def position_view(self) -> Positions:
        long = self.positions.get((self.symbol, "1"))
        short = self.positions.get((self.symbol, "0"))
        return Positions(long=long or _FLAT_LONG, short=short or _FLAT_SHORT)

    def margin(self) -> Margin | None:
        return self.margins.get((self.settle_currency,))

    def recent_trades(self) -> tuple[Trade, ...]:
        return tuple(self.trades)
