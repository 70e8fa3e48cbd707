"""``Exchange``: the pure facade of the local GTE simulator.

It is ``core.Core`` (matching engine + accounts, which a backtester can use alone)
plus what the wire needs: parameter validation, wire rows, events, market data,
funding and liquidation.  This module holds the facade itself: orders (place, cancel,
and the in-process ``place_quote``/``cancel_quote`` fast path).  ``Exchange`` inherits the
rest, one job per module:

* event_queue.py (``EventQueue``): the queue of events (``_touch``/``_flush``,
  ``drain_events``, ``silence``, ``book_as_count``);
* order_queries.py (``OrderQueries``): an account's order rows and ids;
* market_data.py (``MarketData``): per-market wire state, book, trades, candles,
  instrument rows;
* account_admin.py (``AccountAdmin``): balance and position rows, transfers, leverage
  and margin changes;
* risk.py (``MarkFundingRisk``): mark moves, funding settled at its time, the
  housekeeping ``tick``, liquidation;
* events.py: ``Event``, the record of one published change.

No I/O, no threads, no wall clock: callers pass ``now_ms``.  Every mutating call
either raises ``SimError`` without changing anything, or applies and queues its
``Event``s (read them with ``drain_events``).

Conventions and additions to the binding contract (all additive):

* ``Exchange(config, funding_interval_ms=8h)``.  Account ids: internal fee account
  ``fee_account_id`` (1) and insurance account ``insurance_account_id`` (2); public
  accounts from 1001.  ``ExchangeConfig`` gains ``funding_rate`` (default 0.0001
  per interval), ``insurance_balance`` (1000 per asset), ``history_limit`` (final
  orders kept per account, 10000) and ``trade_history`` (trades kept per symbol).
* Extra methods: ``best_prices(symbol)``, ``mark_price(symbol)``, ``open_order_ids(account_id)``,
  ``set_funding_rate(symbol, rate, now_ms=None)``, ``position_qty(account_id, symbol, long_flag)``; for
  in-process market models ``place_quote``/``cancel_quote``/``open_quote_ids`` (prices in ticks,
  ids as ints, no rows returned), ``silence(account_ids)`` (queue none of those accounts'
  private events: a backtest reads only the public tables and its bot's account) and
  ``book_as_count()`` (count the book changes of single-order operations in ``book_changes``
  instead of queuing their events: a backtest reads the book itself).
* Order ids given as str or int are both accepted (cancel, query); trade ids too.
* ``Event`` rows are built lazily (events.py); ``place_order``/``cancel_order``
  return a private copy of the row.
* Events: ``order`` insert (status 1) then ``order`` update (2/16/32) per new
  order; cancel emits updates 4 then 8.  ``position``/``margin`` events are
  coalesced per operation and never emitted for internal accounts.  A silenced account
  (``silence``; internal accounts are) has no private event at all.
* ``query_orders`` (order_queries.py) and ``trades`` (market_data.py): newest first; with
  ``gt`` the ``count`` ids just above it, else the newest ``count`` below ``lt``.
* ``equity`` = fund + contract balance + unrealised PnL (exact); the sum over all
  accounts (``total_equity``) is invariant under every operation (transfers,
  fills, fees, funding, liquidation, mark moves).
* Money is counted in integer ledger units of 1e-12 (accounts.py); rows render it
  with ``rows.ustr``.  Margin: order margin = rdiv(qty*face/price/leverage), no fee
  reserve.  Position margin of a fill = rdiv(cost/leverage) at the order's leverage.
  An opening order is accepted (else -20001) only if the account's available balance
  is still >= 0 once it is booked: a resting one if its order margin fits; one that
  crosses is checked at its fill prices, not its limit (precheck.py: position margin
  and taker fee of each fill, order margin of the rest, its loss at the mark on a cross
  leg, both sides of self-matched fills), walking the book only when a cheap bound
  does not already fit.
* ``avg_price`` (orders) and ``entry_price`` (positions) are contract-weighted harmonic
  means, qty * face / sum(q * face / p), from the value sums of accounts.py (1e-40
  units), rounded to 1e-8: one price renders as exactly that price ("10100.0" for an
  order, as prices; "10100" for a position), mixed prices as the exact mean to 1e-8.
  A position's entry price survives partial closes (they take a pro-rata share).

Performance notes (behaviour is identical to the straightforward implementation; a
differential test against it drove these changes):

* ``place_order`` without a fill and ``cancel_order`` queue their book, position and
  margin events directly (exactly those ``_flush`` would have coalesced); operations
  with fills, batch cancels, liquidations etc. go through ``_touch``/``_flush``.
* Per-account risk cache ``Account.risk`` = (epoch, asset, cross upnl loss, snapshot of
  the non-flat positions, exact loss): computed by ``Core._risk`` with the same integer
  operations as ``accounts.cross_upnl_loss``; dropped on every
  fill of the account and, for all accounts, by ``_bump`` whenever marks, settings or
  position margins change.  It serves the margin check, margin rows and position rows.
* Position events snapshot their inputs; the liquidation price is derived when the
  row is read (``account_admin._position_row_of``).  A resting order keeps its last full row
  (``Order.tpl``) so that its cancel row is a copy with the changed fields.
* Fill costs and order margins are computed in integers (``Market.fill_cost``,
  ``Market.unit``).
* ``Core`` returns a fill report; the events of the fills are built from it afterwards
  (``_publish_fills``), in the order the fills happened.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from . import accounts as ac
from .account_admin import AccountAdmin, _position_row_of
from .accounts import LONG, SHORT, Account
from .core import BAD_VALUE, ORDER_NOT_FOUND, Fill, SimError, err, position_side
from .engine import BUY, CANCEL_PENDING, CANCELLED, CREATED, FILLED, NEW, PARTIAL, Order
from .event_queue import EventQueue
from .events import Event
from .market import ExchangeConfig, InstrumentSpec
from .market_data import MarketData, _Market
from .order_queries import OrderQueries
from .risk import MarkFundingRisk
from .rows import current_order_row, execution_row, margin_row, order_row, trade_row, ustr

FIRST_TRADE_ID = 1_000_000_001
MAX_TICKS = 100_000_000
_err = err


__all__ = ["Event", "Exchange", "ExchangeConfig", "InstrumentSpec", "SimError"]


class Exchange(EventQueue, OrderQueries, MarketData, AccountAdmin, MarkFundingRisk):
    """``Core`` (matching + ledger) behind validation, wire rows and events (see module doc)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]

    def __init__(self, config: ExchangeConfig, funding_interval_ms: int = 8 * 3600 * 1000) -> None:
        super().__init__(config)
        self.funding_interval_ms = funding_interval_ms
        self._next_trade = FIRST_TRADE_ID
        self._next_exec = 1

    def _new_market(self, spec: InstrumentSpec) -> _Market:
        c = self.config
        return _Market(spec, spec.start_price or c.start_price, c.funding_rate, c.trade_history)

    # ------------------------------------------------------------------ orders
    def _ticks(self, m: _Market, price: Any) -> int:
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise _err(BAD_VALUE, "price", "price must be a positive decimal")
        try:
            ticks, rest = divmod(price, m.tick)
        except InvalidOperation:
            raise _err(BAD_VALUE, "price", "price out of range") from None
        if rest or ticks <= 0 or ticks >= MAX_TICKS:
            raise _err(BAD_VALUE, "price", "price is not a multiple of tick_size")
        return int(ticks)

    def _order_market(self, symbol: str, side: int, close_flag: int, qty: int) -> _Market:
        """The market of a new order, its side, close_flag and qty checked (the price is checked by the caller)."""
        m = self._markets.get(symbol)
        if m is None:
            raise _err(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
        if side not in (0, 1) or isinstance(side, bool):
            raise _err(BAD_VALUE, "side")
        if close_flag not in (0, 1) or isinstance(close_flag, bool):
            raise _err(BAD_VALUE, "close_flag")
        if type(qty) is not int or qty <= 0:
            raise _err(BAD_VALUE, "qty", "qty must be a positive integer")
        return m

    def place_order(self, account_id: int, symbol: str, side: int, close_flag: int,
                    price: Decimal, qty: int, client_oid: str | None, now_ms: int) -> dict:
        """Accept a limit order, match it as taker, rest the remainder; returns its row."""
        m = self._order_market(symbol, side, close_flag, qty)
        ticks = None
        if type(price) is Decimal and price.is_finite() and price > 0:   # _ticks, inlined
            try:
                whole, rest = divmod(price, m.tick)
            except InvalidOperation:
                pass
            else:
                if not rest and 0 < whole < MAX_TICKS:
                    ticks = int(whole)
        if ticks is None:
            ticks = self._ticks(m, price)   # the general case; raises the precise error
        acct = self._accounts.get(account_id)
        if acct is None:
            raise _err(BAD_VALUE, "account", f"unknown account {account_id}")
        order, row = self._place(acct, m, side, close_flag, ticks, qty, client_oid, now_ms)
        if row is None:   # a silent account's: no event needed it
            return current_order_row(order, m.fmt, m.asset)
        return row.copy()

    def place_quote(self, account_id: int, symbol: str, side: int, close_flag: int, ticks: int,
                    qty: int, now_ms: int) -> int | None:
        """``place_order`` for an in-process market model (``flow.MarketFlow``): the price in
        ticks, no client order id and no row to return, so no price conversion and, for a
        silent account, no row at all.  Same checks, same state changes, same events.

        Returns the order's id while it rests on the book, None when it was filled at once."""
        m = self._order_market(symbol, side, close_flag, qty)
        if type(ticks) is not int or not 0 < ticks < MAX_TICKS:
            raise _err(BAD_VALUE, "price", "price is not a multiple of tick_size")
        acct = self._accounts.get(account_id)
        if acct is None:
            raise _err(BAD_VALUE, "account", f"unknown account {account_id}")
        order, _ = self._place(acct, m, side, close_flag, ticks, qty, None, now_ms)
        return order.oid if order.status != FILLED else None

    def _place(self, acct: Account, m: _Market, side: int, close_flag: int, ticks: int, qty: int,
               client_oid: str | None, now_ms: int) -> tuple[Order, dict | None]:
        """Place a validated order and queue its events; the order and its row (None when the
        account is silent: nobody reads its rows)."""
        if m.next_funding is not None and now_ms >= m.next_funding:
            self._fund_if_due(m.symbol, m, now_ms)
        order, fills = self.place(acct, m, side, close_flag, ticks, qty, client_oid, now_ms)
        silent = acct.silent
        if silent and not fills:   # the book change alone
            if self._count_book:
                self.book_changes += 1
            else:
                self._events.append(self._level_event(m, side, ticks, True))
            return order, None
        account_id, symbol, asset, fmt = acct.id, m.symbol, m.asset, m.fmt
        events = self._events
        if fills:
            # general path: fills touch several accounts and levels; _flush coalesces
            row = None
            if not silent:
                margin0 = ac.times(qty, order.unit) if close_flag == 0 else 0
                events.append(Event("order", account_id, symbol, None, "insert", order_row,
                                    (order, fmt, asset, CREATED, 0, 0, 0, margin0)))
                self._dirty_margin[(account_id, asset)] = None
                if close_flag:
                    self._dirty_pos[(account_id, symbol, position_side(side, close_flag))] = None
            self._publish_fills(m, order, fills, now_ms)
            if not silent:
                status, filled = order.status, order.filled
                row = order_row(order, fmt, asset, status, filled, order.value, order.fee,
                                order.margin)
                if status != FILLED:
                    order.tpl = row
                    events.append(Event("order", account_id, symbol, None, "update", dict, (row,)))
                else:
                    events.append(Event("order", account_id, symbol, row, "update"))
            self._flush()
            return order, row
        # no fill: queue exactly the events _flush would have coalesced
        if self._count_book:
            self.book_changes += 1
            book_event = None
        else:
            book_event = self._level_event(m, side, ticks, True)
        margin = order.margin
        events.append(Event("order", account_id, symbol, None, "insert", order_row,
                            (order, fmt, asset, CREATED, 0, 0, 0, margin)))
        order.tpl = row = order_row(order, fmt, asset, NEW, 0, 0, 0, margin)
        events.append(Event("order", account_id, symbol, None, "update", dict, (row,)))
        if book_event is not None:
            events.append(book_event)
        if close_flag:
            pos = acct.positions[(symbol, position_side(side, close_flag))]
            events.append(Event("position", account_id, symbol, None, "update",
                                _position_row_of, self._position_snapshot(acct, pos)))
        events.append(Event("margin", account_id, None, None, "update", margin_row,
                            self._margin_snapshot(acct, asset)))
        return order, row

    def _publish_fills(self, m: _Market, taker: Order, fills: list[Fill], now_ms: int) -> None:
        """Queue the executions, maker order updates and trades of a taking order's fills.

        Per fill: maker execution, maker order update, taker execution, trade (a maker
        fills at most once per taking order, so its final state is its state after it)."""
        symbol, fmt, asset = m.symbol, m.fmt, m.asset
        accounts = self._accounts
        events = self._events
        dirty_margin, dirty_pos = self._dirty_margin, self._dirty_pos
        taker_id, taker_side = taker.account_id, taker.side
        taker_loud = not accounts[taker_id].silent
        taker_pos = (taker_id, symbol, position_side(taker_side, taker.close_flag))
        cum = 0
        for maker, q, px, _cost, maker_fee, taker_fee in fills:
            trade_id = self._next_trade
            exec_id = self._next_exec
            self._next_trade = trade_id + 1
            self._next_exec = exec_id + 2
            maker_id = maker.account_id
            status, filled = maker.status, maker.filled
            if status == FILLED:
                maker.tpl = None
            if not accounts[maker_id].silent:
                events.append(Event("execution", maker_id, symbol, None, "insert", execution_row,
                                    (maker, fmt, asset, exec_id, q, px, maker_fee, True, trade_id,
                                     now_ms, status, filled)))
                events.append(Event("order", maker_id, symbol, None, "update", order_row,
                                    (maker, fmt, asset, status, filled, maker.value,
                                     maker.fee, maker.margin)))
                dirty_margin[(maker_id, asset)] = None
                dirty_pos[(maker_id, symbol, position_side(maker.side, maker.close_flag))] = None
            cum += q
            if taker_loud:
                events.append(Event("execution", taker_id, symbol, None, "insert", execution_row,
                                    (taker, fmt, asset, exec_id + 1, q, px, taker_fee, False,
                                     trade_id, now_ms, FILLED if cum == taker.qty else PARTIAL,
                                     cum)))
                dirty_margin[(taker_id, asset)] = None
                dirty_pos[taker_pos] = None
            args = (trade_id, fmt, symbol, asset, taker_side, px, q, now_ms)
            m.trades.append(args)
            events.append(Event("trade", None, symbol, None, "insert", trade_row, args))
            self._candle(m, now_ms, px, q)
        m.last_ticks = fills[-1][2]

    @staticmethod
    def _oid(order_id: Any) -> int | None:
        try:
            return int(order_id)
        except (TypeError, ValueError):
            return None

    def cancel_order(self, account_id: int, symbol: str, order_id: str, now_ms: int) -> dict:
        """Cancel one open order of the account (-20002 if unknown/final/foreign)."""
        try:
            oid = int(order_id)
        except (TypeError, ValueError):
            oid = None
        acct, m, o = self._open_order(account_id, symbol, oid)
        row = self._cancel_open(acct, m, o)
        if row is None:   # a silent account's: no event needed it
            return order_row(o, m.fmt, m.asset, CANCELLED, o.filled, o.value, o.fee, 0)
        return row.copy()

    def cancel_quote(self, account_id: int, symbol: str, oid: int, now_ms: int) -> None:
        """``cancel_order`` for an in-process market model (``flow.MarketFlow``): the id as
        ``place_quote`` returned it, no row to return.  Same checks, state changes and events."""
        acct, m, o = self._open_order(account_id, symbol, oid)
        self._cancel_open(acct, m, o)

    def _open_order(self, account_id: int, symbol: str, oid: int | None) -> tuple[Account, _Market, Order]:
        """The account, market and open order a cancel names (its errors in the exchange's order of checks)."""
        m = self._markets.get(symbol)
        if m is None:
            raise _err(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
        acct = self._accounts.get(account_id)
        if acct is None:
            raise _err(BAD_VALUE, "account", f"unknown account {account_id}")
        o = acct.open_orders.get(oid) if oid is not None else None
        if o is None or o.symbol != symbol:
            raise _err(ORDER_NOT_FOUND, "id", "order not found or not open")
        return acct, m, o

    def _cancel_open(self, acct: Account, m: _Market, o: Order) -> dict | None:
        """Cancel the account's open order ``o`` and queue its events; its final row (None when
        the account is silent: only the book event is queued, nobody reads its rows).

        The events ``_cancel`` + ``_flush`` would queue, in the same order, without coalescing."""
        if acct.silent:   # the book change alone
            self.cancel(acct, m, o.oid)
            o.tpl = None
            if self._count_book:
                self.book_changes += 1
            else:
                self._events.append(self._level_event(m, o.side, o.ticks, False))
            return None
        filled, value, fee, margin0, tpl = o.filled, o.value, o.fee, o.margin, o.tpl
        self.cancel(acct, m, o.oid)
        o.tpl = None
        account_id, symbol, asset, fmt = acct.id, m.symbol, m.asset, m.fmt
        events = self._events
        book_side, ticks = o.side, o.ticks
        if self._count_book:
            self.book_changes += 1
            book_event = None
        else:
            book_event = self._level_event(m, book_side, ticks, False)
        events.append(Event("order", account_id, symbol, None, "update", order_row,
                            (o, fmt, asset, CANCEL_PENDING, filled, value, fee, margin0)))
        if tpl is not None:
            row = tpl.copy()
            row["status"] = "8"
            if filled:
                row["filled_qty"] = str(filled)
                row["avg_price"] = fmt.avg_price(value, filled)
                row["fee"] = ustr(fee) if fee else "0"
            row["order_margin"] = "0"
        else:
            row = order_row(o, fmt, asset, CANCELLED, filled, value, fee, 0)
        events.append(Event("order", account_id, symbol, row, "update"))
        if book_event is not None:
            events.append(book_event)
        if o.close_flag:
            pos = acct.positions[(symbol, SHORT if book_side == BUY else LONG)]
            events.append(Event("position", account_id, symbol, None, "update",
                                _position_row_of, self._position_snapshot(acct, pos)))
        events.append(Event("margin", account_id, None, None, "update", margin_row,
                            self._margin_snapshot(acct, asset)))
        return row

    def _cancel(self, acct: Account, m: _Market, o: Order) -> dict:
        """Cancel ``o`` inside a larger operation (its book and balance events coalesce)."""
        filled, value, fee, margin0 = o.filled, o.value, o.fee, o.margin
        self.cancel(acct, m, o.oid)
        o.tpl = None
        touched = m.book.touched
        key = o.ticks if o.side == BUY else -o.ticks
        if key not in touched:
            touched[key] = True
        asset, fmt = m.asset, m.fmt
        row = order_row(o, fmt, asset, CANCELLED, filled, value, fee, 0)
        if not acct.silent:
            events = self._events
            events.append(Event("order", o.account_id, o.symbol, None, "update", order_row,
                                (o, fmt, asset, CANCEL_PENDING, filled, value, fee, margin0)))
            self._dirty_margin[(acct.id, asset)] = None
            if o.close_flag:
                self._dirty_pos[(acct.id, o.symbol, SHORT if o.side == BUY else LONG)] = None
            events.append(Event("order", o.account_id, o.symbol, row, "update"))
        return row.copy()

    def cancel_batch(self, account_id: int, symbol: str, order_ids: list[str],
                     now_ms: int) -> list[dict]:
        """Cancel those of ``order_ids`` that are open and the account's; their rows."""
        m = self._market(symbol)
        acct = self._acct(account_id)
        rows = []
        for oid in order_ids:
            o = acct.open_orders.get(self._oid(oid))   # type: ignore[arg-type]
            if o is not None and o.symbol == symbol:
                rows.append(self._cancel(acct, m, o))
        self._flush()
        return rows
