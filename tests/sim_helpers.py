"""Raw-protocol helpers for the simulator tests: plain ``requests`` and ``websocket-client``.

Signatures are computed here straight from gte-api.md §2/§3, independently of the
simulator's own code, so that a shared mistake cannot hide.
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from collections.abc import Callable

import requests
import websocket

_ids = itertools.count(1)


def sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def canonical(params: dict[str, str]) -> str:
    kept = sorted((k, v) for k, v in params.items() if v not in (None, ""))
    return "{" + ",".join('"%s":"%s"' % kv for kv in kept) + "}"


def expires_ms(delta_ms: int = 5000) -> str:
    return str(int(time.time() * 1000) + delta_ms)


class Rest:
    """A signed/unsigned REST caller for one key."""

    def __init__(self, base_url: str, key: str | None = None, secret: str | None = None) -> None:
        self.base = base_url
        self.key, self.secret = key, secret
        self.http = requests.Session()

    def headers(self, params: dict[str, str], expires: str | None = None,
                secret: str | None = None, key: str | None = None) -> dict[str, str]:
        key = key or self.key
        expires = expires or expires_ms()
        sig = sign(secret or self.secret, key + expires + canonical(params))
        return {"api-key": key, "api-expires": expires, "api-signature": sig}

    def get(self, path: str, params: dict[str, str] | None = None, signed: bool = True,
            headers: dict[str, str] | None = None, timeout: float = 5) -> dict:
        params = params or {}
        if headers is None and signed:
            headers = self.headers(params)
        r = self.http.get(self.base + path, params=params, headers=headers or {}, timeout=timeout)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def post(self, path: str, body: dict[str, Any] | None = None, signed: bool = True,
             headers: dict[str, str] | None = None, timeout: float = 5) -> dict:
        body = body or {}
        if headers is None and signed:
            headers = self.headers(body)
        r = self.http.post(self.base + path, data=json.dumps(body), headers=headers or {},
                           timeout=timeout)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()

    def order(self, side: int, price: str, qty: int, close_flag: int = 0, **extra: str) -> dict:
        body = {"asset": "BTC", "symbol": "BTC_USD", "side": str(side), "close_flag": str(close_flag),
                "price": price, "qty": str(qty), "order_type": "1", **extra}
        return self.post("/v1/api/pc/order/create", body)

    def orders(self, **params: str) -> list[dict]:
        reply = self.get("/v1/api/pc/order/query", {"asset": "BTC", **params})
        assert reply["code"] == 0, reply
        return reply["data"]["rows"]


def new_account(sim: Any, balance: str = "10") -> Rest:
    """A fresh account (own rate-limit buckets) on a running simulator."""
    n = next(_ids)
    key, secret = f"k{n}-{time.time_ns()}", f"s{n}-secret-{time.time_ns()}"
    sim.add_account(key, secret, balance)
    return Rest(sim.base_url, key, secret)


def error_param(reply: dict) -> tuple[int, str | None]:
    return reply["code"], (reply.get("error") or {}).get("data", {}).get("paramName")


class Ws:
    """A raw WebSocket connection with JSON helpers."""

    def __init__(self, url: str, timeout: float = 5) -> None:
        self.conn = websocket.create_connection(url, timeout=timeout)

    def send(self, obj: Any) -> None:
        self.conn.send(obj if isinstance(obj, str) else json.dumps(obj))

    def recv(self, timeout: float = 5) -> Any:
        self.conn.settimeout(timeout)
        return json.loads(self.conn.recv())

    def until(self, pred: Callable[[Any], bool], timeout: float = 5) -> Any:
        """Read until a message matches ``pred`` (others are skipped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message")
            msg = self.recv(left)
            if pred(msg):
                return msg

    def request(self, op: str, **args: Any) -> dict:
        """Send a request and return its ack (skipping pushes)."""
        self.send({"op": op, "args": args})
        return self.until(lambda m: "status" in m)

    def auth(self, key: str, secret: str, expires: str | None = None) -> dict:
        expires = expires or expires_ms()
        return self.request("auth_key_expires", api_key=key, expires=expires,
                            signature=sign(secret, "GET/ws" + expires))

    def sub(self, table: str, symbol: str | None = "BTC_USD") -> dict:
        args = {"instrument_type": "pc", "table": table, "settle_currency": "BTC"}
        if symbol:
            args["symbol"] = symbol
        return self.request("sub", **args)

    def table(self, table: str, action: str | None = None, timeout: float = 5,
              pred: Callable[[dict], bool] = lambda m: True) -> dict:
        return self.until(lambda m: m.get("table") == table and (action is None or m["action"] == action)
                          and pred(m), timeout)

    def wait_closed(self, timeout: float) -> bool:
        """True if the server closes the connection within ``timeout`` (messages are skipped)."""
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end:
                self.conn.settimeout(max(0.01, end - time.monotonic()))
                if self.conn.recv() == "":
                    return True
        except websocket.WebSocketTimeoutException:
            return False
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return True
        return False

    def close(self) -> None:
        self.conn.close()
