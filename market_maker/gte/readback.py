"""The GTE WebSocket client's REST read-back after a resync: orders that went by while it was blind.

Orders created and finished entirely while the tables were out of sync appear in
no partial. After the ``order`` table is rebuilt, the I/O thread reads our open
orders over REST and then the most recent final orders (created since the client
started), page by page back to a while before the tables went blind -- or to the
oldest order open at that moment, which could have finished unseen. Their
``filled_qty`` is credited by ``LiveTables.reconcile_orders`` (never twice).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..models import Order

if TYPE_CHECKING:
    from .rest import GteRest

FINISHED_STATUSES = (8, 32)
RECONCILE_PAGES = 10  # pages of 100 final orders read back after a resync, at most
RECONCILE_LOOKBACK_MS = 5000  # ... back to this long before the tables went out of sync


def blind_bound_ms(unsynced_since: float, open_before_blind_ms: int | None) -> int:
    """How far back (ms) the read-back must reach: a while before the tables went out of sync
    (``unsynced_since``, clock() seconds; 0: unknown), or the ctime of the oldest order open then."""
    blind_ms = int(unsynced_since * 1000) - RECONCILE_LOOKBACK_MS if unsynced_since else 0
    if open_before_blind_ms is not None:
        blind_ms = min(blind_ms, open_before_blind_ms)
    return blind_ms


def finished_orders(rest: GteRest, since_ms: int, blind_ms: int) -> Iterator[list[Order]]:
    """Pages of our final orders created since ``since_ms``, newest first, until a page reaches back
    past ``max(since_ms, blind_ms)`` (or is the last one, or ``RECONCILE_PAGES`` were read)."""
    lt = None
    for _ in range(RECONCILE_PAGES):
        page = rest.query_orders(statuses=FINISHED_STATUSES, count=100, lt_order_id=lt)
        yield [o for o in page if o.ctime >= since_ms]
        ids = [int(o.order_id) for o in page if o.order_id.isdigit()]
        if len(page) < 100 or not ids or min(o.ctime for o in page) < max(since_ms, blind_ms):
            break
        lt = str(min(ids))
