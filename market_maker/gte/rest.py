"""GTE REST client (gte-api.md §2): signed requests, retries, domain values out.

Retry policy:
* refused before execution (-10053 rate limit, -10052 expired): waited and resent;
* no answer / HTTP 5xx / invalid envelope: resent for reads and idempotent writes
  (cancel, leverage change). ``order/create`` is never resent: its order is looked
  up by ``client_oid`` at once, and if it is not there (or the lookup fails) the
  create is in doubt (``OrderInDoubt``) until its ``api-expires`` has passed, plus
  ``SETTLE_GRACE_MS`` for the server's processing time and clock skew: the exchange
  never executes a request after its ``api-expires``, so a lookup after that moment
  is final. The caller keeps quoting meanwhile and resolves it then;
* authentication and business errors: never retried.
In read-only (DRY_RUN) mode every POST is refused before anything is sent.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence

import requests

from ..models import BUY, OPEN_STATUSES, SELL, Book, Instrument, Margin, Order, Trade
from . import parse
from .errors import (AuthenticationError, ConnectionLost, DryRunRefused, GteError, OrderInDoubt, RateLimited,
                     RequestExpired, RequestTimeout, ServerError, TransportError, error_from_code)
from .ratelimit import RateLimiter
from .signing import DEFAULT_EXPIRES_IN_MS, Credentials, now_ms, wire_params

log = logging.getLogger("market_maker.gte.rest")

API_PREFIX = "/v1/api/"
FUND_QUERY = "account/fund/query"
PC_ACCOUNT_QUERY = "account/pc/query"
TRANSFER = "account/transfer"
ASSET_QUERY = "pc/asset/query"
CONTRACT_QUERY = "pc/contract/query"
INSTRUMENT_QUERY = "pc/instrument/query"
BOOK_QUERY = "pc/order/book/query"
SETTING_QUERY = "pc/setting/query"
ORDER_CREATE = "pc/order/create"
ORDER_CANCEL = "pc/order/cancel"
ORDER_CANCEL_BATCH = "pc/order/cancel_batch"
ORDER_QUERY = "pc/order/query"
TRADE_QUERY = "pc/trade/query"
LEVERAGE_CHANGE = "pc/leverage/change"
MARGIN_INCREASE = "pc/margin/increase"

ALL_STATUSES = (1, 2, 4, 8, 16, 32)
OPEN_STATUS_LIST = tuple(sorted(OPEN_STATUSES))
MAX_CLIENT_OID = 40
MAX_BATCH_CANCEL = 50
MAX_QUERY_COUNT = 100
MAX_BACKOFF = 5.0
SETTLE_GRACE_MS = 2000  # after api-expires: the server's processing time and clock skew
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_-]{1,13}$")

# Refused by the gate before the exchange did anything: always safe to resend.
_REFUSED_BEFORE_EXECUTION = (RateLimited, RequestExpired)
# Outcome unknown: the exchange may or may not have executed the request.
_OUTCOME_UNKNOWN = (TransportError, ServerError)


@dataclass
class RestStats:
    """Counters for monitoring; ``requests`` and ``errors`` are keyed by endpoint / error class."""

    requests: Counter = field(default_factory=Counter)
    retries: int = 0
    errors: Counter = field(default_factory=Counter)
    lost_responses_resolved: int = 0


# ``json.dumps(value, separators=(",", ":"))`` without building an encoder on every call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def filter_json(**fields: Any) -> Optional[str]:
    """The ``filter`` parameter: compact JSON of the non-None fields, or None."""
    present = {k: v for k, v in fields.items() if v is not None}
    return _compact_json(present) if present else None


def _copy_template(template: requests.PreparedRequest) -> requests.PreparedRequest:
    """``template.copy()``, sharing the template's cookie jar instead of copying it.

    The jar is empty (the session sends no cookies on a prepared request) and requests never
    changes the jar of a request it sends: redirects and auth retries copy the request first.
    Copying it (a new jar, policy and lock) was a third of the cost of the copy.
    """
    request = requests.PreparedRequest()
    request.method = template.method
    request.url = template.url
    request.headers = template.headers.copy()
    request._cookies = template._cookies
    request.body = template.body
    request.hooks = template.hooks
    request._body_position = template._body_position
    return request


def _rows(data: Any) -> List[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        data = data.get("rows", [])
    if not isinstance(data, list):
        raise parse.MalformedRow("expected a list of rows")
    return [row for row in data if isinstance(row, Mapping)]


def _obj(data: Any) -> Mapping[str, Any]:
    if isinstance(data, Mapping) and isinstance(data.get("rows"), list):
        rows = _rows(data)
        return rows[0] if rows else {}
    return data if isinstance(data, Mapping) else {}


def _levels(raw: Any, descending: bool) -> tuple:
    if not isinstance(raw, list):
        raise parse.MalformedRow("order book side is not a list")
    levels = []
    for level in raw:
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise parse.MalformedRow(f"bad order book level {level!r}")
        row = {"price": level[0], "size": level[1]}
        levels.append((parse.dec(row, "price"), parse.integer(row, "size")))
    return tuple(sorted(levels, key=lambda lv: lv[0], reverse=descending))


def _oldest_id(rows: Sequence[Mapping[str, Any]]) -> str:
    ids = [str(row.get("order_id", "")) for row in rows]
    if all(i.isdigit() for i in ids):
        return min(ids, key=int)
    return ids[-1]


class GteRest:
    """Synchronous GTE REST client for one asset/symbol and one API key."""

    def __init__(self, base_url: str, credentials: Optional[Credentials], *, timeout: float = 7,
                 order_id_prefix: str = "mm", asset: str = "BTC", symbol: str = "BTC_USD",
                 rate_limiter: Optional[RateLimiter] = None, max_retries: int = 3,
                 backoff: float = 0.25, read_only: bool = False,
                 session: Optional[requests.Session] = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not _PREFIX_RE.match(order_id_prefix):
            raise ValueError("order_id_prefix must be 1-13 characters of A-Z a-z 0-9 _ -")
        if credentials is not None and not isinstance(credentials, Credentials):
            raise TypeError("credentials must be a Credentials instance or None")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.order_id_prefix = order_id_prefix
        self.asset = asset
        self.symbol = symbol
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.read_only = read_only
        self.session = session if session is not None else requests.Session()
        # Proxy/netrc discovery from the environment costs ~1 ms per request (it rescans os.environ);
        # a market maker talks to one fixed endpoint, so skip it.
        self.session.trust_env = False
        self.rate_limiter = (rate_limiter if rate_limiter is not None
                             else RateLimiter(clock=clock, sleep=sleep))
        self.stats = RestStats()
        self._sleep = sleep
        self._clock = clock
        self._stats_lock = threading.Lock()
        self._templates: Dict[tuple, tuple] = {}  # (method, path) -> (session headers, PreparedRequest)
        self._deadline: Optional[float] = None  # clock() after which nothing is sent nor waited for

    @contextlib.contextmanager
    def deadline(self, at: float) -> Iterator[None]:
        """Within the block no request is sent, waited for or retried past ``at`` (``clock()`` time):
        a bounded exit, however slow the exchange answers."""
        self._deadline = at
        try:
            yield
        finally:
            self._deadline = None

    def _timeout(self, what: str) -> float:
        """The request timeout, cut to what is left before the deadline (RequestTimeout if none is)."""
        if self._deadline is None:
            return self.timeout
        left = self._deadline - self._clock()
        if left <= 0:
            raise self._failed(RequestTimeout(None, f"{what} not sent: the deadline has passed"))
        return min(self.timeout, left)

    def __repr__(self) -> str:
        return (f"GteRest(base_url={self.base_url!r}, credentials={self.credentials!r}, "
                f"symbol={self.symbol!r}, read_only={self.read_only})")

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    def __enter__(self) -> "GteRest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ client_oid

    def new_client_oid(self) -> str:
        """A fresh, unique ``client_oid``: our prefix plus random hex, at most 40 chars."""
        return self.order_id_prefix + uuid.uuid4().hex[: MAX_CLIENT_OID - len(self.order_id_prefix)]

    def is_own(self, order: Order) -> bool:
        """True when ``order`` was sent by a client with our prefix."""
        return bool(order.client_oid) and order.client_oid.startswith(self.order_id_prefix)

    # ------------------------------------------------------------------ transport

    def _count(self, what: str, key: Any = None) -> None:
        with self._stats_lock:
            if what == "request":
                self.stats.requests[key] += 1
            elif what == "error":
                self.stats.errors[key] += 1
            elif what == "retry":
                self.stats.retries += 1
            else:
                self.stats.lost_responses_resolved += 1

    def _delay(self, attempt: int) -> float:
        return min(self.backoff * (2 ** (attempt - 1)), MAX_BACKOFF)

    def _send(self, method: str, endpoint: str, params: Mapping[str, object], signed: bool) -> Any:
        """One attempt: rate limit, sign, send, check the envelope; returns ``data``."""
        path = API_PREFIX + endpoint
        if self.read_only and method != "GET":
            raise self._failed(DryRunRefused(None, f"{method} {path} not sent"))
        if signed and self.credentials is None:
            raise self._failed(AuthenticationError(
                None, f"no API credentials loaded; cannot call {method} {path}"))
        wire = wire_params(params)
        self._timeout(f"{method} {path}")
        self.rate_limiter.acquire(endpoint)
        self._count("request", endpoint)
        headers = self.credentials.signed_headers(wire) if signed and self.credentials else {}
        log.debug("%s %s params=%s", method, path, wire)
        try:
            return self._exchange(method, path, wire, headers)
        except GteError as exc:
            if headers:  # after this moment the exchange will not execute the request
                exc.expires_ms = int(headers["api-expires"])  # type: ignore[attr-defined]
            raise

    def _exchange(self, method: str, path: str, wire: Dict[str, str], headers: Dict[str, str]) -> Any:
        """Send one prepared request and read its envelope."""
        try:
            if method == "GET":
                request = requests.Request(method, self.base_url + path, params=wire,
                                           headers={**self.session.headers, **headers})
                prepared = request.prepare()
            else:
                headers["Content-Type"] = "application/json"
                prepared = _copy_template(self._post_template(method, path))
                prepared.headers.update(headers)
                prepared.prepare_body(_compact_json(wire), None)
            # Prepared directly and sent on the session (its pooled connections): skips the per-call
            # merging of session cookies/auth/hooks we never use, a third of the latency of a requote.
            timeout = self._timeout(f"{method} {path}")
            resp = self.session.send(prepared, timeout=timeout)
        except requests.Timeout:
            failure: GteError = RequestTimeout(None, f"{method} {path} got no answer within {timeout:g}s")
            raise self._failed(failure) from None
        except requests.RequestException as exc:
            failure = ConnectionLost(None, f"{method} {path} failed ({type(exc).__name__})")
            raise self._failed(failure) from None
        return self._data(method, path, resp)

    def _post_template(self, method: str, path: str) -> requests.PreparedRequest:
        """A body-less request for ``path`` with the session headers, prepared once and copied per call.

        Preparing the URL and headers is most of ``Request.prepare()`` and never changes for a POST
        endpoint; the copy then gets the signed headers and the body, in the order a fresh request
        would have them. Rebuilt when the session headers change.
        """
        session_headers = tuple(self.session.headers.items())
        key = (method, path)
        cached = self._templates.get(key)
        if cached is not None and cached[0] == session_headers:
            return cached[1]
        template = requests.Request(method, self.base_url + path, headers=dict(session_headers)).prepare()
        template.headers.pop("Content-Length", None)  # set again by prepare_body, after the signed headers
        self._templates[key] = (session_headers, template)
        return template

    def _failed(self, exc: GteError) -> GteError:
        self._count("error", type(exc).__name__)
        return exc

    def _data(self, method: str, path: str, resp: requests.Response) -> Any:
        status = resp.status_code
        try:
            body = json.loads(resp.content, parse_float=Decimal)
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        log.debug("%s %s -> HTTP %s code %s", method, path, status, code)
        if status >= 500:
            raise self._failed(ServerError(None, f"{method} {path} answered HTTP {status}",
                                           http_status=status))
        if isinstance(code, int) and not isinstance(code, bool):
            if code == 0 and status < 400:
                return body.get("data")
            if code != 0:
                raise self._failed(error_from_code(code, body.get("msg"), body.get("error"),
                                                   http_status=status))
        if status == 429:
            raise self._failed(RateLimited(-10053, f"{method} {path} answered HTTP 429",
                                           http_status=status))
        if status >= 400:
            raise self._failed(GteError(None, f"{method} {path} answered HTTP {status}",
                                        http_status=status))
        raise self._failed(ServerError(None, f"{method} {path} answered an invalid envelope",
                                       http_status=status))

    def _call(self, method: str, endpoint: str, params: Mapping[str, object], *, signed: bool,
              idempotent: bool) -> Any:
        """``_send`` with the retry policy; non-idempotent calls resend only gate refusals."""
        attempt = 0
        while True:
            try:
                return self._send(method, endpoint, params, signed)
            except _REFUSED_BEFORE_EXECUTION + _OUTCOME_UNKNOWN as exc:
                retryable = idempotent or isinstance(exc, _REFUSED_BEFORE_EXECUTION)
                if not retryable or attempt >= self.max_retries:
                    raise
                attempt += 1
                self._retry_wait(endpoint, attempt, exc)

    def _retry_wait(self, endpoint: str, attempt: int, exc: GteError) -> None:
        delay = self._delay(attempt)
        if self._deadline is not None and self._clock() + delay >= self._deadline:
            raise exc  # no time left to retry
        self._count("retry")
        log.warning("retry %d/%d of %s in %.2fs after: %s",
                    attempt, self.max_retries, endpoint, delay, exc)
        self._sleep(delay)

    def _base(self, **extra: object) -> Dict[str, object]:
        params: Dict[str, object] = {"asset": self.asset, "symbol": self.symbol}
        params.update(extra)
        return params

    # ------------------------------------------------------------------ accounts

    def fund_accounts(self, asset: Optional[str] = None) -> Dict[str, Dict[str, Decimal]]:
        """Fund-account balances by asset: ``{"BTC": {"available", "lock", "total"}}``."""
        data = self._call("GET", FUND_QUERY, {"asset": asset}, signed=True, idempotent=True)
        zero = Decimal(0)
        return {parse.text(row, "asset"): {name: parse.dec(row, name, zero)
                                           for name in ("available", "lock", "total")}
                for row in _rows(data)}

    def pc_accounts(self, asset: Optional[str] = None) -> List[Margin]:
        """Contract-account margin per settle currency."""
        data = self._call("GET", PC_ACCOUNT_QUERY, {"asset": asset}, signed=True, idempotent=True)
        return [parse.parse_margin(row) for row in _rows(data)]

    def transfer(self, from_account: int, to_account: int, volume: Decimal,
                 asset: Optional[str] = None) -> None:
        """Move ``volume`` of ``asset`` between accounts (1 fund, 2 contract, 3 spot). Not resent on doubt."""
        _require_decimal("volume", volume, positive=True)
        params = {"asset": asset or self.asset, "from": int(from_account), "to": int(to_account),
                  "volume": volume}
        self._call("POST", TRANSFER, params, signed=True, idempotent=False)

    # ------------------------------------------------------------------ market data

    def assets(self) -> List[str]:
        """Settle assets with perpetual contracts."""
        data = self._call("GET", ASSET_QUERY, {}, signed=False, idempotent=True)
        return [parse.text(row, "asset") for row in _rows(data)]

    def contracts(self, asset: Optional[str] = None) -> Dict[str, int]:
        """``{symbol: price_precision}`` of the asset's contracts."""
        data = self._call("GET", CONTRACT_QUERY, {"asset": asset or self.asset},
                          signed=False, idempotent=True)
        return {parse.text(row, "symbol"): parse.integer(row, "price_precision", 0) for row in _rows(data)}

    def instruments(self, asset: Optional[str] = None) -> List[Instrument]:
        """Every instrument of the asset."""
        data = self._call("GET", INSTRUMENT_QUERY, {"asset": asset or self.asset},
                          signed=False, idempotent=True)
        return [parse.parse_instrument(row) for row in _rows(data)]

    def instrument(self, symbol: Optional[str] = None) -> Instrument:
        """One instrument (default: ours); GteError when the exchange does not list it."""
        wanted = symbol or self.symbol
        data = self._call("GET", INSTRUMENT_QUERY, {"asset": self.asset, "symbol": wanted},
                          signed=False, idempotent=True)
        for row in _rows(data):
            if row.get("symbol") == wanted:
                return parse.parse_instrument(row)
        raise GteError(None, f"instrument {wanted} is not listed for {self.asset}")

    def order_book(self, size: int = 50) -> Book:
        """Top ``size`` (1-50) levels per side, best first."""
        if not 1 <= size <= 50:
            raise ValueError("size must be between 1 and 50")
        data = self._call("GET", BOOK_QUERY, self._base(size=size), signed=False, idempotent=True)
        book = _obj(data)
        return Book(bids=_levels(book.get("bids", []), True), asks=_levels(book.get("asks", []), False))

    def trades(self, count: int = 100) -> List[Trade]:
        """Recent public trades, as the exchange orders them.

        REST trade rows carry no taker side; such trades get ``side=""``.
        """
        _require_count(count)
        data = self._call("GET", TRADE_QUERY, self._base(count=count), signed=False, idempotent=True)
        result = []
        for row in _rows(data):
            if row.get("side") not in (None, ""):
                result.append(parse.parse_trade(row))
            else:
                result.append(Trade(side="", price=parse.dec(row, "price"), qty=parse.integer(row, "qty"),
                                    time=parse.integer(row, "trade_time", 0)))
        return result

    def setting(self) -> Dict[str, Any]:
        """Leverage settings as Decimals and ``margin_mode`` as int (1 cross, 2 isolated)."""
        data = _obj(self._call("GET", SETTING_QUERY, self._base(), signed=True, idempotent=True))
        out: Dict[str, Any] = {}
        for name, value in data.items():
            if name == "margin_mode":
                out[name] = parse.integer(data, name)
            elif name.endswith("leverage") and value not in (None, ""):
                out[name] = parse.dec(data, name)
        return out

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

    # ------------------------------------------------------------------ leverage and margin

    def change_leverage(self, leverage: Decimal, mode: int, long_flag: Optional[int] = None) -> None:
        """Set leverage (two decimals at most) and margin mode (1 cross, 2 isolated)."""
        _require_decimal("leverage", leverage, positive=True)
        if leverage != leverage.quantize(Decimal("0.01")):
            raise ValueError("leverage takes at most two decimals")
        if mode not in (1, 2):
            raise ValueError("mode must be 1 (cross) or 2 (isolated)")
        if long_flag not in (None, 0, 1):
            raise ValueError("long_flag must be None, 0 (short) or 1 (long)")
        params = self._base(mode=mode, long_flag=long_flag, leverage=leverage)
        self._call("POST", LEVERAGE_CHANGE, params, signed=True, idempotent=True)

    def increase_margin(self, long_flag: int, increase_flag: int, margin: Decimal) -> None:
        """Add (increase_flag 1) or remove (0) isolated margin of one leg. Not resent on doubt."""
        if long_flag not in (0, 1) or increase_flag not in (0, 1):
            raise ValueError("long_flag and increase_flag must be 0 or 1")
        _require_decimal("margin", margin, positive=True)
        params = self._base(long_flag=long_flag, increase_flag=increase_flag, margin=margin)
        self._call("POST", MARGIN_INCREASE, params, signed=True, idempotent=False)


def _require_decimal(name: str, value: object, positive: bool = False) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive")


def _require_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_QUERY_COUNT:
        raise ValueError(f"count must be an int between 1 and {MAX_QUERY_COUNT}")
