"""API keys and request signatures (gte-api.md §2 Signing, §3 Auth)."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from collections.abc import Mapping

from .errors import EXPIRED, MISSING, UNKNOWN_KEY, BAD_SIGNATURE, WRONG_TYPE, ApiError

HEADERS = ("api-key", "api-expires", "api-signature")


def params_string(params: Mapping[str, str | None]) -> str:
    """Canonical string: names sorted (ASCII), null/empty dropped, values raw, ``{}`` if none."""
    items = [(k, v) for k, v in params.items() if v is not None and v != ""]
    items.sort(key=lambda kv: kv[0].encode())
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in items) + "}"


def hmac_hex(secret: str, message: str) -> str:
    """hex(HMAC_SHA256(key=secret, msg=message))."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def rest_signature(secret: str, api_key: str, expires: str, params: Mapping[str, str | None]) -> str:
    """Signature of a REST request."""
    return hmac_hex(secret, api_key + expires + params_string(params))


def ws_signature(secret: str, expires: str) -> str:
    """Signature of the WebSocket ``auth_key_expires`` request."""
    return hmac_hex(secret, "GET/ws" + expires)


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace"))


def generate_credentials() -> tuple[str, str]:
    """A fresh (api_key, api_secret) pair."""
    return secrets.token_hex(12), secrets.token_hex(24)


@dataclass(frozen=True)
class ApiKey:
    """One key; the secret never appears in the repr."""
    key: str
    secret: str = field(repr=False)
    account_id: int


class KeyStore:
    """Maps API keys to secrets and accounts and checks signatures."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    def __repr__(self) -> str:
        return f"KeyStore({len(self._keys)} keys)"

    def add(self, key: str, secret: str, account_id: int) -> None:
        """Register a key (replacing any previous one with the same name)."""
        self._keys[key] = ApiKey(key, secret, account_id)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def _lookup(self, key: str, expires: str, now_ms: int) -> ApiKey:
        found = self._keys.get(key)
        if found is None:
            raise ApiError(UNKNOWN_KEY, "api-key")
        if not (expires.isascii() and expires.isdigit()):
            raise ApiError(WRONG_TYPE, "api-expires")
        if int(expires) < now_ms:
            raise ApiError(EXPIRED, "api-expires")
        return found

    def verify_rest(self, headers: Mapping[str, str], params: Mapping[str, str | None],
                    now_ms: int) -> ApiKey:
        """Check the three headers against ``params``; return the key or raise ``ApiError``."""
        for name in HEADERS:
            if not headers.get(name):
                raise ApiError(MISSING, name)
        found = self._lookup(headers["api-key"], headers["api-expires"], now_ms)
        expected = rest_signature(found.secret, found.key, headers["api-expires"], params)
        if not _same(expected, headers["api-signature"]):
            raise ApiError(BAD_SIGNATURE, "api-signature")
        return found

    def verify_ws(self, args: object, now_ms: int) -> ApiKey:
        """Check an ``auth_key_expires`` args object; return the key or raise ``ApiError``."""
        if not isinstance(args, dict):
            raise ApiError(MISSING, "args")
        for name in ("api_key", "expires", "signature"):
            if args.get(name) in (None, ""):
                raise ApiError(MISSING, name)
            if not isinstance(args[name], str):
                raise ApiError(WRONG_TYPE, name)
        found = self._lookup(args["api_key"], args["expires"], now_ms)
        if not _same(ws_signature(found.secret, args["expires"]), args["signature"]):
            raise ApiError(BAD_SIGNATURE, "signature")
        return found
