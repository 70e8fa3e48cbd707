"""The GTE REST client's order endpoints: create (never twice), cancel, query.

``order/create`` is never resent: when it gets no usable answer its order is
looked up by ``client_oid`` at once, and if it is not there (or the lookup fails)
the create is in doubt (``OrderInDoubt``) until its ``api-expires`` has passed,
plus ``SETTLE_GRACE_MS`` for the server's processing time and clock skew: the
exchange never executes a request after its ``api-expires``, so a lookup after
that moment is final. The caller keeps quoting meanwhile and resolves it then.
Refusals before execution (rate limit, expired) are resent as for any request.
"""
from __future__ import annotations

import logging
import re
import uuid
from decimal import Decimal
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

from ..models import BUY, OPEN_STATUSES, SELL, Order
from . import parse
from .errors import GteError, OrderInDoubt, ServerError
from .rest_transport import (_OUTCOME_UNKNOWN, _REFUSED_BEFORE_EXECUTION, MAX_QUERY_COUNT, RestTransport,
                             _obj, _require_count, _require_decimal, _rows, filter_json)
from .signing import DEFAULT_EXPIRES_IN_MS, Credentials, now_ms

log = logging.getLogger("market_maker.gte.rest")  # the client's logger, whichever of its modules logs

ORDER_CREATE = "pc/order/create"
ORDER_CANCEL = "pc/order/cancel"
ORDER_CANCEL_BATCH = "pc/order/cancel_batch"
ORDER_QUERY = "pc/order/query"

ALL_STATUSES = (1, 2, 4, 8, 16, 32)
OPEN_STATUS_LIST = tuple(sorted(OPEN_STATUSES))
MAX_CLIENT_OID = 40
MAX_BATCH_CANCEL = 50
SETTLE_GRACE_MS = 2000  # after api-expires: the server's processing time and clock skew
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,13}$")


def _oldest_id(rows: Sequence[Mapping[str, Any]]) -> str:
    ids = [str(row.get("order_id", "")) for row in rows]
    if all(i.isdigit() for i in ids):
        return min(ids, key=int)
    return ids[-1]


class OrderEndpoints(RestTransport):
    """Our orders over REST: ``client_oid`` naming, create, cancels and order queries."""

    def __init__(self, base_url: str, credentials: Optional[Credentials], *, order_id_prefix: str,
                 **transport: Any) -> None:
        if not _PREFIX_RE.match(order_id_prefix):
            raise ValueError("order_id_prefix must be 1-13 characters of A-Z a-z 0-9 _ -")
        super().__init__(base_url, credentials, **transport)
        self.order_id_prefix = order_id_prefix

    # ------------------------------------------------------------------ client_oid

    def new_client_oid(self) -> str:
        """A fresh, unique ``client_oid``: our prefix plus random hex, at most 40 chars."""
        return self.order_id_prefix + uuid.uuid4().hex[: MAX_CLIENT_OID - len(self.order_id_prefix)]

    def is_own(self, order: Order) -> bool:
        """True when ``order`` was sent by a client with our prefix."""
        return bool(order.client_oid) and order.client_oid.startswith(self.order_id_prefix)

    # ------------------------------------------------------------------ orders

    def create_order(self, side: str, price: Decimal, qty: int, close_flag: int = 0,
                     client_oid: Optional[str] = None) -> Order:
        """Place a limit order; never places it twice.

        A create refused before execution (rate limit, expired) is resent. One with
        no usable answer (timeout, lost connection, 5xx) is looked up by
        ``client_oid`` at once; if it is not found, ``OrderInDoubt`` is raised: it
        may still execute until its ``api-expires`` (see the module docstring).
        """
        if side not in (BUY, SELL):
            raise ValueError(f"side must be {BUY!r} or {SELL!r}")
        _require_decimal("price", price, positive=True)
        if isinstance(qty, bool) or not isinstance(qty, int) or qty <= 0:
            raise ValueError("qty must be a positive int (contracts)")
        if close_flag not in (0, 1):
            raise ValueError("close_flag must be 0 (open) or 1 (close)")
        oid = client_oid or self.new_client_oid()
        if len(oid) > MAX_CLIENT_OID:
            raise ValueError("client_oid is longer than 40 characters")
        params = self._base(client_oid=oid, side="1" if side == BUY else "0", close_flag=close_flag,
                            price=price, qty=qty, order_type="1")
        attempt = 0
        while True:
            try:
                data = self._send("POST", ORDER_CREATE, params, signed=True)
                break
            except _OUTCOME_UNKNOWN as exc:
                return self._resolve_lost_create(oid, exc)
            except _REFUSED_BEFORE_EXECUTION as exc:
                if attempt >= self.max_retries:
                    raise
                attempt += 1
                self._retry_wait(ORDER_CREATE, attempt, exc)
        try:
            order_id = parse.text(_obj(data), "order_id")
        except parse.MalformedRow as exc:  # executed, but the answer does not say as what
            return self._resolve_lost_create(oid, ServerError(None, f"order/create answer unusable ({exc})"))
        return Order(order_id=order_id, client_oid=oid, side=side, close_flag=close_flag, price=price, qty=qty,
                     filled_qty=0, status=1)

    def _resolve_lost_create(self, oid: str, exc: GteError) -> Order:
        """Look the order up now; raise ``OrderInDoubt`` if it is not there (yet) or the lookup fails."""
        expires = getattr(exc, "expires_ms", None)
        if expires is None:  # the latest api-expires it could have carried
            expires = now_ms() + DEFAULT_EXPIRES_IN_MS
        settles_at = expires + SETTLE_GRACE_MS
        log.warning("order/create %s: no usable answer (%s); looking it up", oid, exc)
        try:
            found = self.find_order_by_client_oid(oid)
        except GteError as lookup:
            log.warning("order %s: lookup failed (%s); in doubt until it settles", oid, lookup)
            raise OrderInDoubt(oid, settles_at, f"order {oid}: {exc}; lookup failed") from None
        if found is None:
            raise OrderInDoubt(oid, settles_at, f"order {oid}: {exc}; not found yet")
        self._count("resolved")
        log.info("order %s was placed despite the lost answer (order_id %s)", oid, found.order_id)
        return found

    def cancel_order(self, order_id: str) -> str:
        """Cancel one order; returns its id. OrderNotFound when it is not open (maybe already gone)."""
        data = self._call("POST", ORDER_CANCEL, self._base(id=str(order_id)), signed=True, idempotent=True)
        return parse.text(_obj(data), "order_id", str(order_id))

    def cancel_batch(self, order_ids: Iterable[str]) -> None:
        """Cancel up to 50 orders in one call (the endpoint allows one call per 10 s).

        Never resent (a resend would wait 10 s): any failure is raised and the
        caller may fall back to single cancels. More than 50 ids is a ValueError:
        the caller decides what waits, not a 10-s sleep in here.
        """
        ids = [str(i) for i in order_ids]
        if not ids:
            return
        if len(ids) > MAX_BATCH_CANCEL:
            raise ValueError(f"cancel_batch takes at most {MAX_BATCH_CANCEL} order ids, got {len(ids)}")
        params = self._base(filter=filter_json(order_id=ids))
        self._send("POST", ORDER_CANCEL_BATCH, params, signed=True)

    def query_orders(self, statuses: Optional[Iterable[int]] = None, order_id: Optional[str] = None,
                     count: int = 100, lt_order_id: Optional[str] = None,
                     gt_order_id: Optional[str] = None) -> List[Order]:
        """One page of ``order/query`` (``gt_order_id`` wins over ``lt_order_id``); rows that
        cannot be parsed are left out (logged and counted)."""
        return self._orders(self._query_rows(statuses, order_id, count, lt_order_id, gt_order_id))

    def _orders(self, rows: Iterable[Mapping[str, Any]]) -> List[Order]:
        """Parse order rows, leaving out (logged, counted) those we cannot use: one junk row must
        not hide the others, nor stop a cancel-all."""
        orders = []
        for row in rows:
            try:
                orders.append(parse.parse_order(row))
            except parse.MalformedRow as exc:
                self._count("error", "MalformedRow")
                log.warning("order/query: skipping a row we cannot use (%s)", exc.message)
        return orders

    def _query_rows(self, statuses: Optional[Iterable[int]], order_id: Optional[str], count: int,
                    lt_order_id: Optional[str], gt_order_id: Optional[str]) -> List[Mapping[str, Any]]:
        _require_count(count)
        status_list = None if statuses is None else [str(int(s)) for s in statuses]
        params = self._base(filter=filter_json(status=status_list,
                                               order_id=None if order_id is None else str(order_id)),
                            count=count, lt_order_id=lt_order_id, gt_order_id=gt_order_id)
        return _rows(self._call("GET", ORDER_QUERY, params, signed=True, idempotent=True))

    def _pages(self, statuses: Sequence[int], max_pages: int) -> Iterator[List[Mapping[str, Any]]]:
        """Yield pages of rows newest first, following ``lt_order_id``."""
        lt: Optional[str] = None
        for _ in range(max_pages):
            rows = self._query_rows(statuses, None, MAX_QUERY_COUNT, lt, None)
            yield rows
            if len(rows) < MAX_QUERY_COUNT:
                return
            oldest = _oldest_id(rows)
            if lt is not None and oldest.isdigit() and lt.isdigit() and int(oldest) >= int(lt):
                raise ServerError(None, "order/query paging did not move past lt_order_id")
            lt = oldest

    def open_orders(self, max_pages: int = 50) -> List[Order]:
        """Every open order (status 1, 2, 4, 16) of our symbol, whoever placed it."""
        found: Dict[str, Order] = {}
        pages = 0
        for rows in self._pages(OPEN_STATUS_LIST, max_pages):
            pages += 1
            for order in self._orders(rows):
                found.setdefault(order.order_id, order)
            if len(rows) == MAX_QUERY_COUNT and pages == max_pages:
                raise GteError(None, f"more than {max_pages * MAX_QUERY_COUNT} open orders; list incomplete")
        return list(found.values())

    def find_order_by_client_oid(self, client_oid: str, max_pages: int = 3) -> Optional[Order]:
        """Our order with this ``client_oid`` among the newest ``max_pages`` pages of all statuses."""
        for rows in self._pages(ALL_STATUSES, max_pages):
            matches = self._orders(row for row in rows if row.get("client_oid") == client_oid)
            if matches:
                return matches[0]
        return None
