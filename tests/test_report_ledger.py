"""The report's net PnL against the simulator's own ledger, to the 1e-12 unit.

A run is played on ``sim.exchange.Exchange`` (fills on both legs of a two-way position, as
maker and as taker, opens and partial closes at prices whose inverses do not terminate, mark
moves, a funding payment) and journaled the way the bot journals it: every execution of our
account, the market (mid and mark) at each step, the exchange's margin and position rows.
The report must find the exchange's equity change exactly, with nothing unexplained.
"""
from __future__ import annotations

from decimal import Decimal as D

from market_maker.journal.report.attribution import LEDGER_SCALE, SCALE
from market_maker.journal.report.reader import load_run, open_journal
from market_maker.journal.report.summary import build
from market_maker.sim.exchange import Exchange, ExchangeConfig

from .journal_builder import JournalBuilder

SYM = "BTC_USD"
BUY, SELL = 1, 0


class Recorder:
    """Plays the journal writer: our executions, positions, margins, and the market each step."""

    def __init__(self, ex: Exchange, me: int, journal: JournalBuilder) -> None:
        self.ex, self.me, self.j = ex, me, journal
        self.ts = 1_000

    def market(self, reason: str = "sample") -> None:
        bid, ask = self.ex.best_prices(SYM)
        self.j.market(self.ts, str((bid + ask) / 2), str(self.ex.mark_price(SYM)), reason)

    def drain(self) -> None:
        for kind, account, _, row, _ in self.ex.drain_events():
            if account != self.me:
                continue
            if kind == "execution":
                self.j.fill(self.ts, "buy" if row["side"] == "1" else "sell", int(row["last_qty"]), row["last_price"],
                            row["fee"], int(row["maker_flag"]), int(row["close_flag"]), row["order_id"])
            elif kind == "position":
                self.j.position(self.ts, "long" if row["side"] == "1" else "short", int(row["qty"]))
        self.j.margin(self.ts, self.ex.margin_rows(self.me)[0]["total"])

    def step(self, action) -> None:
        self.ts += 1_000
        self.market("fill")           # the mid just before our fills
        action()
        self.drain()
        self.ts += 500
        self.market()
        self.j.margin(self.ts, self.ex.margin_rows(self.me)[0]["total"])


def test_net_pnl_is_the_simulators_equity_change_to_the_unit(tmp_path):
    ex = Exchange(ExchangeConfig(start_price=D("10000")))
    me = ex.open_account("bot", D("1"))
    other = ex.open_account("flow", D("50"))
    j = JournalBuilder(tmp_path / "journal.sqlite").run(started_ms=0, stopped_ms=20_000)
    ex.place_order(other, SYM, BUY, 0, D("9990"), 50, None, 1)      # a book with both sides: a mid
    ex.place_order(other, SYM, SELL, 0, D("10010"), 50, None, 1)
    ex.drain_events()
    rec = Recorder(ex, me, j)
    rec.market()
    rec.drain()                                                      # the first equity row

    def o(account, side, close, price, qty):
        return lambda: ex.place_order(account, SYM, side, close, D(price), qty, None, rec.ts)

    def both(*actions):
        return lambda: [a() for a in actions]

    rec.step(both(o(other, SELL, 0, "10000.5", 300), o(me, BUY, 0, "10000.5", 300)))     # long 300, taker
    rec.step(both(o(me, SELL, 0, "10003", 200), o(other, BUY, 0, "10003", 200)))         # short 200, maker
    rec.step(both(lambda: ex.set_mark_price(SYM, D("10001.37"), rec.ts), o(other, BUY, 0, "9995", 5)))  # mid moves
    rec.step(both(o(me, SELL, 1, "10007.5", 120), o(other, BUY, 0, "10007.5", 120)))     # close 120 long
    before = D(ex.margin_rows(me)[0]["total"])
    rec.step(lambda: ex.apply_funding(SYM, D("0.0001"), rec.ts))                         # both legs pay/receive
    j.funding(rec.ts, str(D(ex.margin_rows(me)[0]["total"]) - before))
    rec.step(both(lambda: ex.set_mark_price(SYM, D("9998.13"), rec.ts), o(other, SELL, 0, "10001", 5)))
    rec.step(both(o(other, SELL, 0, "9998.5", 70), o(me, BUY, 1, "9998.5", 70)))         # close 70 short, taker
    rec.step(both(o(me, BUY, 0, "9996", 33), o(other, SELL, 0, "9996", 33)))            # long 213, maker
    rec.step(lambda: ex.set_mark_price(SYM, D("10002.71"), rec.ts))
    assert ex.position_qty(me, SYM, 1)[0] == 213 and ex.position_qty(me, SYM, 0)[0] == 130
    j.close()

    db = open_journal(j.path)
    data = load_run(db, 1)
    db.close()
    a = build(data).attribution
    change = D(data.equity_last[1]) - D(data.equity_first[1])
    assert change != 0 and len(data.fills) == 5
    assert a.exchange_change == change * SCALE
    assert a.unexplained == 0
    assert a.net == a.spread + a.inventory + a.mark_basis + a.fees + a.funding + a.rounding
    assert a.net == change * SCALE
    assert a.rounding != 0 and abs(a.rounding) < 20 * SCALE // LEDGER_SCALE    # a few ledger units at most
    assert a.funding != 0 and a.mark_basis != 0 and a.inventory != 0 and a.net_end == 213 - 130
