"""Parsing and validation of wire parameters (all values arrive as strings)."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from collections.abc import Iterable, Mapping

from .errors import BAD_VALUE, MISSING, WRONG_TYPE, ApiError

_INT = re.compile(r"-?[0-9]+")
_DEC = re.compile(r"-?[0-9]+(\.[0-9]+)?")
STATUSES = frozenset({1, 2, 4, 8, 16, 32})
CANDLE_INTERVALS = frozenset({1, 5, 15, 30, 60, 120, 240, 360, 720, 1440, 10080, 43200})
MAX_CLIENT_OID = 40
MAX_BATCH_IDS = 50
FORM = "application/x-www-form-urlencoded"


def _no_repeats(pairs: Iterable[tuple[str, str]], where: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            raise ApiError(BAD_VALUE, key, f"{key} given more than once in the {where}")
        params[key] = value
    return params


def parse_body(body: bytes) -> dict[str, str]:
    """A JSON POST body: an object whose values are strings (empty body = no params)."""
    if not body.strip():
        return {}
    try:
        obj = json.loads(body, object_pairs_hook=lambda pairs: _no_repeats(pairs, "body"))
    except (ValueError, RecursionError):
        raise ApiError(WRONG_TYPE, "body", "body is not a JSON object") from None
    if not isinstance(obj, dict):
        raise ApiError(WRONG_TYPE, "body", "body is not a JSON object")
    for key, value in obj.items():
        if value is not None and not isinstance(value, str):
            raise ApiError(WRONG_TYPE, key, f"{key} must be a string")
    return {k: v for k, v in obj.items() if v is not None}


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` POST body."""
    if not body.strip():
        return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(WRONG_TYPE, "body", "body is not a valid form") from None
    return _no_repeats(pairs, "body")


def request_params(query: Iterable[tuple[str, str]], content_type: str = "",
                   body: bytes = b"") -> dict[str, str]:
    """The parameters of one request: its query string plus (POST) a form or JSON body.

    GTE's own sample client sends POST parameters in the query string with an empty
    body; ours sends a JSON body; a form body is accepted too. Parameters may be split
    between the query string and the body, and are signed as one set; a name that
    appears twice (in one place or in both) is refused with -10013 naming it, since
    the signature could not tell which value is meant.
    """
    params = _no_repeats(query, "query string")
    in_body = parse_form(body) if content_type == FORM else parse_body(body)
    for key, value in in_body.items():
        if key in params:
            raise ApiError(BAD_VALUE, key, f"{key} given both in the query string and in the body")
        params[key] = value
    return params


def decimals_of(value: Decimal) -> int:
    """Number of decimals written in ``value`` (as parsed)."""
    return max(0, -value.as_tuple().exponent)


class Params:
    """Typed accessors over string parameters; each raises ``ApiError`` naming the parameter."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = {k: v for k, v in raw.items() if v is not None and v != ""}

    def text(self, name: str, required: bool = True, max_len: int | None = None) -> str | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise ApiError(MISSING, name)
            return None
        if max_len is not None and len(value) > max_len:
            raise ApiError(BAD_VALUE, name, f"{name} longer than {max_len}")
        return value

    def integer(self, name: str, required: bool = True, lo: int | None = None, hi: int | None = None,
                choices: Iterable[int] | None = None, default: int | None = None) -> int | None:
        value = self.text(name, required)
        if value is None:
            return default
        if not _INT.fullmatch(value) or len(value) > 30:
            raise ApiError(WRONG_TYPE, name, f"{name} must be an integer")
        number = int(value)
        if (lo is not None and number < lo) or (hi is not None and number > hi) or \
                (choices is not None and number not in set(choices)):
            raise ApiError(BAD_VALUE, name, f"{name} out of range")
        return number

    def flag(self, name: str, required: bool = True, choices: Iterable[int] = (0, 1)) -> int | None:
        return self.integer(name, required, choices=choices)

    def decimal(self, name: str, required: bool = True, positive: bool = True,
                max_decimals: int | None = None) -> Decimal | None:
        value = self.text(name, required)
        if value is None:
            return None
        if not _DEC.fullmatch(value) or len(value) > 40:
            raise ApiError(WRONG_TYPE, name, f"{name} must be a decimal number")
        number = Decimal(value)
        if positive and number <= 0:
            raise ApiError(BAD_VALUE, name, f"{name} must be > 0")
        if max_decimals is not None and decimals_of(number) > max_decimals:
            raise ApiError(BAD_VALUE, name, f"{name} has more than {max_decimals} decimals")
        return number

    def json_object(self, name: str, required: bool = True) -> dict[str, Any] | None:
        value = self.text(name, required)
        if value is None:
            return None
        try:
            obj = json.loads(value)
        except (ValueError, RecursionError):
            raise ApiError(WRONG_TYPE, name, f"{name} is not a JSON object") from None
        if not isinstance(obj, dict):
            raise ApiError(WRONG_TYPE, name, f"{name} is not a JSON object")
        return obj


def check_price(price: Decimal, tick_size: Decimal, precision: int, name: str = "price") -> Decimal:
    """A price must have at most ``precision`` decimals and sit on the tick grid."""
    if decimals_of(price) > precision or price % tick_size != 0:
        raise ApiError(BAD_VALUE, name, f"{name} is not a multiple of tick size {tick_size}")
    return price


def _id_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(WRONG_TYPE, name, "order_id must be a list of strings")
    return value


def order_query_filter(obj: dict[str, Any] | None) -> tuple[set[int] | None, str | None]:
    """order/query ``filter``: optional ``status`` (list of status strings) and ``order_id``."""
    if not obj:
        return None, None
    unknown = set(obj) - {"status", "order_id"}
    if unknown:
        raise ApiError(BAD_VALUE, "filter", f"unknown filter field {sorted(unknown)[0]}")
    statuses = None
    if "status" in obj:
        raw = obj["status"]
        if not isinstance(raw, list) or not all(isinstance(s, str) and _INT.fullmatch(s) for s in raw):
            raise ApiError(WRONG_TYPE, "filter", "status must be a list of status strings")
        statuses = {int(s) for s in raw}
        if not statuses <= STATUSES:
            raise ApiError(BAD_VALUE, "filter", "unknown order status")
    order_id = obj.get("order_id")
    if order_id is not None and not isinstance(order_id, str):
        raise ApiError(WRONG_TYPE, "filter", "order_id must be a string")
    return statuses, order_id or None


def batch_filter(obj: dict[str, Any] | None) -> list[str]:
    """cancel_batch ``filter``: ``{"order_id": [..]}`` with 1..50 ids."""
    if obj is None:
        raise ApiError(MISSING, "filter")
    if "order_id" not in obj:
        raise ApiError(MISSING, "filter", "filter.order_id is required")
    ids = _id_list(obj["order_id"], "filter")
    if not ids or len(ids) > MAX_BATCH_IDS:
        raise ApiError(BAD_VALUE, "filter", f"1 to {MAX_BATCH_IDS} order ids")
    return ids
