import time
from decimal import Decimal

import pytest

from market_maker.gte.parse import MalformedRow, dec, parse_execution, parse_instrument, parse_order


@pytest.mark.parametrize("raw", ["1e99999", " 7 ", "1_000", "NaN", "Infinity", "0x10", "", "1.2.3", True, 1.5, "9" * 41])
def test_dec_rejects_anything_but_a_plain_decimal_string(raw):
    row = {"x": raw}
    if raw == "":
        with pytest.raises(MalformedRow, match="missing"):
            dec(row, "x")
        return
    started = time.perf_counter()
    with pytest.raises(MalformedRow, match="'x'"):
        dec(row, "x")
    assert time.perf_counter() - started < 0.05


@pytest.mark.parametrize("raw, value", [("8889", Decimal(8889)), ("0.000878", Decimal("0.000878")),
                                        ("-1.5", Decimal("-1.5")), (7, Decimal(7))])
def test_dec_accepts_wire_numbers(raw, value):
    assert dec({"x": raw}, "x") == value


def test_instrument_tick_size_must_be_positive_and_face_value_wins_over_lot_size():
    row = {"symbol": "BTC_USD", "settle_currency": "BTC", "price_precision": "1", "tick_size": "0.5",
           "face_value": "1", "lot_size": "garbage", "symbol_id": "1"}
    assert parse_instrument(row).tick_size == Decimal("0.5")
    assert parse_instrument({**row, "tick_size": None}).tick_size == Decimal("0.1")
    for bad in ("0", "-0.5"):
        with pytest.raises(MalformedRow, match="tick_size"):
            parse_instrument({**row, "tick_size": bad})


def test_execution_price_names_the_real_field():
    row = {"exec_id": "1", "order_id": "2", "side": "1", "last_qty": "3", "last_price": "abc"}
    with pytest.raises(MalformedRow, match="last_price"):
        parse_execution(row)
    assert parse_execution({**row, "last_price": "", "order_price": "100.5"}).price == Decimal("100.5")


def test_order_side_codes():
    row = {"order_id": "1", "side": "0", "price": "10", "qty": "5", "status": "2"}
    assert parse_order(row).side == "sell" and parse_order({**row, "side": "1"}).side == "buy"
    with pytest.raises(MalformedRow):
        parse_order({**row, "side": "2"})


def test_order_prices_are_shared_and_exact():
    """parse_order shares one Decimal per price string (same digits and exponent as dec)."""
    row = {"order_id": "1", "client_oid": "mm1", "side": "1", "close_flag": "0", "price": "9995.50",
           "qty": "10", "filled_qty": "0", "status": "2"}
    first, again = parse_order(row), parse_order(dict(row, order_id="2"))
    assert first.price is again.price
    assert str(first.price) == "9995.50" and first.price == dec(row, "price")
    other = parse_order(dict(row, price="9995.5"))
    assert str(other.price) == "9995.5" and other.price is not first.price
    with pytest.raises(MalformedRow):
        parse_order(dict(row, price="1e5"))
    with pytest.raises(MalformedRow):
        parse_order(dict(row, price="1e5"))  # a refused string is never remembered
