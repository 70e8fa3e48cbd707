"""Wire rows (dicts of decimal strings) -> domain values.

One place for the conversion so the REST and WebSocket clients cannot disagree.
Every function raises ``MalformedRow`` (a ``ValueError`` and a ``GteError``: bad
data from the exchange is an exchange error) on a missing field or a number that
is not a decimal string; callers decide whether that means a resync.
"""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Mapping

from ..models import (BUY, LONG, SELL, SHORT, Fill, Instrument, Margin, Order,
                      Position, Trade)
from .errors import GteError


class MalformedRow(GteError, ValueError):
    """A row from the exchange lacks a field or carries a value we cannot parse."""

    description = "GTE sent data that cannot be used"

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


# Plain decimal strings only, as GTE sends them: no exponent (a crafted "1e99999"
# would cost seconds of CPU), no padding, no underscores, bounded length.
_DECIMAL = re.compile(r"-?[0-9]{1,40}(?:\.[0-9]{1,40})?")


def dec(row: Mapping[str, Any], name: str, default: Decimal | None = None) -> Decimal:
    value = row.get(name)
    if value is None or value == "":
        if default is not None:
            return default
        raise MalformedRow(f"missing field {name!r}")
    if isinstance(value, Decimal):  # a JSON number the REST client parsed exactly (parse_float=Decimal)
        if value.is_finite() and value.adjusted() < 40 and value.as_tuple().exponent >= -40:
            return value
        raise MalformedRow(f"field {name!r} is out of range: {value!r:.60}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedRow(f"field {name!r} is not a decimal string: {value!r:.60}")
    if isinstance(value, int):
        return Decimal(value)
    if not _DECIMAL.fullmatch(value):
        raise MalformedRow(f"field {name!r} is not a decimal string: {value!r:.60}")
    return Decimal(value)


_PRICES: dict[str, Decimal] = {}  # wire string -> its Decimal, shared by every order at that price
_PRICES_MAX = 4096


def shared_price(row: Mapping[str, Any], name: str = "price") -> Decimal:
    """``dec(row, name)``, one shared Decimal per distinct price string.

    Our orders' prices keep recurring (a grid around the touch) and a Decimal caches its
    hash: a shared object saves parsing the string again and, above all, rehashing it
    (~0.5 us) wherever the requote looks an order up by price. Decimals are immutable and
    ``Decimal(s)`` depends on nothing but ``s``, so the shared value is the one ``dec`` returns.
    """
    value = row.get(name)
    if value.__class__ is str:
        shared = _PRICES.get(value)
        if shared is not None:
            return shared
        parsed = dec(row, name)
        if len(_PRICES) >= _PRICES_MAX:
            _PRICES.clear()
        _PRICES[value] = parsed
        return parsed
    return dec(row, name)


def integer(row: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = dec(row, name, None if default is None else Decimal(default))
    if value != value.to_integral_value():
        raise MalformedRow(f"field {name!r} is not a whole number: {row.get(name)!r}")
    return int(value)


def text(row: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = row.get(name)
    if value is None:
        if default is not None:
            return default
        raise MalformedRow(f"missing field {name!r}")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedRow(f"field {name!r} is not a string: {value!r:.60}")
    return str(value)


def order_side(code: Any) -> str:
    """REST/order rows use 1 buy, 0 sell; WebSocket trade/book rows use words."""
    if code in ("1", 1, "buy"):
        return BUY
    if code in ("0", 0, "sell"):
        return SELL
    raise MalformedRow(f"unknown side {code!r}")


def parse_order(row: Mapping[str, Any]) -> Order:
    return Order(
        order_id=text(row, "order_id"),
        client_oid=text(row, "client_oid", ""),
        side=order_side(row.get("side")),
        close_flag=integer(row, "close_flag", 0),
        price=shared_price(row),
        qty=integer(row, "qty"),
        filled_qty=integer(row, "filled_qty", 0),
        status=integer(row, "status"),
        avg_price=dec(row, "avg_price", Decimal(0)),
        fee=dec(row, "fee", Decimal(0)),
        ctime=integer(row, "ctime", 0),
    )


def parse_position(row: Mapping[str, Any]) -> Position:
    side_code = row.get("side")
    if side_code in ("1", 1):
        side = LONG
    elif side_code in ("0", 0):
        side = SHORT
    else:
        raise MalformedRow(f"unknown position side {side_code!r}")
    zero = Decimal(0)
    return Position(
        side=side,
        qty=integer(row, "qty", 0),
        avail_qty=integer(row, "avail_qty", 0),
        entry_price=dec(row, "entry_price", zero),
        leverage=dec(row, "leverage", zero),
        liquidation_price=dec(row, "liquidation_price", zero),
        unrealised_pnl=dec(row, "pnl", zero),
        realised_pnl=dec(row, "realised_pnl", zero),
        pos_margin=dec(row, "pos_margin", zero),
    )


def parse_margin(row: Mapping[str, Any]) -> Margin:
    zero = Decimal(0)
    return Margin(
        settle_currency=text(row, "settle_currency", text(row, "asset", "")),
        total=dec(row, "total", zero),
        available=dec(row, "available", zero),
        order_margin=dec(row, "order_margin", zero),
        pos_margin=dec(row, "pos_margin", zero),
    )


def parse_instrument(row: Mapping[str, Any]) -> Instrument:
    def optional(name: str) -> Decimal | None:
        return dec(row, name) if row.get(name) not in (None, "") else None

    precision = integer(row, "price_precision", 0)
    tick = optional("tick_size")
    if tick is None:
        tick = Decimal(1).scaleb(-precision)
    elif tick <= 0:
        raise MalformedRow(f"tick_size must be positive: {row.get('tick_size')!r}")
    return Instrument(
        symbol=text(row, "symbol"),
        settle_currency=text(row, "settle_currency", text(row, "asset", "")),
        tick_size=tick,
        price_precision=precision,
        face_value=dec(row, "face_value") if row.get("face_value") not in (None, "")
        else dec(row, "lot_size", Decimal(1)),
        symbol_id=integer(row, "symbol_id", 0),
        last_price=optional("last_price"),
        mark_price=optional("mark_price"),
        index_price=optional("index_price"),
        funding_rate=optional("funding_rate"),
    )


def parse_execution(row: Mapping[str, Any]) -> Fill:
    price_field = "last_price" if row.get("last_price") not in (None, "") else "order_price"
    return Fill(
        exec_id=text(row, "exec_id"),
        order_id=text(row, "order_id"),
        side=order_side(row.get("side")),
        close_flag=integer(row, "close_flag", 0),
        price=dec(row, price_field),
        qty=integer(row, "last_qty"),
        fee=dec(row, "fee", Decimal(0)),
        maker=text(row, "maker_flag", "0") == "1",
        time=integer(row, "ctime", 0),
    )


def parse_trade(row: Mapping[str, Any]) -> Trade:
    return Trade(
        side=order_side(row.get("side")),
        price=dec(row, "price"),
        qty=integer(row, "qty"),
        time=integer(row, "trade_time", 0),
    )
