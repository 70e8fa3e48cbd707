"""Mark, funding and risk of the ``Exchange`` facade: mark moves, funding settled at its
time, the housekeeping ``tick`` and liquidation.

``MarkFundingRisk`` is a mixin of ``Exchange`` (it queues its events with ``Exchange._touch``,
``_flush`` and ``_events``, cancels through ``Exchange._cancel`` and pushes
``MarketData.instrument_row``).

* Funding: longs pay shorts ``rate * qty * face / mark`` per interval (rounding residue ->
  insurance), at the mark and on the positions held at its time: a funding due is settled
  before anything at or after that time (an order, a mark move, the housekeeping) changes
  them, and the instrument row is pushed then.
* Liquidation formulas: see accounts.py.  The checks run after every mark move, funding,
  leverage change and ``tick``.  An isolated position at or below maintenance is first
  topped up when its ``auto_flag`` is set, then (still at or below) taken over by the
  insurance account at its bankruptcy value (at the mark if that value is not positive).
  Cross liquidation closes all cross positions of the asset at mark into the insurance
  account, which also takes the remaining cross equity.  Either first cancels the
  account's open orders in the symbols concerned.
"""
from __future__ import annotations

from decimal import Decimal

from . import accounts as ac
from .accounts import FINE, ISOLATED, LONG, SHORT, Account, Position
from .core import BAD_VALUE, Core, err
from .events import Event
from .market_data import _Market

_err = err


class MarkFundingRisk(Core):
    """Mark moves, funding, housekeeping and liquidation (a mixin of ``Exchange``)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]
    funding_interval_ms: int

    def set_mark_price(self, symbol: str, price: Decimal, now_ms: int) -> None:
        """Move the mark (= index) price; runs the liquidation checks."""
        m = self._market(symbol)
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise _err(BAD_VALUE, "price")
        self._fund_if_due(symbol, m, now_ms)
        m.mark = price
        m.im = self._inv_marks[symbol] = ac.inverse_mark(m.face, price)
        self._bump()
        self._check_liquidations(now_ms)
        self._flush()

    def set_funding_rate(self, symbol: str, rate: Decimal, now_ms: int | None = None) -> None:
        """Rate applied at the next funding time. With ``now_ms`` it is announced at once (the instrument row
        is pushed) and a funding already due is paid at the rate announced for it first."""
        m = self._market(symbol)
        if now_ms is not None:
            self._fund_if_due(symbol, m, now_ms)
        m.funding_rate = rate
        if now_ms is not None:
            self._events.append(Event("instrument", None, symbol, self.instrument_row(symbol, now_ms), "update"))

    def apply_funding(self, symbol: str, rate: Decimal, now_ms: int, funding_time: int | None = None) -> None:
        """Longs pay shorts ``rate * qty * face / mark`` (rounding residue -> insurance). Each payment is
        also an internal ``funding`` event of its account (no wire table: GTE pushes none), for in-process
        consumers such as the backtester's journal."""
        m = self._market(symbol)
        rate_n, rate_d = rate.as_integer_ratio()
        residue = 0
        for acct in self._accounts.values():
            for side in (LONG, SHORT):
                pos = acct.positions.get((symbol, side))
                if pos is None or not pos.qty:
                    continue
                pay = ac.rdiv(pos.qty * m.im * rate_n, FINE * rate_d)
                w = acct.wallet(m.asset)
                if side == LONG:
                    w.balance -= pay
                    residue += pay
                else:
                    w.balance += pay
                    residue -= pay
                self._touch(acct, m.asset)
                if not acct.internal and not acct.silent:
                    self._events.append(Event("funding", acct.id, symbol, {
                        "symbol": symbol, "side": side, "qty": pos.qty, "rate": rate,
                        "amount": ac.to_decimal(-pay if side == LONG else pay),
                        "funding_time": now_ms if funding_time is None else funding_time}, "insert"))
        self._insurance.wallet(m.asset).balance += residue
        self._ledger_seq += 1
        self._check_liquidations(now_ms)
        self._flush()

    def tick(self, now_ms: int) -> None:
        """Housekeeping: funding when due, then liquidation checks."""
        for symbol, m in self._markets.items():
            if m.next_funding is None:
                m.next_funding = self._next_funding_time(m, now_ms)
            elif now_ms >= m.next_funding:
                self._fund_if_due(symbol, m, now_ms)
        self._check_liquidations(now_ms)
        self._flush()

    def _next_funding_time(self, m: _Market, now_ms: int) -> int:
        if m.next_funding is not None:
            return m.next_funding
        return (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms

    def _fund_if_due(self, symbol: str, m: _Market, now_ms: int) -> None:
        """A funding is for the positions held, at the mark, at its time: it is settled before anything at or
        after that time (an order, a mark move, the housekeeping) changes them. The instrument row is pushed
        at once, its ``funding_rate_time`` moved on and its ``mark_price`` the one the payments used."""
        due = m.next_funding
        if due is None or now_ms < due:
            return
        m.next_funding = (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms
        self.apply_funding(symbol, m.funding_rate, now_ms, funding_time=due)
        self._events.append(Event("instrument", None, symbol, self.instrument_row(symbol, now_ms), "update"))

    def _check_liquidations(self, now_ms: int) -> None:
        """Liquidate the positions at or below their maintenance margin. A check finding the marks,
        settings, balances and positions of the last check that changed nothing is skipped: the
        simulator checks after every mark move and at every housekeeping step, mostly with no fill between."""
        before = (self._epoch, self._ledger_seq)
        if before == self._liquidations_checked:
            return
        mmr, marks = self._mmr_ratio, self._inv_marks
        for acct in list(self._accounts.values()):
            if acct.internal or not acct.positions:
                continue
            for pos in list(acct.positions.values()):
                if not pos.qty:
                    continue
                s = acct.settings.get(pos.symbol)
                if s is None or s.margin_mode != ISOLATED:
                    continue
                im = marks[pos.symbol]
                if ac.at_or_below(pos.margin * FINE + pos.upnl(im), pos.cost, mmr):
                    if pos.auto_flag:
                        self._auto_top_up(acct, pos, s, im)
                    if ac.at_or_below(pos.margin * FINE + pos.upnl(im), pos.cost, mmr):
                        self._liquidate_isolated(acct, pos, now_ms)
            for asset in self._assets:
                equity, cost, crosses = ac.cross_state(acct, asset, marks)
                if crosses and ac.at_or_below(equity, cost, mmr):
                    self._liquidate_cross(acct, asset, crosses, now_ms)
        unchanged = (self._epoch, self._ledger_seq) == before
        self._liquidations_checked = before if unchanged else None

    def _auto_top_up(self, acct: Account, pos: Position, s: ac.Setting, im: int) -> None:
        """Top the margin up to the initial margin, as far as the available balance allows."""
        need = ac.pos_margin(pos.cost, s.leverage(pos.side)) * FINE \
            - (pos.margin * FINE + pos.upnl(im))                    # mark units
        add = min(-(-need // FINE), ac.available(acct, pos.asset, self._inv_marks))
        if add > 0:
            pos.margin += add
            acct.wallet(pos.asset).pos_margin += add
            self._bump()
            self._touch(acct, pos.asset, pos)

    def _cancel_all(self, acct: Account, symbols: set[str]) -> None:
        for o in list(acct.open_orders.values()):
            if o.symbol in symbols:
                self._cancel(acct, self._markets[o.symbol], o)

    def _take_over(self, acct: Account, pos: Position, cost: int) -> None:
        """Move ``pos`` to the insurance account with exit/entry value ``cost``."""
        qty = pos.qty
        pnl, released = pos.reduce(qty, cost)
        w = acct.wallet(pos.asset)
        w.pos_margin -= released
        w.balance += pnl
        self._insurance.position(pos.symbol, pos.side, pos.asset).add(
            qty, cost, 0, cost * ac.VALUE_PER_UNIT)
        self._bump()
        self._touch(acct, pos.asset, pos)

    def _liquidate_isolated(self, acct: Account, pos: Position, now_ms: int) -> None:
        self._cancel_all(acct, {pos.symbol})
        bankrupt = pos.cost + pos.margin if pos.side == LONG else pos.cost - pos.margin
        if bankrupt <= 0:
            bankrupt = ac.rdiv(pos.qty * self._inv_marks[pos.symbol], FINE)
        self._take_over(acct, pos, bankrupt)

    def _liquidate_cross(self, acct: Account, asset: str, crosses: list[Position],
                         now_ms: int) -> None:
        self._cancel_all(acct, {s for s, m in self._markets.items() if m.asset == asset})
        for pos in crosses:
            self._take_over(acct, pos, ac.rdiv(pos.qty * self._inv_marks[pos.symbol], FINE))
        equity, _, _ = ac.cross_state(acct, asset, self._inv_marks)
        # no cross position is left: the equity is balance - isolated margins, whole units
        equity //= FINE
        w = acct.wallet(asset)
        w.balance -= equity
        self._insurance.wallet(asset).balance += equity
        self._touch(acct, asset)
