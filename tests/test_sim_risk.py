"""Simulator risk rules: leverage changes per leg, the margin check of crossing orders and
the cross liquidation price of hedged accounts (checked against the engine's own liquidation)."""
from __future__ import annotations

from decimal import Decimal as D

from market_maker.sim.exchange import Exchange, ExchangeConfig

SYM = "BTC_USD"


def _ex(**kw: object) -> Exchange:
    return Exchange(ExchangeConfig(**kw))   # type: ignore[arg-type]


def _trade(ex: Exchange, buyer: int, seller: int, price: str, qty: int,
           buy_close: int = 0, sell_close: int = 0) -> None:
    """seller rests, buyer takes."""
    ex.place_order(seller, SYM, 0, sell_close, D(price), qty, None, 1)
    assert ex.place_order(buyer, SYM, 1, buy_close, D(price), qty, None, 1)["status"] == "32"


def _pos(ex: Exchange, acct: int, side: int) -> dict:
    return next(r for r in ex.position_rows(acct) if r["symbol"] == SYM and r["side"] == str(side))


# ---------------------------------------------------------------- leverage per leg

def test_changing_one_isolated_legs_leverage_leaves_the_other_leg_alone() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D(1)), ex.open_account("w", D(100))
    ex.change_leverage(a, SYM, 2, None, D(10), 0)
    _trade(ex, a, w, "10000", 1000)                 # long: cost 0.1, margin 0.01
    _trade(ex, w, a, "10000", 1000)                 # short: cost 0.1, margin 0.01
    ex.increase_margin(a, SYM, 0, 1, D("0.01"), 2)  # short margin 0.02: liq ~12422
    ex.set_mark_price(SYM, D(11500), 3)             # without the added margin (liq ~11050) it dies
    short = _pos(ex, a, 0)
    assert short["qty"] == "1000" and short["pos_margin"] == "0.02"
    ex.drain_events()
    ex.change_leverage(a, SYM, 2, 1, D(5), 4)       # the long only
    assert _pos(ex, a, 0) == short                  # margin, liquidation price, qty unchanged
    long = _pos(ex, a, 1)
    assert (long["leverage"], long["pos_margin"]) == ("5", "0.02")
    assert ex.pc_account_rows(a, "BTC")[0]["pos_margin"] == "0.04"
    pushed = [e.row["side"] for e in ex.drain_events() if e.kind == "position"]
    assert pushed == ["1"]                          # only the changed leg is pushed


def test_cross_leverage_re_margins_both_legs() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D(1)), ex.open_account("w", D(100))
    _trade(ex, a, w, "10000", 1000)
    _trade(ex, w, a, "12500", 1000)                 # short cost 0.08
    ex.change_leverage(a, SYM, 1, None, D(4), 1)
    assert (_pos(ex, a, 1)["pos_margin"], _pos(ex, a, 0)["pos_margin"]) == ("0.025", "0.02")
    assert _pos(ex, a, 1)["leverage"] == _pos(ex, a, 0)["leverage"] == "4"
