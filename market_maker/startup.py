"""Faults at start: which ones to wait out, which ones end the run.

A bot started before the exchange is reachable -- nothing listening yet, a 503
while it deploys, partials slow to come, a burst of 5xx answers -- waits for it
with the WebSocket client's reconnect backoff. One the exchange refuses (the
key, the symbol, a setting) stops at once with one line and exit status 1.
"""
from __future__ import annotations

import random
import socket
import ssl
from typing import Any, Optional, Tuple

import websocket

from .gte import errors
from .gte.parse import MalformedRow

# HTTP statuses of a refusal that passes by itself (besides every 5xx)
PASSING_STATUSES = frozenset({408, 425, 429})
_PASSING_ERRORS = (errors.TransportError, errors.ServerError, errors.RateLimited, errors.RequestExpired)


def _passes(status: Optional[int]) -> bool:
    return status is None or status >= 500 or status in PASSING_STATUSES


def transient_reason(exc: BaseException) -> Optional[str]:
    """Why the exchange cannot be used yet, when ``exc`` is a fault that may pass by itself; else None."""
    if isinstance(exc, errors.GteError):
        if isinstance(exc, _PASSING_ERRORS):
            return str(exc).rstrip(".")
        # code None: no answer of the exchange's own (partials that do not come, a stream broken while
        # subscribing, a bare HTTP status); a negative code is the exchange's word: refused
        if type(exc) is errors.GteError and exc.code is None and _passes(exc.http_status):
            return str(exc).rstrip(".")
        return None
    if isinstance(exc, websocket.WebSocketBadStatusException):
        if _passes(exc.status_code):
            return f"the WebSocket handshake was answered with HTTP {exc.status_code}"
        return None
    if isinstance(exc, ssl.SSLCertVerificationError):
        return None
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.gaierror, websocket.WebSocketAddressException)):
        return f"the host name does not resolve ({exc})"
    if isinstance(exc, (TimeoutError, websocket.WebSocketTimeoutException)):
        return "no answer (timed out)"
    if isinstance(exc, (OSError, websocket.WebSocketException)):
        detail = getattr(exc, "strerror", None) or str(exc)
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, MalformedRow):
        return f"malformed answer ({exc})"
    return None


def is_exchange_fault(exc: BaseException) -> bool:
    """Raised by the exchange or the connection to it (rather than by a bug of ours)."""
    return isinstance(exc, (errors.GteError, OSError, websocket.WebSocketException, MalformedRow))


def refusal(exc: BaseException, settings: Any) -> str:
    """The one line that says why the exchange will not let the bot start."""
    if isinstance(exc, errors.AuthenticationError):
        return f"Authentication failed: {exc}"
    if isinstance(exc, errors.BadParameter) and " refused by GTE" in exc.message:  # a subscription refused
        return (f"The exchange refused to start: {exc} Is {settings.SYMBOL} listed for "
                f"{settings.SETTLECURRENCY}? (SYMBOL, SETTLECURRENCY)")
    if isinstance(exc, errors.GteError):
        return f"The exchange refused to start: {exc}"
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return (f"The exchange refused the WebSocket connection with HTTP {exc.status_code} "
                f"{exc.status_message or ''}".rstrip() + "; check WS_URL")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"The exchange's TLS certificate was refused: {exc.verify_message or exc}"
    return f"Cannot start: {type(exc).__name__}: {exc}"


def backoff_delay(attempt: int, backoff: Tuple[float, float]) -> float:
    """The WebSocket client's reconnect policy: doubling from ``backoff[0]`` up to ``backoff[1]``, jittered."""
    low, high = backoff
    return min(high, low * (2 ** min(attempt, 30))) * random.uniform(0.5, 1.0)
