"""Inverse-contract accounting: margins, positions, PnL, funding, liquidation, transfers."""
from __future__ import annotations

from decimal import Decimal as D

import pytest

from market_maker.sim.exchange import Exchange, ExchangeConfig, InstrumentSpec, SimError

SYM = "BTC_USD"
ETH = InstrumentSpec(symbol="ETH_USD", asset="ETH", symbol_id=2, tick_size=D("0.05"),
                     price_precision=2)
Q = D("1e-12")


def _ex(**kw: object) -> Exchange:
    return Exchange(ExchangeConfig(**kw))   # type: ignore[arg-type]


def _trade(ex: Exchange, buyer: int, seller: int, price: str, qty: int,
           buy_close: int = 0, sell_close: int = 0, now: int = 1) -> None:
    """seller rests, buyer takes."""
    ex.place_order(seller, SYM, 0, sell_close, D(price), qty, None, now)
    row = ex.place_order(buyer, SYM, 1, buy_close, D(price), qty, None, now)
    assert row["status"] == "32"


def _pos(ex: Exchange, acct: int, side: int, symbol: str = SYM) -> dict:
    return next(r for r in ex.position_rows(acct) if r["symbol"] == symbol and r["side"] == str(side))


def _pc(ex: Exchange, acct: int, asset: str = "BTC") -> dict:
    return ex.pc_account_rows(acct, asset)[0]


def test_worked_example_eth_order_margin() -> None:
    ex = _ex(instruments=(InstrumentSpec(), ETH), start_price=D("155"))
    a = ex.open_account("a", D("1"), "ETH")
    ex.change_leverage(a, "ETH_USD", 1, None, D("15"), 0)
    row = ex.place_order(a, "ETH_USD", 1, 0, D("155"), 2, None, 1)
    assert row["order_margin"] == "0.000860215054"
    assert abs(D(row["order_margin"]) - D("0.00086")) < D("0.000001")
    pc = _pc(ex, a, "ETH")
    assert pc["order_margin"] == "0.000860215054" and pc["available"] == "0.999139784946"
    assert ex.pc_account_rows(a, "BTC")[0]["total"] == "0"


def test_insufficient_margin_is_rejected_without_side_effects() -> None:
    ex = _ex()
    a = ex.open_account("a", D("0.01"))
    ex.place_order(a, SYM, 1, 0, D("10000"), 900, None, 1)     # 0.009 BTC at 10x
    ex.drain_events()
    with pytest.raises(SimError) as err:
        ex.place_order(a, SYM, 1, 0, D("10000"), 101, None, 2)
    assert (err.value.code, err.value.pattern) == (-20001, "INSUFFICIENT_MARGIN")
    assert ex.drain_events() == [] and len(ex.open_orders_of(a)) == 1
    ex.place_order(a, SYM, 1, 0, D("10000"), 100, None, 3)       # exactly fits


def test_close_orders_reserve_position_not_margin() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    with pytest.raises(SimError) as err:
        ex.place_order(a, SYM, 0, 1, D("10000"), 1, None, 1)    # nothing to close
    assert err.value.code == -20003
    _trade(ex, a, w, "10000", 100)
    row = ex.place_order(a, SYM, 0, 1, D("11000"), 60, None, 2)
    assert row["order_margin"] == "0"
    assert _pos(ex, a, 1)["avail_qty"] == "40" and _pos(ex, a, 1)["qty"] == "100"
    with pytest.raises(SimError) as err:
        ex.place_order(a, SYM, 0, 1, D("11000"), 41, None, 3)
    assert (err.value.code, err.value.pattern) == (-20003, "EXCEED_POSITION")
    ex.cancel_order(a, SYM, row["order_id"], 4)
    assert _pos(ex, a, 1)["avail_qty"] == "100"


def test_entry_price_is_harmonic_mean() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 100)
    _trade(ex, a, w, "12000", 100)
    entry = D(_pos(ex, a, 1)["entry_price"])
    exact = D(200) / (D(100) / 10000 + D(100) / 12000)
    assert abs(entry - exact) < D("1e-6") and entry < D(11000)
    assert _pos(ex, w, 0)["entry_price"] == _pos(ex, a, 1)["entry_price"]


def test_realised_pnl_long_and_short_with_fees() -> None:
    ex = _ex()
    a, b, w = (ex.open_account(n, D("1")) for n in "abw")
    _trade(ex, a, w, "10000", 100)               # a long (taker)
    ex.place_order(b, SYM, 0, 0, D("10000"), 100, None, 1)   # b short (maker)
    ex.place_order(w, SYM, 1, 0, D("10000"), 100, None, 1)
    _trade(ex, b, a, "11000", 100, buy_close=1, sell_close=1)  # a closes long (maker), b closes short
    gain = (D(100) / 10000).quantize(Q) - (D(100) / 11000).quantize(Q)
    assert D(_pos(ex, a, 1)["realised_pnl"]) == gain == D("0.000909090909")
    assert D(_pos(ex, b, 0)["realised_pnl"]) == -gain
    assert _pos(ex, a, 1)["qty"] == "0" and _pos(ex, b, 0)["qty"] == "0"
    fees_a = (D("0.01") * D("0.00075")).quantize(Q) + \
        ((D(100) / 11000).quantize(Q) * D("-0.00025")).quantize(Q)
    assert ex.equity(a) == D(1) + gain - fees_a
    assert _pc(ex, a)["pos_margin"] == "0"


def test_partial_close_keeps_entry_and_releases_margin_pro_rata() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 100)
    margin = D(_pos(ex, a, 1)["pos_margin"])
    _trade(ex, w, a, "12500", 25, sell_close=1)
    pos = _pos(ex, a, 1)
    assert pos["qty"] == "75" and pos["entry_price"] == "10000"
    assert D(pos["pos_margin"]) == margin - (margin / 4).quantize(Q)
    assert D(pos["realised_pnl"]) == D("0.0025") - D("0.002")


def test_unrealised_pnl_follows_mark() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 1000)
    ex.set_mark_price(SYM, D("12500"), 5)
    assert D(_pos(ex, a, 1)["pnl"]) == D("0.02")             # 1000*(1/10000 - 1/12500)
    assert D(_pos(ex, w, 0)["pnl"]) == D("-0.02")
    assert ex.drain_events()[-1].kind != "position"          # no position push on mark moves


def test_funding_longs_pay_shorts_and_is_conserved() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 1000)
    total = ex.total_equity()
    bal_a, bal_w = ex.equity(a), ex.equity(w)
    ex.apply_funding(SYM, D("0.0001"), 10)
    assert ex.equity(a) == bal_a - D("0.00001") and ex.equity(w) == bal_w + D("0.00001")
    assert ex.total_equity() == total
    ex.tick(20)                     # schedules the first funding time (8h boundary)
    ex.tick(8 * 3600 * 1000 - 1)
    assert ex.equity(a) == bal_a - D("0.00001")
    ex.tick(8 * 3600 * 1000)
    assert ex.equity(a) == bal_a - D("0.00002") and ex.total_equity() == total
    assert ex.instrument_row(SYM, 8 * 3600 * 1000)["funding_rate_time"] == str(16 * 3600 * 1000)


H8 = 8 * 3600 * 1000


def test_a_funding_is_settled_before_anything_at_its_time_changes_the_positions_or_the_mark() -> None:
    # CI finding: funding was paid at the housekeeping step after its time, on positions that fills (and marks)
    # after the funding time had already changed, so a client could not tell what it was paid on
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 1000)
    ex.tick(20)                                     # schedules the first funding time
    ex.drain_events()
    bal_a = ex.equity(a)
    _trade(ex, a, w, "10000", 500, now=H8 + 5)      # an order just after the funding time, before any tick
    fee = D(ex.query_orders(a, SYM, None, None, None, None, 1)[0]["fee"])
    assert ex.equity(a) == bal_a - D("0.00001") - fee  # 1000 contracts paid, not 1500
    events = ex.drain_events()
    funding = [e.row for e in events if e.kind == "funding" and e.account_id == a]
    assert funding == [{"symbol": SYM, "side": 1, "qty": 1000, "rate": D("0.0001"), "amount": D("-0.00001"),
                        "funding_time": H8}]
    kinds = [e.kind for e in events]
    assert kinds.index("instrument") < kinds.index("execution")  # announced before the fills after it
    pushed = next(e.row for e in events if e.kind == "instrument")
    assert pushed["funding_rate_time"] == str(2 * H8) and D(pushed["mark_price"]) == 10000
    ex.tick(H8 + 50)
    assert ex.equity(a) == bal_a - D("0.00001") - fee  # paid once
    ex.set_mark_price(SYM, D("12500"), 2 * H8)      # a mark move at the next funding time: paid at the old mark
    assert [e.row["amount"] for e in ex.drain_events() if e.kind == "funding" and e.account_id == a] == \
        [D("-0.000015")]                            # 1500 / 10000 * 0.0001


def test_a_new_funding_rate_is_announced_at_once() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 1000)
    ex.tick(20)
    ex.drain_events()
    ex.set_funding_rate(SYM, D("0.0003"), 30)
    assert [e.row["funding_rate"] for e in ex.drain_events() if e.kind == "instrument"] == ["0.0003"]
    bal_a = ex.equity(a)
    ex.tick(H8)
    assert ex.equity(a) == bal_a - D("0.00003")


def test_isolated_liquidation_at_bankruptcy_price_conserves_equity() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("0.05")), ex.open_account("w", D("100"))
    ex.change_leverage(a, SYM, 2, 1, D("10"), 0)
    _trade(ex, a, w, "10000", 1000)            # cost 0.1, margin 0.01
    total = ex.total_equity()
    pos = _pos(ex, a, 1)
    assert pos["margin_mode"] == "2" and pos["pos_margin"] == "0.01"
    liq = D(pos["liquidation_price"])
    assert abs(liq - D(1000) / (D("0.01") + D("0.1") * D("0.995"))) < D("1e-7")   # ~9132.42
    balance = ex.equity(a) - D(pos["pnl"])
    ex.drain_events()
    ex.set_mark_price(SYM, D("9140"), 2)
    assert _pos(ex, a, 1)["qty"] == "1000"
    ex.set_mark_price(SYM, D("9130"), 3)
    assert _pos(ex, a, 1)["qty"] == "0"
    assert ex.equity(a) == balance - D("0.01")             # loses exactly its position margin
    ins = _pos(ex, ex.insurance_account_id, 1)
    assert ins["qty"] == "1000"
    assert abs(D(ins["entry_price"]) - D(1000) / D("0.11")) < D("1e-7")   # bankruptcy price
    assert ex.total_equity() == total
    kinds = [e.kind for e in ex.drain_events() if e.account_id == a]
    assert "position" in kinds and "margin" in kinds


def test_cross_liquidation_uses_whole_balance() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("0.02")), ex.open_account("w", D("100"))
    iso = ex.open_account("iso", D("0.02"))
    ex.change_leverage(iso, SYM, 2, None, D("10"), 0)
    _trade(ex, a, w, "10000", 1000)            # cross: equity 0.02 backs the position
    _trade(ex, iso, w, "10000", 1000)          # isolated: only 0.01 backs it
    total = ex.total_equity()
    ex.set_mark_price(SYM, D("9000"), 2)       # isolated gone (liq ~9132), cross survives
    assert _pos(ex, iso, 1)["qty"] == "0" and _pos(ex, a, 1)["qty"] == "1000"
    liq = D(_pos(ex, a, 1)["liquidation_price"])
    assert D(8300) < liq < D(8400)
    ex.set_mark_price(SYM, liq + D("0.5"), 3)
    assert _pos(ex, a, 1)["qty"] == "1000"
    ex.set_mark_price(SYM, liq - D("0.5"), 4)
    assert _pos(ex, a, 1)["qty"] == "0" and ex.equity(a) == 0
    assert _pos(ex, ex.insurance_account_id, 1)["qty"] == "2000"
    assert ex.total_equity() == total


def test_liquidation_cancels_open_orders() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("0.05")), ex.open_account("w", D("100"))
    ex.change_leverage(a, SYM, 2, None, D("10"), 0)
    _trade(ex, a, w, "10000", 1000)
    ex.place_order(a, SYM, 0, 1, D("11000"), 500, None, 2)
    ex.place_order(a, SYM, 1, 0, D("5000"), 10, None, 2)
    ex.set_mark_price(SYM, D("9000"), 3)
    assert ex.open_orders_of(a) == [] and _pc(ex, a)["order_margin"] == "0"


def test_margin_mode_and_leverage_changes() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    assert ex.setting_row(a, SYM) == {
        "cross_max_leverage": "100", "bid_max_leverage": "100", "ask_max_leverage": "100",
        "bid_leverage": "10", "ask_leverage": "10", "cross_leverage": "10", "margin_mode": "1"}
    ex.change_leverage(a, SYM, 2, 0, D("20"), 0)
    s = ex.setting_row(a, SYM)
    assert (s["margin_mode"], s["bid_leverage"], s["ask_leverage"]) == ("2", "10", "20")
    _trade(ex, w, a, "10000", 1000)            # a short 1000 isolated at 20x
    assert _pos(ex, a, 0)["pos_margin"] == "0.005" and _pos(ex, a, 0)["leverage"] == "20"
    ex.change_leverage(a, SYM, 2, 0, D("5"), 1)
    assert _pos(ex, a, 0)["pos_margin"] == "0.02" and _pc(ex, a)["pos_margin"] == "0.02"
    with pytest.raises(SimError) as err:
        ex.change_leverage(a, SYM, 1, None, D("5"), 2)      # mode change with a position
    assert (err.value.code, err.value.param) == (-10013, "mode")
    for bad in (D("0.5"), D("101")):
        with pytest.raises(SimError) as err:
            ex.change_leverage(a, SYM, 2, 0, bad, 2)
        assert err.value.param == "leverage"
    poor = ex.open_account("poor", D("0.0101"))
    ex.change_leverage(poor, SYM, 2, None, D("100"), 0)
    _trade(ex, poor, w, "10000", 1000)         # margin 0.001
    with pytest.raises(SimError) as err:
        ex.change_leverage(poor, SYM, 2, 1, D("1"), 3)      # would need 0.1
    assert err.value.code == -20001


def test_increase_and_decrease_isolated_margin() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    with pytest.raises(SimError):
        ex.increase_margin(a, SYM, 1, 1, D("0.01"), 0)      # cross / no position
    ex.change_leverage(a, SYM, 2, None, D("10"), 0)
    _trade(ex, a, w, "10000", 1000)
    liq0 = D(_pos(ex, a, 1)["liquidation_price"])
    ex.increase_margin(a, SYM, 1, 1, D("0.01"), 1)
    pos = _pos(ex, a, 1)
    assert pos["pos_margin"] == "0.02" and D(pos["liquidation_price"]) < liq0
    ex.increase_margin(a, SYM, 1, 0, D("0.01"), 2)
    assert _pos(ex, a, 1)["pos_margin"] == "0.01"
    with pytest.raises(SimError) as err:
        ex.increase_margin(a, SYM, 1, 0, D("0.001"), 3)     # below initial margin
    assert err.value.param == "margin"
    with pytest.raises(SimError) as err:
        ex.increase_margin(a, SYM, 1, 1, D("5"), 3)
    assert err.value.code == -20001
    ex.auto_margin(a, SYM, 1, 1)
    assert _pos(ex, a, 1)["auto_increase_flag"] == "1"
    ex.set_mark_price(SYM, D("9130"), 4)                    # auto top-up saves it
    pos = _pos(ex, a, 1)
    assert pos["qty"] == "1000"
    # topped up to the initial margin (0.01) over the unrealised loss, rounded up a unit
    assert D("0.01") <= D(pos["pos_margin"]) + D(pos["pnl"]) <= D("0.01") + D("1e-12")


def test_transfer_between_fund_and_contract() -> None:
    ex = _ex()
    a = ex.open_account("a", D("1"))
    total = ex.total_equity()
    ex.transfer(a, "BTC", 2, 1, D("0.4"))
    assert ex.fund_account_rows(a, "BTC") == [
        {"asset": "BTC", "available": "0.4", "lock": "0", "total": "0.4"}]
    assert _pc(ex, a)["available"] == "0.6" and ex.total_equity() == total
    ex.transfer(a, "BTC", 1, 2, D("0.1"))
    assert _pc(ex, a)["total"] == "0.7"
    assert [e.kind for e in ex.drain_events()] == ["margin", "margin"]
    for args, code, param in (((1, 2, D("1")), -20001, "volume"), ((2, 1, D("5")), -20001, "volume"),
                              ((3, 2, D("1")), -10013, "from"), ((2, 3, D("1")), -10013, "to"),
                              ((2, 2, D("1")), -10013, "to"), ((2, 1, D("-1")), -10013, "volume"),
                              ((2, 1, D("0.1000000000000000000000000000001")), -10013, "volume"),
                              ((2, 1, D("0.0000000000001")), -10013, "volume")):
        with pytest.raises(SimError) as err:
            ex.transfer(a, "BTC", *args)
        assert (err.value.code, err.value.param) == (code, param)


def test_margin_row_and_available_with_cross_loss() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("1")), ex.open_account("w", D("100"))
    _trade(ex, a, w, "10000", 1000)
    ex.set_mark_price(SYM, D("8000"), 2)       # upnl = 0.1 - 0.125 = -0.025
    row = ex.margin_rows(a)[0]
    fee = D("0.000075")
    assert D(row["total"]) == D(1) - fee - D("0.025")
    assert D(row["available"]) == D(1) - fee - D("0.01") - D("0.025")
    assert row["pos_margin"] == "0.01" and row["order_margin"] == "0"


def test_isolated_short_liquidation() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("0.05")), ex.open_account("w", D("100"))
    ex.change_leverage(a, SYM, 2, 0, D("20"), 0)
    _trade(ex, w, a, "10000", 1000)            # a short: cost 0.1, margin 0.005
    total = ex.total_equity()
    liq = D(_pos(ex, a, 0)["liquidation_price"])
    assert abs(liq - D(1000) / (D("0.1") * D("1.005") - D("0.005"))) < D("1e-7")   # ~10471.2
    ex.set_mark_price(SYM, D("10460"), 2)
    assert _pos(ex, a, 0)["qty"] == "1000"
    ex.set_mark_price(SYM, D("10480"), 3)
    assert _pos(ex, a, 0)["qty"] == "0"
    ins = _pos(ex, ex.insurance_account_id, 0)
    assert abs(D(ins["entry_price"]) - D(1000) / D("0.095")) < D("1e-6")     # bankruptcy price
    assert ex.total_equity() == total
