"""Displayed prices of the simulator on an inverse contract: an order's ``avg_price`` and a
position's ``entry_price`` are contract-weighted harmonic means, exact to 1e-8."""
from __future__ import annotations

import math
from decimal import Decimal as D
from fractions import Fraction as F

from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.sim.exchange import Exchange, ExchangeConfig, InstrumentSpec

SYM = "BTC_USD"


def _ex(**kw: object) -> tuple[Exchange, int, int]:
    ex = Exchange(ExchangeConfig(**kw))   # type: ignore[arg-type]
    return ex, ex.open_account("a", D(10)), ex.open_account("w", D(1000))


def _pos(ex: Exchange, acct: int, side: int) -> dict:
    return next(r for r in ex.position_rows(acct) if r["symbol"] == SYM and r["side"] == str(side))


def harmonic(fills: list[tuple[int, str]]) -> F:
    """Contract-weighted harmonic mean of (qty, price) fills, exact."""
    return F(sum(q for q, _ in fills)) / sum(F(q) / F(p) for q, p in fills)


def rounded(x: F) -> D:
    """``x`` to 1e-8, nearest (ties up), as the rows render it."""
    return D(math.floor(x * 10**8 + F(1, 2))) / 10**8


def _sweep(ex: Exchange, taker: int, maker: int, fills: list[tuple[int, str]], side: int = 1,
           close: int = 0) -> dict:
    """``maker`` rests the ``fills`` (one order each), ``taker`` takes them all at once."""
    for q, p in fills:
        ex.place_order(maker, SYM, 1 - side, 0, D(p), q, None, 1)
    limit = max(D(p) for _, p in fills) if side else min(D(p) for _, p in fills)
    row = ex.place_order(taker, SYM, side, close, limit, sum(q for q, _ in fills), None, 2)
    assert row["status"] == "32"
    return row


# ---------------------------------------------------------------- avg_price

def test_avg_price_of_one_price_is_that_price() -> None:
    ex, a, w = _ex()
    assert _sweep(ex, a, w, [(7, "10100")])["avg_price"] == "10100.0"
    assert _sweep(ex, a, w, [(7, "10100.5"), (13, "10100.5"), (1, "10100.5")])["avg_price"] \
        == "10100.5"


def test_avg_price_of_mixed_prices_is_the_harmonic_mean() -> None:
    ex, a, w = _ex()
    fills = [(10, "10001"), (5, "10001.5")]
    row = _sweep(ex, a, w, fills)
    # 15 / (10/10001 + 5/10001.5) = 10001.16666111..., not the arithmetic 10001.16666667
    assert row["avg_price"] == "10001.16666111" == str(rounded(harmonic(fills)))
    fills = [(3, "9000"), (1, "12000.5"), (250, "10000.5")]
    row = _sweep(ex, a, w, fills, side=0)
    assert D(row["avg_price"]) == rounded(harmonic(fills))
    # the query and the cancel row of a partly filled order show the same mean
    ex.place_order(w, SYM, 0, 0, D("10003"), 3, None, 3)
    ex.place_order(w, SYM, 0, 0, D("10004.5"), 4, None, 3)
    part = ex.place_order(a, SYM, 1, 0, D("10004.5"), 10, None, 4)
    mean = str(rounded(harmonic([(3, "10003"), (4, "10004.5")])))
    assert part["avg_price"] == mean
    assert ex.query_orders(a, SYM, None, part["order_id"], None, None, 1)[0]["avg_price"] == mean
    assert ex.cancel_order(a, SYM, part["order_id"], 5)["avg_price"] == mean


# ---------------------------------------------------------------- entry_price

def test_entry_price_of_a_single_fill_is_its_price() -> None:
    ex, a, w = _ex()
    _sweep(ex, a, w, [(1, "10100")])            # cost 1/10100 is not a whole 1e-12 amount
    assert _pos(ex, a, 1)["entry_price"] == _pos(ex, w, 0)["entry_price"] == "10100"


def test_entry_price_of_several_fills_at_one_price_after_partial_closes() -> None:
    ex, a, w = _ex()
    for q in (7, 13, 1):
        _sweep(ex, a, w, [(q, "10100.5")])
    assert _pos(ex, a, 1)["entry_price"] == "10100.5"
    _sweep(ex, a, w, [(3, "11111.5")], side=0, close=1)
    _sweep(ex, a, w, [(5, "9000")], side=0, close=1)
    assert _pos(ex, a, 1)["qty"] == "13" and _pos(ex, a, 1)["entry_price"] == "10100.5"


def test_entry_price_of_mixed_fills_and_partial_closes_against_fractions() -> None:
    ex, a, w = _ex()
    opened = [(10, "10000"), (3, "10000.5"), (7, "10333")]
    _sweep(ex, a, w, opened[:2])
    _sweep(ex, a, w, opened[2:])
    exact = harmonic(opened)                     # a partial close keeps the entry price
    assert D(_pos(ex, a, 1)["entry_price"]) == rounded(exact)
    _sweep(ex, a, w, [(6, "10500")], side=0, close=1)
    _sweep(ex, a, w, [(1, "9999.5")], side=0, close=1)
    assert D(_pos(ex, a, 1)["entry_price"]) == rounded(exact)
    assert D(_pos(ex, w, 0)["entry_price"]) == rounded(exact)    # the other side's short
    _sweep(ex, a, w, [(4, "11000.5")])           # add after the closes
    remaining = F(13) / exact                    # qty / price of the 13 kept contracts
    exact2 = (13 + F(4)) / (remaining + F(4) / F("11000.5"))
    assert D(_pos(ex, a, 1)["entry_price"]) == rounded(exact2)
    assert D(_pos(ex, w, 0)["entry_price"]) == rounded(harmonic(opened + [(4, "11000.5")]))


def test_entry_price_with_a_fine_tick_and_face() -> None:
    eth = InstrumentSpec(symbol="ETH_USD", asset="ETH", symbol_id=2, tick_size=D("0.05"),
                         price_precision=2, face_value=D("0.1"))
    ex = Exchange(ExchangeConfig(instruments=(eth,), start_price=D("155")))
    a, w = ex.open_account("a", D(10), "ETH"), ex.open_account("w", D(1000), "ETH")
    for q, p in ((3, "155.05"), (1, "154.95")):
        ex.place_order(w, "ETH_USD", 0, 0, D(p), q, None, 1)
        ex.place_order(a, "ETH_USD", 1, 0, D(p), q, None, 1)
    row = next(r for r in ex.position_rows(a) if r["symbol"] == "ETH_USD" and r["side"] == "1")
    assert D(row["entry_price"]) == rounded(harmonic([(3, "155.05"), (1, "154.95")]))


fills = st.lists(st.tuples(st.integers(1, 400), st.integers(10_000, 80_000), st.integers(0, 3)),
                 min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, database=None)
@given(fills)
def test_entry_and_avg_price_match_exact_fractions(ops: list[tuple[int, int, int]]) -> None:
    """Random opening fills (price in ticks of 0.5) with partial closes in between: the
    entry price stays the harmonic mean of what was opened, rounded to 1e-8."""
    ex, a, w = _ex()
    held = 0
    value = F(0)                        # exact sum of qty / price of the held contracts
    for q, ticks, close in ops:
        price = D(ticks) / 2
        if close and held > 1:
            k = max(1, held // (close + 1))
            _sweep(ex, a, w, [(k, str(price))], side=0, close=1)
            value -= value * k / held
            held -= k
        else:
            row = _sweep(ex, a, w, [(q, str(price))])
            assert D(row["avg_price"]) == price
            held += q
            value += F(q) / F(price)
        pos = _pos(ex, a, 1)
        assert int(pos["qty"]) == held
        assert abs(F(D(pos["entry_price"])) - held / value) <= F(1, 2 * 10**8)
