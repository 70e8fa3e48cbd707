"""Our own view of our open orders between a REST answer and its WebSocket echo.

The WebSocket ``order`` table is the truth, but it lags the REST calls that
change it. Without this overlay a requote right after a create would not see
the new order (and create it again), and one right after a cancel would still
see the old order (and count it against the open-order limit). Pure: the caller
passes the time in.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

from .models import Order


@dataclass
class OrderTracker:
    ttl_ms: int = 5000  # after this long the WebSocket view wins whatever it says
    _created: Dict[str, tuple] = field(default_factory=dict)  # order_id -> (Order, time_ms)
    _cancelled: "OrderedDict[str, int]" = field(default_factory=OrderedDict)  # order_id -> time_ms, oldest first

    def created(self, order: Order, now_ms: int) -> None:
        self._created[order.order_id] = (order, now_ms)

    def cancelled(self, order_ids: Iterable[str], now_ms: int) -> None:
        for order_id in order_ids:
            self._cancelled[order_id] = now_ms
            self._cancelled.move_to_end(order_id)
            self._created.pop(order_id, None)

    def forget_all(self) -> None:
        """After a resync the reconciled tables are the truth."""
        self._created.clear()
        self._cancelled.clear()

    def awaiting_echo(self) -> List[str]:
        """Ids of created orders the WebSocket has not reported yet."""
        return list(self._created)

    def merge(self, ws_open: Iterable[Order], seen_ids: "frozenset[str] | set[str]", now_ms: int) -> List[Order]:
        """Open orders as we should believe them now.

        ``ws_open`` are the open orders of the WebSocket table; ``seen_ids`` every
        order id the table has heard of (open or final), so a created order that
        already filled is not resurrected.
        """
        horizon = now_ms - self.ttl_ms
        created = self._created
        if created:
            for order_id, (_, at) in list(created.items()):
                if order_id in seen_ids or at < horizon:
                    del created[order_id]
        cancelled = self._cancelled
        while cancelled and next(iter(cancelled.values())) < horizon:
            cancelled.popitem(last=False)
        live = [o for o in ws_open if o.order_id not in cancelled] if cancelled else list(ws_open)
        if created:
            live_ids = {o.order_id for o in live}
            live.extend(o for o, _ in created.values() if o.order_id not in live_ids
                        and o.order_id not in cancelled)
        return live

    @property
    def pending(self) -> int:
        return len(self._created) + len(self._cancelled)
