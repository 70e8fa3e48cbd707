"""The GTE REST client's transport (gte-api.md §2): sign, send, read the envelope, retry.

Retry policy (``_call``):
* refused before execution (-10053 rate limit, -10052 expired): waited and resent;
* no answer / HTTP 5xx / invalid envelope: resent for reads and idempotent writes
  (cancel, leverage change); other writes are not resent (``order/create`` is
  looked up instead: see ``rest_orders``);
* authentication and business errors: never retried.
Within ``deadline(at)`` nothing is sent, waited for or retried past ``at``.
In read-only (DRY_RUN) mode every POST is refused before anything is sent.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import requests

from . import parse
from .errors import (AuthenticationError, ConnectionLost, DryRunRefused, GteError, RateLimited,
                     RequestExpired, RequestTimeout, ServerError, TransportError, error_from_code)
from .ratelimit import RateLimiter
from .signing import Credentials, wire_params

log = logging.getLogger("market_maker.gte.rest")  # the client's logger, whichever of its modules logs

API_PREFIX = "/v1/api/"
MAX_QUERY_COUNT = 100
MAX_BACKOFF = 5.0

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


class RestTransport:
    """Signed requests to one GTE REST endpoint with the retry policy; the endpoints build on it."""

    def __init__(self, base_url: str, credentials: Optional[Credentials], *, timeout: float, asset: str,
                 symbol: str, rate_limiter: Optional[RateLimiter], max_retries: int, backoff: float,
                 read_only: bool, session: Optional[requests.Session], sleep: Callable[[float], None],
                 clock: Callable[[], float]) -> None:
        if credentials is not None and not isinstance(credentials, Credentials):
            raise TypeError("credentials must be a Credentials instance or None")
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
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

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

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


def _require_decimal(name: str, value: object, positive: bool = False) -> None:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise TypeError(f"{name} must be a finite Decimal")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive")


def _require_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_QUERY_COUNT:
        raise ValueError(f"count must be an int between 1 and {MAX_QUERY_COUNT}")
