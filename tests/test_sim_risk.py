"""Simulator risk rules: leverage changes per leg, the margin check of crossing orders and
the cross liquidation price of hedged accounts (checked against the engine's own liquidation)."""
from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal as D
from fractions import Fraction as F

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from market_maker.sim import accounts as ac
from market_maker.sim.exchange import Exchange, ExchangeConfig, InstrumentSpec, SimError
from market_maker.sim.precheck import available_after, usage_bound

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


# ---------------------------------------------------------------- margin of crossing orders

def nearest(x: F) -> int:
    """The ledger's rounding (accounts.rdiv): nearest integer, ties toward +infinity."""
    return math.floor(x + F(1, 2))


def units(x: F) -> int:
    """A settle-currency amount in ledger units of 1e-12."""
    return nearest(x * 10**12)


def _available(ex: Exchange, acct: int) -> int:
    """Available balance in ledger units (exact: the row has 12 decimals)."""
    return int(D(ex.pc_account_rows(acct, "BTC")[0]["available"]) * 10**12)


ASKS = ((300, "5000"), (300, "6000.5"), (400, "8000"))   # all below the mark (10000)


def _asks(ex: Exchange, maker: int) -> None:
    for q, p in ASKS:
        ex.place_order(maker, SYM, 0, 0, D(p), q, None, 1)


def _need() -> int:
    """Hand count of what a buy of 1500 at 20000 books over ASKS at 10x: position margin
    and taker fee per fill, order margin of the 500 resting at 20000."""
    costs = [units(F(q) / F(p)) for q, p in ASKS]
    return sum(nearest(F(c, 10)) + nearest(c * F(75, 100_000)) for c in costs) + \
        units(F(500) / 20000 / 10)


def test_a_buy_sweeping_far_below_its_limit_is_refused_when_its_fills_do_not_fit() -> None:
    ex = _ex()
    a, w = ex.open_account("a", D("0.01")), ex.open_account("w", D(100))
    ex.place_order(w, SYM, 0, 0, D(5000), 1000, None, 1)
    ex.drain_events()
    # at the limit the margin is 1000/20000/10 = 0.005; the fill books 0.2/10 + fee 0.00015
    with pytest.raises(SimError) as err:
        ex.place_order(a, SYM, 1, 0, D(20000), 1000, None, 2)
    assert (err.value.code, err.value.param) == (-20001, "qty")
    assert ex.drain_events() == [] and ex.order_book(SYM, 5)["asks"] == [["5000.0", "1000"]]
    assert _available(ex, a) == 10**10 and ex.position_qty(a, SYM, 1) == (0, 0)


def test_a_crossing_buy_books_exactly_what_was_checked() -> None:
    need = _need()
    for spare, accepted in ((0, True), (-1, False)):
        ex = _ex()
        a, w = ex.open_account("a", D(need + spare) / 10**12), ex.open_account("w", D(100))
        _asks(ex, w)
        if not accepted:
            with pytest.raises(SimError):
                ex.place_order(a, SYM, 1, 0, D(20000), 1500, None, 2)
            assert len(ex.order_book(SYM, 5)["asks"]) == 3
            continue
        row = ex.place_order(a, SYM, 1, 0, D(20000), 1500, None, 2)
        assert (row["status"], row["filled_qty"]) == ("16", "1000")
        assert _available(ex, a) == 0
        pos = _pos(ex, a, 1)
        margins = sum(nearest(F(units(F(q) / F(p)), 10)) for q, p in ASKS)
        assert int(D(pos["pos_margin"]) * 10**12) == margins
        assert row["order_margin"] == str(D(units(F(500) / 20000 / 10)) / 10**12)


def test_a_buy_above_the_mark_counts_its_loss_at_the_mark() -> None:
    ex = _ex()
    w = ex.open_account("w", D(100))
    ex.place_order(w, SYM, 0, 0, D(12500), 1000, None, 1)
    # cost 0.08, margin 0.008, fee 0.00006; worth 0.1 at the mark 10000: a loss of 0.02
    need = D("0.008") + D("0.00006") + D("0.02")
    poor = ex.open_account("poor", need - D("1e-12"))
    with pytest.raises(SimError):
        ex.place_order(poor, SYM, 1, 0, D(12500), 1000, None, 2)
    a = ex.open_account("a", need)
    ex.place_order(a, SYM, 1, 0, D(12500), 1000, None, 2)
    assert _available(ex, a) == 0


def _usage(balance: D, script: Callable[[Exchange, int, int], None]) -> int:
    """Ledger units the account's balance loses to ``script`` (available before - after)."""
    ex = _ex()
    a, w = ex.open_account("a", balance), ex.open_account("w", D(100))
    script(ex, a, w)
    return int(balance * 10**12) - _available(ex, a)


def _self_match(ex: Exchange, a: int, w: int) -> None:
    """a holds a long, rests a close and an opening sell, then buys through all of them."""
    ex.place_order(w, SYM, 0, 0, D(9000), 50, None, 1)
    ex.place_order(a, SYM, 1, 0, D(9000), 50, None, 1)            # long 50 at 9000
    ex.place_order(a, SYM, 0, 1, D("9100.5"), 30, None, 2)        # close 30 at 9100.5
    ex.place_order(a, SYM, 0, 0, D(9200), 100, None, 2)           # open short 100 at 9200
    ex.place_order(w, SYM, 0, 0, D("9300.5"), 200, None, 2)
    ex.set_mark_price(SYM, D(9100), 3)
    row = ex.place_order(a, SYM, 1, 0, D(12000), 400, None, 4)
    assert row["filled_qty"] == "330"


def test_self_match_is_checked_with_both_sides_of_each_fill() -> None:
    used = _usage(D(1), _self_match)
    _usage(D(used) / 10**12, _self_match)                         # exactly fits: accepted
    ex = _ex()
    a, w = ex.open_account("a", D(used - 1) / 10**12), ex.open_account("w", D(100))
    with pytest.raises(SimError) as err:
        _self_match(ex, a, w)
    assert err.value.code == -20001
    assert ex.position_qty(a, SYM, 1) == (50, 20) and ex.position_qty(a, SYM, 0) == (0, 0)


place_op = st.tuples(st.just("place"), st.integers(0, 2), st.integers(0, 1),
                     st.sampled_from([0, 0, 0, 1]), st.integers(-300, 3000), st.integers(1, 110))
other_op = st.one_of(
    st.tuples(st.just("cancel"), st.integers(0, 2), st.integers(0, 50)),
    st.tuples(st.just("mark"), st.integers(16_000, 24_000)),
    st.tuples(st.just("leverage"), st.integers(0, 2), st.integers(1, 2),
              st.sampled_from([None, 0, 1]), st.integers(1, 100)))


def _predicted(ex: Exchange, acct_id: int, side: int, price: D, qty: int) -> int | None:
    """``precheck.available_after`` of an opening order (None if it does not cross);
    checks on the way that ``precheck.usage_bound`` bounds what it takes."""
    bid, ask = ex.best_prices(SYM)
    if not (ask is not None and price >= ask if side else bid is not None and price <= bid):
        return None
    acct, m = ex.account(acct_id), ex.market(SYM)
    s = acct.setting(SYM, D(10))
    lev = s.leverage(1 if side else 0)
    ticks, unit = int(price / m.tick), m.unit(int(price / m.tick), lev)
    after = available_after(acct, m, side, ticks, qty, unit, ex._lev_rate(lev),
                            ex._maker_rate, ex._taker_rate, ex._lev_rate, s.margin_mode == 1,
                            ex._inv_marks, ac.cross_upnl_loss(acct, "BTC", ex._inv_marks))
    leg = acct.positions.get((SYM, 1 if side else 0))
    worst = int((ask if side else price) / m.tick)
    bound = usage_bound(m, qty, worst, unit, leg.cost if leg else 0)
    assert _available(ex, acct_id) - after <= bound
    return after


def _max_qty(ex: Exchange, acct: int, side: int, price: D) -> int:
    """Contracts whose order margin at ``price`` is the account's whole available balance."""
    s = ex.setting_row(acct, SYM)
    lev = s["cross_leverage"] if s["margin_mode"] == "1" else \
        s["bid_leverage"] if side else s["ask_leverage"]
    return int(D(_available(ex, acct)) / 10**12 * D(lev) * price)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(place_op, place_op, place_op, other_op), min_size=10, max_size=40),
       st.lists(st.integers(1, 1000), min_size=3, max_size=3),
       st.sampled_from([("-0.00025", "0.00075"), ("0.001", "0.002"), ("-0.001", "-0.0005"),
                        ("1", "1"), ("-1", "-1"), ("0.5", "-1")]))
def test_available_is_never_negative_after_an_accepted_opening_order(
        ops: list[tuple], balances: list[int], fees: tuple[str, str]) -> None:
    """Orders of up to 110 % of what the limit price allows, priced up to 1500 USD through
    the touch of a book of 150 USD steps (self-matches included), with mark and leverage
    changes in between, for several (maker, taker) fee rates."""
    ex = _ex(maker_fee=D(fees[0]), taker_fee=D(fees[1]))
    whale = ex.open_account("whale", D(50))
    for i in range(1, 7):
        ex.place_order(whale, SYM, 1, 0, D(10000 - 150 * i), 40 * i, None, 0)
        ex.place_order(whale, SYM, 0, 0, D(10000 + 150 * i), 40 * i, None, 0)
    accts = [ex.open_account(f"p{i}", D(b) / 100_000) for i, b in enumerate(balances)]
    for now, op in enumerate(ops, 1):
        try:
            if op[0] == "place":
                _, i, side, close, off, pct = op
                bid, ask = ex.best_prices(SYM)
                touch = (ask if side else bid) or D(10000)
                price = max(touch + D(off if side else -off) / 2, D("0.5"))
                if close:
                    qty = ex.position_qty(accts[i], SYM, 1 - side)[1] * pct // 110
                else:
                    qty = _max_qty(ex, accts[i], side, price) * pct // 100
                qty = max(qty, 1)
                predicted = None if close else _predicted(ex, accts[i], side, price, qty)
                try:
                    ex.place_order(accts[i], SYM, side, close, price, qty, None, now)
                except SimError:
                    assert predicted is None or predicted < 0
                    raise
                if not close:
                    assert _available(ex, accts[i]) >= 0
                    # the walk predicted exactly what was booked (self-matches included)
                    assert predicted is None or predicted == _available(ex, accts[i])
            elif op[0] == "cancel":
                ids = sorted(ex.open_order_ids(accts[op[1]]))
                if ids:
                    ex.cancel_order(accts[op[1]], SYM, ids[op[2] % len(ids)], now)
            elif op[0] == "mark":
                ex.set_mark_price(SYM, D(op[1]) / 2, now)
            else:
                _, i, mode, flag, lev = op
                ex.change_leverage(accts[i], SYM, mode, flag, D(lev), now)
        except SimError as err:
            assert err.code in (-10013, -20001, -20003)


# ---------------------------------------------------------------- cross liquidation price

OTHER = InstrumentSpec(symbol="BTC_USD_Q", symbol_id=2)     # a second symbol settled in BTC


def _open(ex: Exchange, a: int, w: int, side: int, qty: int, price: str, sym: str = SYM) -> None:
    """``a`` rests an opening order that the rich ``w`` takes at once."""
    ex.place_order(a, sym, side, 0, D(price), qty, None, 1)
    assert ex.place_order(w, sym, 1 - side, 0, D(price), qty, None, 1)["status"] == "32"


def _legs(ex: Exchange, a: int, sym: str = SYM) -> list[dict]:
    return [r for r in ex.position_rows(a) if r["symbol"] == sym and r["qty"] != "0"]


def _liquidation_matches_the_engine(ex: Exchange, a: int, sym: str = SYM) -> str:
    """The shown price against ``set_mark_price``: a mark just inside keeps the account's
    cross legs in ``sym``, one just beyond liquidates them (none if the price is 0)."""
    legs = _legs(ex, a, sym)
    assert legs and len({r["liquidation_price"] for r in legs}) == 1, legs
    liq = D(legs[0]["liquidation_price"])
    net = sum(int(r["qty"]) * (1 if r["side"] == "1" else -1) for r in legs)
    if liq == 0:
        for mark in (D("0.5"), D(10**7), D(10000)):
            ex.set_mark_price(sym, mark, 2)
            assert [r["qty"] for r in _legs(ex, a, sym)] == [r["qty"] for r in legs], mark
        return "never"
    if liq == ex.mark_price(sym) and net >= 0:       # at or below maintenance at every price
        ex.set_mark_price(sym, liq, 2)
        assert _legs(ex, a, sym) == []
        return "now"
    step = liq / 10**7
    inside, beyond = (liq + step, liq - step) if net > 0 else (liq - step, liq + step)
    ex.set_mark_price(sym, inside, 2)
    assert len(_legs(ex, a, sym)) == len(legs), (liq, inside)
    ex.set_mark_price(sym, beyond, 3)
    assert _legs(ex, a, sym) == [], (liq, beyond)
    return "below" if net > 0 else "above"


def _hedged(balance: str, long: tuple[int, str], short: tuple[int, str]) -> tuple[Exchange, int]:
    ex = _ex(instruments=(InstrumentSpec(), OTHER))
    a, w = ex.open_account("a", D(balance)), ex.open_account("w", D(1000))
    if long[0]:
        _open(ex, a, w, 1, *long)
    if short[0]:
        _open(ex, a, w, 0, *short)
    return ex, a


def test_a_fully_hedged_cross_account_shows_no_liquidation_price() -> None:
    for short_price in ("10000", "12500", "9000"):
        ex, a = _hedged("0.03", (1000, "10000"), (1000, short_price))
        assert [r["liquidation_price"] for r in _legs(ex, a)] == ["0", "0"]
        assert _liquidation_matches_the_engine(ex, a) == "never"


def test_partly_hedged_and_unhedged_cross_accounts_liquidate_where_shown() -> None:
    cases = [("0.02", (1000, "10000"), (0, "")),            # plain long
             ("0.02", (0, ""), (1000, "10000")),            # plain short
             ("0.02", (1000, "10000"), (600, "10000")),     # net long 400
             ("0.03", (1000, "10500"), (700, "9500")),
             ("0.02", (400, "10000"), (1000, "10000")),     # net short 600
             ("0.02", (300, "9000"), (1000, "11000.5"))]
    seen = []
    for balance, long, short in cases:
        ex, a = _hedged(balance, long, short)
        seen.append(_liquidation_matches_the_engine(ex, a))
    assert seen == ["below", "above", "below", "below", "above", "above"]


def _mixed() -> tuple[Exchange, int, int]:
    """``a``: cross legs in SYM and a losing cross short in OTHER; ``iso``: cross legs in
    SYM and an isolated long in OTHER."""
    ex, a = _hedged("0.05", (1000, "10000"), (500, "10000"))
    w = ex.open_account("w2", D(1000))
    _open(ex, a, w, 0, 800, "10000", OTHER.symbol)
    ex.set_mark_price(OTHER.symbol, D(10500), 1)          # a loses 800/10000 - 800/10500
    iso = ex.open_account("iso", D("0.05"))
    ex.change_leverage(iso, OTHER.symbol, 2, None, D(5), 1)
    _open(ex, iso, w, 1, 1000, "10500", OTHER.symbol)     # its margin is set aside
    _open(ex, iso, w, 1, 1000, "10000")
    _open(ex, iso, w, 0, 400, "10000")
    return ex, a, iso


def test_cross_liquidation_price_counts_other_symbols_and_isolated_margin() -> None:
    ex, a, _ = _mixed()
    assert _liquidation_matches_the_engine(ex, a) == "below"
    ex, _, iso = _mixed()
    assert _liquidation_matches_the_engine(ex, iso) == "below"
    assert len(_legs(ex, iso, OTHER.symbol)) == 1         # the isolated leg is not cross


def test_an_account_below_maintenance_at_every_price_shows_the_mark() -> None:
    ex, a = _hedged("0.031", (1000, "10000"), (0, ""))
    w = ex.account_ids()[-1]
    ex.place_order(a, SYM, 0, 0, D(5000), 1000, None, 2)   # rests (no bid), fills as maker:
    ex.place_order(w, SYM, 1, 0, D(5000), 1000, None, 2)   # short cost 0.2, worth 0.1 at 10000
    assert [r["liquidation_price"] for r in _legs(ex, a)] == ["10000", "10000"]
    assert _liquidation_matches_the_engine(ex, a) == "now"


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(0, 3000), st.integers(16_000, 24_000), st.integers(0, 3000),
       st.integers(16_000, 24_000), st.integers(1, 500))
def test_cross_liquidation_price_agrees_with_the_engine(
        long_qty: int, long_ticks: int, short_qty: int, short_ticks: int, balance: int) -> None:
    assume(long_qty or short_qty)
    ex = _ex()
    a, w = ex.open_account("a", D(balance) / 10_000), ex.open_account("w", D(1000))
    try:
        if long_qty:
            _open(ex, a, w, 1, long_qty, str(D(long_ticks) / 2))
        if short_qty:
            _open(ex, a, w, 0, short_qty, str(D(short_ticks) / 2))
    except SimError:
        assume(False)
    _liquidation_matches_the_engine(ex, a)


def test_a_fill_at_an_unchanged_mark_is_still_checked_for_liquidation() -> None:
    # the housekeeping skips a liquidation check when nothing it reads has changed since the last one: a fill
    # changes positions and balances without moving the mark, so the next check must run
    ex = _ex()
    maker = ex.open_account("maker", D("0.01"))
    taker = ex.open_account("taker", D("10"))
    ex.set_mark_price(SYM, D("10000"), 1)   # a check: nothing to liquidate
    ex.tick(1)
    # a resting bid 30 % above the mark (the order margin fits), then hit: long 900 at 13000, marked at 10000
    ex.place_order(maker, SYM, 1, 0, D("13000"), 900, None, 2)
    assert ex.place_order(taker, SYM, 0, 0, D("13000"), 900, None, 2)["status"] == "32"
    assert ex.position_qty(maker, SYM, 1)[0] == 900
    ex.tick(3)   # same mark, same epoch: only the fill tells the check to run
    assert ex.position_qty(maker, SYM, 1)[0] == 0
