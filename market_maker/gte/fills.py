"""Fill accounting: contracts traded on our orders, deduplicated by ``exec_id`` and reconciled
against orders' cumulative ``filled_qty`` (``SeenSet``, ``FillCounter``)."""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from typing import Any

from ..models import Fill
from .parse import MalformedRow, integer, parse_execution

Row = Mapping[str, Any]


class SeenSet:
    """Membership of the last ``maxlen`` ids (set + deque, O(1))."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._order: deque[str] = deque()
        self._set: set[str] = set()
        self.maxlen = maxlen

    def __contains__(self, item: object) -> bool:
        return item in self._set

    def __len__(self) -> int:
        return len(self._set)

    def add(self, item: str) -> bool:
        """Remember ``item``; False if it was already there."""
        if item in self._set:
            return False
        self._set.add(item)
        self._order.append(item)
        if len(self._order) > self.maxlen:
            self._set.discard(self._order.popleft())
        return True


class FillCounter:
    """Contracts filled on our orders since start, never counted twice.

    ``credited[order_id]`` is the cumulative quantity of that order already
    counted. A live execution adds ``last_qty`` (capped by its ``cum_qty`` minus
    what is already credited) unless its ``exec_id`` was seen. After a resync the
    reconciled order view reports ``filled_qty``; anything above the credited
    amount is a fill we missed while blind and is added then. Orders present at
    start are baselined at their ``filled_qty`` (fills before start don't count).
    """

    def __init__(self, max_seen: int = 10_000, max_orders: int = 10_000) -> None:
        self.contracts = 0
        self.seen = SeenSet(max_seen)
        self.credited: OrderedDict[str, int] = OrderedDict()
        self.max_orders = max_orders

    def baseline(self, order_id: str, filled_qty: int) -> None:
        """An order that existed at start: its past fills are not ours to count."""
        if order_id not in self.credited:
            self._credit_to(order_id, filled_qty)

    def on_execution(self, row: Row) -> Fill | None:
        """Count one execution row; the ``Fill`` if it is new and has a quantity."""
        exec_id = row.get("exec_id")
        if exec_id is None:
            raise MalformedRow("execution row lacks exec_id")
        if str(exec_id) in self.seen:
            return None
        fill = parse_execution(row)
        self.seen.add(fill.exec_id)
        if fill.qty <= 0:
            return None
        done = self.credited.get(fill.order_id, 0)
        cum = integer(row, "cum_qty") if row.get("cum_qty") not in (None, "") else None
        if cum is None:
            added, total = fill.qty, done + fill.qty
        else:
            added, total = max(0, min(fill.qty, cum - done)), max(done, cum)
        self.contracts += added
        self._credit_to(fill.order_id, total)
        return fill

    def mark_seen(self, rows: Iterable[Row]) -> None:
        """Executions that predate us (initial partial): remember, don't count."""
        for row in rows:
            exec_id = row.get("exec_id")
            if exec_id is not None:
                self.seen.add(str(exec_id))

    def absorb_partial(self, rows: Iterable[Row], since_ms: int) -> list[Fill]:
        """Executions in a resync partial: count the unseen ones that are ours to count.

        An execution counts if its order is one we track or it happened after
        ``since_ms`` (our start); older unknown ones are only remembered.
        """
        fills = []
        for row in rows:
            exec_id = row.get("exec_id")
            if exec_id is None or str(exec_id) in self.seen:
                continue
            if str(row.get("order_id")) in self.credited or integer(row, "ctime", 0) >= since_ms:
                fill = self.on_execution(row)
                if fill is not None:
                    fills.append(fill)
            else:
                self.seen.add(str(exec_id))
        return fills

    def reconcile(self, order_id: str, filled_qty: int) -> int:
        """Credit fills of ``order_id`` missed while blind; returns contracts added."""
        done = self.credited.get(order_id, 0)
        added = max(0, filled_qty - done)
        self.contracts += added
        self._credit_to(order_id, max(done, filled_qty))
        return added

    def _credit_to(self, order_id: str, total: int) -> None:
        credited = self.credited
        credited[order_id] = total
        credited.move_to_end(order_id)
        if len(credited) > self.max_orders:
            credited.popitem(last=False)
