"""Property tests of the simulator core over random operation sequences."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal as D

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_maker.sim.exchange import Exchange, ExchangeConfig, SimError

SYM = "BTC_USD"
TICK = D("0.5")
BALANCES = (D("0.002"), D("0.01"), D("0.2"))

place = st.tuples(st.just("place"), st.integers(0, 3), st.integers(0, 1), st.integers(0, 1),
                  st.integers(-8, 8), st.integers(1, 60))
cancel = st.tuples(st.just("cancel"), st.integers(0, 3), st.integers(0, 50))
mark = st.tuples(st.just("mark"), st.integers(14_000, 26_000) | st.integers(19_000, 21_000))
funding = st.tuples(st.just("funding"), st.integers(-100, 100))
leverage = st.tuples(st.just("leverage"), st.integers(0, 2), st.integers(1, 2),
                     st.sampled_from([None, 0, 1]), st.integers(1, 100))
margin = st.tuples(st.just("margin"), st.integers(0, 2), st.integers(0, 1), st.integers(0, 1),
                   st.integers(1, 500))
transfer = st.tuples(st.just("transfer"), st.integers(0, 2), st.integers(1, 2),
                     st.integers(1, 1000))
trading_ops = st.one_of(place, place, place, cancel)
any_ops = st.one_of(place, place, place, cancel, mark, funding, leverage, margin, transfer)

SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _apply(ex: Exchange, accts: list[int], op: tuple, now: int) -> None:
    kind = op[0]
    try:
        if kind == "place":
            _, i, side, close, off, qty = op
            ex.place_order(accts[i], SYM, side, close, (20_000 + off) * TICK, qty, None, now)
        elif kind == "cancel":
            _, i, k = op
            ids = sorted(ex.open_order_ids(accts[i]))
            if ids:
                ex.cancel_order(accts[i], SYM, ids[k % len(ids)], now)
        elif kind == "mark":
            ex.set_mark_price(SYM, op[1] * TICK, now)
        elif kind == "funding":
            ex.apply_funding(SYM, D(op[1]) / 100_000, now)
        elif kind == "leverage":
            _, i, mode, flag, lev = op
            ex.change_leverage(accts[i], SYM, mode, flag, D(lev), now)
        elif kind == "margin":
            _, i, long_flag, inc, amount = op
            ex.increase_margin(accts[i], SYM, long_flag, inc, D(amount) / 100_000, now)
        elif kind == "transfer":
            _, i, src, amount = op
            ex.transfer(accts[i], "BTC", src, 3 - src, D(amount) / 100_000)
    except SimError as err:
        assert err.code in (-10013, -20001, -20002, -20003)


def _setup() -> tuple[Exchange, list[int]]:
    """Three traders (two holding positions) and a whale quoting 1..6 ticks around 10000."""
    ex = Exchange(ExchangeConfig())
    whale = ex.open_account("whale", D(5))
    for off in range(1, 7):
        ex.place_order(whale, SYM, 1, 0, (20_000 - off) * TICK, 10 * off, None, 0)
        ex.place_order(whale, SYM, 0, 0, (20_000 + off) * TICK, 10 * off, None, 0)
    traders = [ex.open_account(f"p{i}", b) for i, b in enumerate(BALANCES)]
    ex.place_order(traders[2], SYM, 1, 0, (20_000 + 2) * TICK, 30, None, 0)   # p2 long 30
    ex.place_order(traders[1], SYM, 0, 0, (20_000 - 1) * TICK, 5, None, 0)    # p1 short 5
    ex.drain_events()
    return ex, traders + [whale]


def _check_static(ex: Exchange, accts: list[int], equity0: D) -> None:
    bid, ask = ex.best_prices(SYM)
    assert bid is None or ask is None or bid < ask, "book crossed at rest"
    assert ex.total_equity() == equity0, "equity not conserved"
    net = 0
    for a in ex.account_ids():
        for row in ex.position_rows(a):
            qty, avail = int(row["qty"]), int(row["avail_qty"])
            assert 0 <= avail <= qty
            net += qty if row["side"] == "1" else -qty
    assert net == 0, "net exposure over all accounts must be zero"
    for a in ex.account_ids():          # the ledger counts in integer units, never Decimal
        acct = ex.account(a)
        for w in acct.wallets.values():
            assert {type(w.balance), type(w.fund), type(w.order_margin),
                    type(w.pos_margin)} == {int}
        for p in acct.positions.values():
            assert {type(p.cost), type(p.margin), type(p.realised)} == {int}
        for o in acct.open_orders.values():
            assert type(o.margin) is int and type(o.fee) is int
    for a in accts:
        open_rows = ex.open_orders_of(a)
        pc = ex.pc_account_rows(a, "BTC")[0]
        reserved = sum((D(r["order_margin"]) for r in open_rows), D(0))
        assert D(pc["order_margin"]) == reserved
        pos_margin = sum((D(r["pos_margin"]) for r in ex.position_rows(a)), D(0))
        assert D(pc["pos_margin"]) == pos_margin
        assert D(pc["total"]) >= 0 or any(r["qty"] != "0" for r in ex.position_rows(a))
        for r in open_rows:
            assert 0 <= int(r["filled_qty"]) < int(r["qty"])
            assert r["status"] in ("2", "16")


@SETTINGS
@given(st.lists(any_ops, min_size=20, max_size=60))
def test_equity_conserved_and_book_sane(ops: list[tuple]) -> None:
    ex, accts = _setup()
    equity0 = ex.total_equity()
    for now, op in enumerate(ops, 1):
        _apply(ex, accts, op, now)
        _check_static(ex, accts, equity0)
        ex.drain_events()
    ex.tick(10**9)     # funding + liquidation pass
    _check_static(ex, accts, equity0)


@SETTINGS
@given(st.lists(trading_ops, min_size=20, max_size=80))
def test_fills_balance_and_positions_equal_signed_fills(ops: list[tuple]) -> None:
    ex, accts = _setup()
    buy_qty = sell_qty = trade_qty = 0
    signed: dict[tuple[int, str], int] = defaultdict(int)   # (account, "1" long/"0" short)
    for a in accts:
        for row in ex.position_rows(a):
            signed[(a, row["side"])] = int(row["qty"])
    for now, op in enumerate(ops, 1):
        _apply(ex, accts, op, now)
        for e in ex.drain_events():
            if e.kind == "trade":
                trade_qty += int(e.row["qty"])
            elif e.kind == "execution":
                q, side, close = int(e.row["last_qty"]), e.row["side"], e.row["close_flag"]
                if side == "1":
                    buy_qty += q
                else:
                    sell_qty += q
                # buy/open and sell/close act on the long side, the others on the short side
                long_side = (side == "1") == (close == "0")
                signed[(e.account_id, "1" if long_side else "0")] += q if close == "0" else -q
    assert buy_qty == sell_qty == trade_qty
    for a in accts:
        for row in ex.position_rows(a):
            assert int(row["qty"]) == signed[(a, row["side"])]


def _events(ex: Exchange) -> list[tuple]:
    return [(e.kind, e.account_id, e.symbol, e.row, e.action) for e in ex.drain_events()]


@SETTINGS
@given(st.lists(trading_ops, min_size=20, max_size=80))
def test_single_cancel_publishes_what_a_batch_of_one_does(ops: list[tuple]) -> None:
    """cancel_order queues its events directly; cancel_batch goes through the coalescing
    flush: both must publish the same rows (and leave the same state)."""
    (ex1, accts), (ex2, _) = _setup(), _setup()
    for now, op in enumerate(ops, 1):
        if op[0] == "cancel":
            _, i, k = op
            ids = sorted(ex1.open_order_ids(accts[i]))
            if ids:
                oid = ids[k % len(ids)]
                row = ex1.cancel_order(accts[i], SYM, oid, now)
                assert ex2.cancel_batch(accts[i], SYM, [oid], now) == [row]
        else:
            _apply(ex1, accts, op, now)
            _apply(ex2, accts, op, now)
        assert _events(ex1) == _events(ex2)
    for a in accts:
        assert ex1.position_rows(a) == ex2.position_rows(a)
        assert ex1.margin_rows(a) == ex2.margin_rows(a)
