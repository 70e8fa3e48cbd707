"""Our own view of our open orders between a REST answer and its WebSocket echo.

The WebSocket ``order`` table is the truth, but it lags the REST calls that
change it. Without this overlay a requote right after a create would not see
the new order (and create it again), and one right after a cancel would still
see the old order (and count it against the open-order limit). Pure: the caller
passes the time in.

It also holds the creates *in doubt*: sent, answer lost, order not found yet. Such
a create may still execute until it settles (its ``api-expires`` plus a grace), so
it is shown as a resting order with no id (a placeholder, ``order_id == ""``): the
ladder keeps it or replaces it, but it is never sent twice. A placeholder the
ladder cancels is *abandoned*: hidden from the view, yet still counted against the
open-order budget (``abandoned``) until it settles. It settles when the socket
shows an order with its ``client_oid`` or when the caller looks it up after
``settles_at_ms`` (``due`` / ``settle``).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, Iterable, List, Optional, Tuple

from .models import Order


@dataclass
class OrderTracker:
    ttl_ms: int = 5000  # after this long the WebSocket view wins whatever it says
    _created: Dict[str, tuple] = field(default_factory=dict)  # order_id -> (Order, time_ms)
    # Cancelled ids, forgotten oldest cancel first. A dict and a queue rather than an OrderedDict:
    # expiring one costs a fraction (a requote cancels dozens). ``_cancelled`` maps an id to the
    # number of its latest cancel; ``_cancel_log`` holds (time_ms, number, id) of every cancel in
    # order, an entry whose number is not the id's latest being stale (the id was cancelled again).
    _cancelled: Dict[str, int] = field(default_factory=dict)
    _cancel_log: Deque[Tuple[int, int, str]] = field(default_factory=deque)
    _cancel_count: int = 0
    _in_doubt: Dict[str, "InDoubt"] = field(default_factory=dict)  # client_oid -> InDoubt

    def created(self, order: Order, now_ms: int) -> None:
        self._created[order.order_id] = (order, now_ms)

    def cancelled(self, order_ids: Iterable[str], now_ms: int) -> None:
        cancelled, log, created = self._cancelled, self._cancel_log, self._created
        number = self._cancel_count
        for order_id in order_ids:
            number += 1
            cancelled[order_id] = number
            log.append((now_ms, number, order_id))
            created.pop(order_id, None)
        self._cancel_count = number

    # -- creates in doubt
    def in_doubt(self, placeholder: Order, settles_at_ms: int) -> None:
        """A create whose outcome is unknown until ``settles_at_ms`` (``placeholder.order_id`` is "")."""
        self._in_doubt[placeholder.client_oid] = InDoubt(placeholder, settles_at_ms)

    def abandon(self, client_oids: Iterable[str]) -> None:
        """The ladder no longer wants these in-doubt creates: hide them, cancel them if they turn up."""
        for client_oid in client_oids:
            entry = self._in_doubt.get(client_oid)
            if entry is not None:
                entry.abandoned = True

    def abandon_all(self) -> None:
        for entry in self._in_doubt.values():
            entry.abandoned = True

    def due(self, now_ms: int) -> List[str]:
        """``client_oid`` of the in-doubt creates whose moment to be looked up has come."""
        return [oid for oid, entry in self._in_doubt.items() if entry.settles_at_ms <= now_ms]

    def next_due_ms(self) -> Optional[int]:
        return min((e.settles_at_ms for e in self._in_doubt.values()), default=None)

    def postpone(self, client_oid: str, until_ms: int) -> None:
        """The lookup failed: try again at ``until_ms``."""
        entry = self._in_doubt.get(client_oid)
        if entry is not None:
            entry.settles_at_ms = until_ms

    def settle(self, client_oid: str, found: Optional[Order], now_ms: int) -> bool:
        """The create is settled: ``found`` is its order (None: it never executed). Returns
        whether it had been abandoned; an open order that was not is adopted into the view."""
        entry = self._in_doubt.pop(client_oid, None)
        if entry is None:
            return False
        if found is not None and found.is_open and not entry.abandoned:
            self.created(found, now_ms)
        return entry.abandoned

    @property
    def doubtful(self) -> int:
        """Creates in doubt."""
        return len(self._in_doubt)

    def abandoned_levels(self) -> set:
        """(side, price, close_flag) of the in-doubt creates given up: a new order there could
        end up beside one of them."""
        return {(e.placeholder.side, e.placeholder.price, e.placeholder.close_flag)
                for e in self._in_doubt.values() if e.abandoned}

    @property
    def abandoned(self) -> int:
        """In-doubt creates hidden from the view that may still execute."""
        return sum(1 for e in self._in_doubt.values() if e.abandoned)

    def forget_all(self) -> None:
        """After a resync the reconciled tables are the truth."""
        self._created.clear()
        self._cancelled.clear()
        self._cancel_log.clear()

    def in_flight(self) -> set:
        """Ids whose socket view may lag our own requests: created and not echoed yet, or cancelled
        within the ttl."""
        return set(self._created) | set(self._cancelled)

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
        if self._in_doubt:
            ws_open = list(ws_open)
            echoed = {o.client_oid for o in ws_open}
            for client_oid in [oid for oid in self._in_doubt if oid in echoed]:
                del self._in_doubt[client_oid]  # settled by the socket: the real order is in ``ws_open``
        created = self._created
        if created:
            for order_id, (_, at) in list(created.items()):
                if order_id in seen_ids or at < horizon:
                    del created[order_id]
        self._expire_cancels(horizon)
        cancelled = self._cancelled
        live = [o for o in ws_open if o.order_id not in cancelled] if cancelled else list(ws_open)
        if created:
            live_ids = {o.order_id for o in live}
            live.extend(o for o, _ in created.values() if o.order_id not in live_ids
                        and o.order_id not in cancelled)
        if self._in_doubt:
            live.extend(e.placeholder for e in self._in_doubt.values() if not e.abandoned)
        return live

    def _expire_cancels(self, horizon: int) -> None:
        """Forget cancels, oldest first, up to the first one made at or after ``horizon``."""
        cancelled, log = self._cancelled, self._cancel_log
        while log:
            at, number, order_id = log[0]
            if cancelled.get(order_id) != number:
                log.popleft()  # stale: this id was cancelled again later (or forgotten)
            elif at < horizon:
                log.popleft()
                del cancelled[order_id]
            else:
                break

    @property
    def pending(self) -> int:
        return len(self._created) + len(self._cancelled)


@dataclass
class InDoubt:
    """A create whose outcome is unknown until ``settles_at_ms``."""

    placeholder: Order
    settles_at_ms: int
    abandoned: bool = False
