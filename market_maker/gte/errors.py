"""Typed GTE errors that keep the exchange's code, pattern, parameter and message.

``error_from_code`` maps an error envelope (REST) or a negative WebSocket ack
status to the right class. Messages never contain credentials or signatures.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type


class GteError(Exception):
    """Base of every error raised by the GTE clients."""

    description = "GTE request failed"

    def __init__(self, code: Optional[int] = None, message: Optional[str] = None,
                 pattern: Optional[str] = None, param: Optional[str] = None,
                 *, http_status: Optional[int] = None) -> None:
        super().__init__(code, message, pattern, param)
        self.code = code
        self.message = message or ""
        self.pattern = pattern
        self.param = param
        self.http_status = http_status

    def __str__(self) -> str:
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.pattern:
            details.append(self.pattern)
        if self.http_status is not None and self.http_status != 200:
            details.append(f"HTTP {self.http_status}")
        if self.param:
            details.append(f"parameter '{self.param}'")
        text = self.description
        if self.message:
            text += f": {self.message}"
        if details:
            text += f" ({', '.join(details)})"
        return text + "."

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class AuthenticationError(GteError):
    """Bad signature, unknown key, permission denied, or no credentials loaded. Never retried."""

    description = "Authentication with GTE failed"


class RequestExpired(GteError):
    """``api-expires`` was in the past when the exchange received the request (-10052)."""

    description = "The request expired before GTE received it"


class RateLimited(GteError):
    """Too many requests to one endpoint (-10053)."""

    description = "GTE rate limit exceeded"


class BadParameter(GteError):
    """A parameter is missing, of the wrong type, or invalid (-10011/-10012/-10013)."""

    description = "GTE rejected a request parameter"


class BusinessError(GteError):
    """Base of the exchange's refusals of a well-formed request (-2000x)."""

    description = "GTE refused the request"


class InsufficientMargin(BusinessError):
    description = "Insufficient margin for the order"


class OrderNotFound(BusinessError):
    description = "Order not found or no longer open"


class PositionExceeded(BusinessError):
    description = "The order would close more than the closable position"


class ServerError(GteError):
    """HTTP 5xx or a response that is not a valid envelope; outcome of a write is unknown."""

    description = "GTE server error"


class TransportError(GteError):
    """No answer was received; for a write the outcome is unknown.

    ``client_oid`` is set when an ``order/create`` could not be resolved.
    """

    description = "The request to GTE got no answer"

    def __init__(self, code: Optional[int] = None, message: Optional[str] = None,
                 pattern: Optional[str] = None, param: Optional[str] = None,
                 *, http_status: Optional[int] = None) -> None:
        super().__init__(code, message, pattern, param, http_status=http_status)
        self.outcome_unknown = True
        self.client_oid: Optional[str] = None


class OrderInDoubt(GteError):
    """An ``order/create`` got no usable answer and its order was not found (or could not be
    looked up): it may still execute until ``settles_at_ms``, when a lookup by ``client_oid``
    tells for certain. The caller must not send it again before then."""

    description = "The outcome of an order creation is not known yet"

    def __init__(self, client_oid: str, settles_at_ms: int, message: Optional[str] = None) -> None:
        super().__init__(None, message)
        self.outcome_unknown = True
        self.client_oid = client_oid
        self.settles_at_ms = settles_at_ms


class RequestTimeout(TransportError):
    description = "The request to GTE timed out"


class ConnectionLost(TransportError):
    description = "The connection to GTE failed or was dropped"


class DryRunRefused(GteError):
    """A write was attempted by a read-only (DRY_RUN) client; nothing was sent."""

    description = "Refused to send in DRY_RUN (read-only) mode"


_BY_CODE: Dict[int, Type[GteError]] = {
    -10011: BadParameter,
    -10012: BadParameter,
    -10013: BadParameter,
    -10051: AuthenticationError,
    -10052: RequestExpired,
    -10053: RateLimited,
    -10054: AuthenticationError,
    -10055: AuthenticationError,
    -20001: InsufficientMargin,
    -20002: OrderNotFound,
    -20003: PositionExceeded,
}

_DEFAULT_MESSAGES: Dict[int, str] = {
    -10011: "required parameter missing",
    -10012: "parameter of wrong type",
    -10013: "parameter value invalid",
    -10051: "bad request signature",
    -10052: "request expired",
    -10053: "too many requests",
    -10054: "API key does not exist",
    -10055: "permission denied",
    -20001: "insufficient margin",
    -20002: "order not found or not open",
    -20003: "would exceed position",
}


def error_from_code(code: Any, msg: Optional[str] = None,
                    error_body: Optional[Mapping[str, Any]] = None,
                    *, http_status: Optional[int] = None) -> GteError:
    """The typed error for an exchange code (int or numeric string) and its ``error`` body."""
    try:
        number: Optional[int] = int(code)
    except (TypeError, ValueError):
        number = None
    pattern = param = None
    if isinstance(error_body, Mapping):
        pattern = error_body.get("patternName")
        data = error_body.get("data")
        if isinstance(data, Mapping):
            param = data.get("paramName")
    cls = _BY_CODE.get(number, GteError) if number is not None else GteError
    message = msg or (_DEFAULT_MESSAGES.get(number, "") if number is not None else "")
    return cls(number, message, None if pattern is None else str(pattern),
               None if param is None else str(param), http_status=http_status)
