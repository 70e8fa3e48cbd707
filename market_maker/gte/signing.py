"""Request signatures for GTE (gte-api.md §2 Signing, §3 Auth).

The single implementation shared by the REST and WebSocket clients. Nothing in
this module logs; ``Credentials`` never shows its secret in a repr or str.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Dict, Mapping, Optional

DEFAULT_EXPIRES_IN_MS = 5000


def wire_value(value: object) -> Optional[str]:
    """The string a parameter travels as; ``None`` means "not sent".

    Strings go as they are, ints as digits, Decimals in plain notation. Floats
    and other types are refused: money must be exact.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not GTE parameter values; send 0 or 1")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"parameter value {value} is not finite")
        return format(value, "f")
    raise TypeError(f"unsupported parameter type {type(value).__name__}")


def wire_params(params: Mapping[str, object]) -> Dict[str, str]:
    """Parameters exactly as sent and signed: strings only, None/empty dropped."""
    out: Dict[str, str] = {}
    for name, value in params.items():
        text = wire_value(value)
        if text is not None and text != "":
            out[name] = text
    return out


def params_string(params: Mapping[str, object]) -> str:
    """``{"a":"1","b":"2"}``: names sorted (ASCII), None/empty dropped, values raw.

    A value that is itself JSON (the ``filter`` parameter) is inserted as is,
    without escaping; no parameters give ``{}``.
    """
    items = sorted(wire_params(params).items(), key=lambda kv: kv[0].encode())
    return "{" + ",".join(f'"{name}":"{value}"' for name, value in items) + "}"


def _hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_signature(secret: str, api_key: str, expires: object, params: Mapping[str, object]) -> str:
    """hex HMAC_SHA256(secret, api_key + expires + params_string(params))."""
    return _hmac_hex(secret, api_key + str(expires) + params_string(params))


def ws_signature(secret: str, expires: object) -> str:
    """hex HMAC_SHA256(secret, "GET/ws" + expires) for ``auth_key_expires``."""
    return _hmac_hex(secret, "GET/ws" + str(expires))


def now_ms() -> int:
    """Wall clock in integer milliseconds (what ``api-expires`` is measured in)."""
    return time.time_ns() // 1_000_000


def _mask(text: str) -> str:
    return (text[:2] + "…") if len(text) > 2 else "…"


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key and its secret; the secret never appears in repr/str."""

    api_key: str
    api_secret: str

    def __post_init__(self) -> None:
        if not self.api_key or not self.api_secret:
            raise ValueError("api_key and api_secret must both be non-empty")

    def __repr__(self) -> str:
        return f"Credentials(api_key={_mask(self.api_key)!r}, api_secret=<hidden>)"

    __str__ = __repr__

    def expires(self, expires_in_ms: int = DEFAULT_EXPIRES_IN_MS, now: Optional[int] = None) -> str:
        """The ``api-expires`` value: now (ms) plus ``expires_in_ms``."""
        return str((now_ms() if now is None else now) + expires_in_ms)

    def signed_headers(self, params: Mapping[str, object], expires_in_ms: int = DEFAULT_EXPIRES_IN_MS,
                       now_ms: Optional[int] = None) -> Dict[str, str]:
        """``api-key``, ``api-expires`` and ``api-signature`` for a REST request with ``params``."""
        expires = self.expires(expires_in_ms, now_ms)
        return {
            "api-key": self.api_key,
            "api-expires": expires,
            "api-signature": rest_signature(self.api_secret, self.api_key, expires, params),
        }

    def ws_auth_args(self, expires_in_ms: int = DEFAULT_EXPIRES_IN_MS,
                     now_ms: Optional[int] = None) -> Dict[str, str]:
        """The ``args`` of a WebSocket ``auth_key_expires`` request."""
        expires = self.expires(expires_in_ms, now_ms)
        return {"api_key": self.api_key, "expires": expires,
                "signature": ws_signature(self.api_secret, expires)}
