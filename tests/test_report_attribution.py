"""The attribution arithmetic of inverse contracts, on hand-computed cases (exact).

Prices whose inverses terminate (8000, 10000, 12500, 16000) make every figure an exact
decimal that can be worked out by hand.
"""
from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.journal.report.attribution import (SCALE, attribute, exchange_upnl, inventory_pnl, inverse,
                                                     ledger_cost, spread_capture, to_decimal, units_text)
from market_maker.journal.report.model import Fill


def fill(ts, side, qty, price, fee="0"):
    return Fill(ts, f"x{ts}", "o", None, side, 0, price, qty, fee, 1, None, "live")


def btc(units):
    return to_decimal(units)


def test_one_contract_is_one_usd_face():
    assert btc(inverse(D("10000"))) == D("0.0001")
    assert btc(inverse(D("8000"))) == D("0.000125")
    assert inverse(D("3")) == 33333333333333333333            # 1/3 to 1e-20, rounded to nearest
    assert inverse(D("1.5")) == 66666666666666666667
    assert ledger_cost(100, D("8000")) == 12_500_000_000      # 0.0125 BTC in 1e-12 units
    assert ledger_cost(1, D("3")) == 333_333_333_333


def test_spread_capture_of_a_buy_and_a_sell():
    # buy 100 @ 8000 with the mid at 10000: 100 * (1/8000 - 1/10000) = 0.0025
    assert btc(spread_capture(1, 100, D("8000"), D("10000"))) == D("0.0025")
    # sell 200 @ 10000 with the mid at 12500: 200 * (1/12500 - 1/10000) = -0.004 (sold below the mid)
    assert btc(spread_capture(-1, 200, D("10000"), D("12500"))) == D("-0.004")
    # a sell above the mid earns: 100 * (1/10000 - 1/12500) = 0.002
    assert btc(spread_capture(-1, 100, D("12500"), D("10000"))) == D("0.002")


def test_inventory_of_a_long_and_a_short():
    assert btc(inventory_pnl(100, D("8000"), D("12500"))) == D("0.0045")     # long, price up: gain
    assert btc(inventory_pnl(-100, D("12500"), D("10000"))) == D("0.002")   # short, price down: gain
    assert btc(inventory_pnl(100, D("10000"), D("8000"))) == D("-0.0025")


def test_a_round_trip_adds_up_to_the_long_pnl():
    # mids 10000, 8000, 12500, 10000; buy 100 @ 8000 at the first, sell 200 @ 10000 at the third
    fills = [fill(0, 1, 100, "8000", "-0.000003125"), fill(2000, -1, 200, "10000", "0.000015")]
    a = attribute(fills, [0, 1000, 2000, 3000], ["10000", "8000", "12500", "10000"], funding=[(2500, "-0.0000001")],
                  net_end=-100)
    assert btc(a.spread) == D("0.0025") + D("-0.004")
    assert btc(a.inventory) == D("-0.0025") + D("0.0045") + D("0.002")
    assert a.mark_basis == 0 and a.rounding == 0 and a.unexplained == 0 and a.exchange_change is None
    assert btc(a.fees) == D("0.000003125") - D("0.000015")
    assert btc(a.funding) == D("-0.0000001")
    # long 100 bought at 8000 and sold at 10000: 100 * (1/8000 - 1/10000); the short opened at 10000 is flat at 10000
    assert btc(a.spread + a.inventory) == D("0.0025")
    assert btc(a.net) == D("0.0025") + D("0.000003125") - D("0.000015") - D("0.0000001")
    assert (a.net_start, a.net_end) == (0, -100)
    assert [btc(v) for v in a.series.spread] == [D("0.0025"), D("0.0025"), D("-0.0015"), D("-0.0015")]
    assert a.series.net == [100, 100, -100, -100]


def test_the_final_position_is_marked_at_the_exchanges_mark_and_the_equity_must_match():
    fills = [fill(0, 1, 100, "8000"), fill(2000, -1, 200, "10000")]
    mids = ([0, 1000, 2000, 3000], ["10000", "8000", "12500", "10000"])
    # the short 100 opened at 10000, marked at 12500: 100 * (1/12500 - 1/10000) = -0.002
    a = attribute(fills, *mids, net_end=-100, mark_start=D("10000"), mark_end=D("12500"),
                  equity_start=D("1"), equity_end=D("1.0005"))
    assert btc(a.mark_basis) == D("-0.002")
    assert a.rounding == 0 and a.unexplained == 0 and btc(a.net) == D("0.0005")
    # one ledger unit the journal does not explain shows as such, in no other component
    b = attribute(fills, *mids, net_end=-100, mark_start=D("10000"), mark_end=D("12500"),
                  equity_start=D("1"), equity_end=D("1.000500000001"))
    assert btc(b.unexplained) == D("1e-12") and btc(b.net) == D("0.000500000001")
    assert (b.spread, b.inventory, b.mark_basis, b.fees) == (a.spread, a.inventory, a.mark_basis, a.fees)


def test_the_ledger_rounding_is_its_own_line():
    # buy 1 @ 3: the exchange books cost round(1/3, 1e-12); marked at 4: round(-1/4, 1e-12) is exact
    a = attribute([fill(0, 1, 1, "3")], [0, 1000], ["3", "4"], net_end=1, mark_end=D("4"),
                  equity_start=D("10"), equity_end=D("10") + D("0.333333333333") - D("0.25"))
    # exact: 1/3 - 1/4 to 1e-20 is 0.08333333333333333333; the exchange's 0.083333333333
    assert btc(a.spread + a.inventory + a.mark_basis) == D("0.08333333333333333333")
    assert btc(a.rounding) == D("-0.00000000000033333333")
    assert a.unexplained == 0 and btc(a.net) == D("0.083333333333")


def test_start_position_comes_from_the_final_one_minus_the_fills():
    # 100 long at the start; sell 50 @ 10000 while the latest mid is 8000; the mid then goes to 10000
    a = attribute([fill(1000, -1, 50, "10000")], [0, 2000], ["8000", "10000"], net_end=50)
    assert (a.net_start, a.net_end) == (100, 50)
    assert a.fill_mid == [0] and a.series.mid_text[0] == "8000"
    assert btc(a.spread) == D("50") * (D("0.000125") - D("0.0001"))        # sold above the mid
    assert btc(a.inventory) == D("50") * (D("0.000125") - D("0.0001"))     # 50 still long while 8000 -> 10000
    # 100/8000 - 50/10000 - 50/10000
    assert btc(a.spread + a.inventory) == D("0.0025")


def test_exchange_upnl_rounds_like_the_simulator():
    assert exchange_upnl(3, D("7")) == -428_571_428_571          # -3/7 to 1e-12
    assert exchange_upnl(-3, D("7")) == 428_571_428_571


def test_units_text_is_exact():
    assert units_text(0) == "0" and units_text(SCALE) == "1" and units_text(-15) == "-0.00000000000000000015"
    assert units_text(12 * SCALE + SCALE // 4) == "12.25"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(19000, 21000), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 40_000), st.sampled_from((1, -1)), st.integers(1, 500),
                          st.integers(19000, 21000)), max_size=20),
       st.integers(-300, 300))
def test_spread_plus_inventory_telescopes_to_trading_pnl_at_the_last_mid(mids, trades, net_end):
    ts = [i * 2000 for i in range(len(mids))]
    mid_text = [str(D(m) / 2) for m in mids]
    fills = sorted((fill(t, s, q, str(D(p) / 2)) for t, s, q, p in trades), key=lambda f: f.ts_ms)
    a = attribute(fills, ts, mid_text, net_end=net_end)
    expected = (sum(f.side * f.qty * inverse(f.price) for f in fills) + a.net_start * inverse(D(mid_text[0]))
                - net_end * inverse(D(mid_text[-1])))
    assert a.spread + a.inventory == expected
    assert a.net == a.spread + a.inventory + a.mark_basis + a.fees + a.funding + a.rounding
    # the exchange's trading PnL (costs to 1e-12, marked at the last mid) is what the parts add up to
    booked = sum(f.side * ledger_cost(f.qty, f.price) for f in fills) + exchange_upnl(net_end, D(mid_text[-1])) \
        - exchange_upnl(a.net_start, D(mid_text[0]))
    assert a.net == booked * 10 ** 8
