"""``Exchange``: the pure facade of the local GTE simulator (engine + accounts + rows).

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
  ``set_funding_rate(symbol, rate)``, ``position_qty(account_id, symbol, long_flag)``.
* Order ids given as str or int are both accepted (cancel, query); trade ids too.
* ``Event`` is a small immutable record rather than a ``NamedTuple``: same
  attributes, unpacking and indexing as the 5-tuple, but its ``row`` dict is
  built lazily from a snapshot on first access (then cached) for speed.
  ``place_order``/``cancel_order`` return a private copy of the row.
* Events: ``order`` insert (status 1) then ``order`` update (2/16/32) per new
  order; cancel emits updates 4 then 8.  ``position``/``margin`` events are
  coalesced per operation and never emitted for internal accounts.
* ``query_orders``/``trades``: newest first; with ``gt`` the ``count`` ids just
  above it (still returned newest first), else the newest ``count`` below ``lt``.
* ``equity`` = fund + contract balance + unrealised PnL (exact); the sum over all
  accounts (``total_equity``) is invariant under every operation (transfers,
  fills, fees, funding, liquidation, mark moves).
* Margin: order margin = quantize(qty*face/price/leverage), no fee reserve.
  Position margin of a fill = quantize(cost/leverage) at the order's leverage.
  ``total`` (margin/pc rows) = balance + unrealised PnL.  Liquidation formulas:
  see accounts.py.  Cross liquidation closes all cross positions of the asset
  at mark into the insurance account, which also takes the remaining cross equity.
* Position row: ``pos_margin_ratio`` = (pos_margin + pnl) / (qty*face/mark);
  ``pos_pnl_ratio`` = pnl / pos_margin.  Changing leverage re-margins open
  positions of that side (-20001 if the increase does not fit); resting orders
  keep the margin reserved at placement.  The margin mode of a symbol cannot
  change while the account has a position or an open order in it (-10013 "mode").
* Candles are aggregated from 1-minute buckets aligned on multiples of the
  interval since the epoch; empty intervals are omitted; rows oldest first.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from . import accounts as ac
from .accounts import CROSS, ISOLATED, LONG, SHORT, ZERO, Account, Position, q12
from .engine import (BUY, CANCEL_PENDING, CANCELLED, FILLED, NEW, PARTIAL, Order, OrderBook)
from .rows import (PriceFormatter, current_order_row, dstr, execution_row, level_delete_row,
                   level_row, margin_row, order_row, position_row, trade_row)

BAD_VALUE = -10013
INSUFFICIENT_MARGIN = -20001
ORDER_NOT_FOUND = -20002
EXCEED_POSITION = -20003
_PATTERNS = {BAD_VALUE: "VALIDATE_PARAM_VALUE_ERROR", INSUFFICIENT_MARGIN: "INSUFFICIENT_MARGIN",
             ORDER_NOT_FOUND: "ORDER_NOT_FOUND", EXCEED_POSITION: "EXCEED_POSITION"}

FEE_ACCOUNT_ID = 1
INSURANCE_ACCOUNT_ID = 2
FIRST_ACCOUNT_ID = 1001
FIRST_ORDER_ID = 122702086658933120
FIRST_TRADE_ID = 1_000_000_001
MINUTE_MS = 60_000
DAY_MS = 86_400_000
MAX_CANDLE_MINUTES = 100_000
RATIO_Q = Decimal("1e-8")
MAX_TICKS = 100_000_000


class SimError(Exception):
    """A refused request: GTE error ``code``, ``pattern`` name and offending ``param``."""

    def __init__(self, code: int, pattern: str, param: str | None = None,
                 msg: str | None = None) -> None:
        self.code = code
        self.pattern = pattern
        self.param = param
        self.msg = msg or pattern.lower().replace("_", " ")
        super().__init__(f"{code} {pattern} {param or ''} {msg or ''}".strip())


def _err(code: int, param: str | None = None, msg: str | None = None) -> SimError:
    return SimError(code, _PATTERNS[code], param, msg)


@dataclass(frozen=True)
class InstrumentSpec:
    """Static description of one inverse perpetual contract."""
    symbol: str = "BTC_USD"
    asset: str = "BTC"
    symbol_id: int = 1
    tick_size: Decimal = Decimal("0.5")
    price_precision: int = 1
    face_value: Decimal = Decimal("1")
    quote_currency: str = "USD"
    max_leverage: Decimal = Decimal("100")


@dataclass(frozen=True)
class ExchangeConfig:
    """Exchange-wide parameters (fees are fractions of notional; negative = rebate)."""
    instruments: tuple[InstrumentSpec, ...] = (InstrumentSpec(),)
    maker_fee: Decimal = Decimal("-0.00025")
    taker_fee: Decimal = Decimal("0.00075")
    default_leverage: Decimal = Decimal("10")
    maint_margin_ratio: Decimal = Decimal("0.005")
    start_price: Decimal = Decimal("10000")
    funding_rate: Decimal = Decimal("0.0001")
    insurance_balance: Decimal = Decimal("1000")
    history_limit: int = 10_000
    trade_history: int = 10_000


class Event:
    """One change to publish: table ``kind``, owner (None = public), symbol, row, action.

    Behaves like the 5-tuple ``(kind, account_id, symbol, row, action)`` (attributes,
    unpacking, indexing, equality) but ``row`` is built on first access from a
    snapshot taken when the event happened, then cached: events nobody reads
    (e.g. of market-flow accounts) cost no formatting.  Treat rows as read-only.
    """
    __slots__ = ("kind", "account_id", "symbol", "action", "_row", "_build", "_args")
    _fields = ("kind", "account_id", "symbol", "row", "action")

    def __init__(self, kind: str, account_id: int | None, symbol: str | None,
                 row: dict | None, action: str, build: Any = None, args: tuple = ()) -> None:
        self.kind = kind
        self.account_id = account_id
        self.symbol = symbol
        self.action = action
        self._row = row
        self._build = build
        self._args = args

    @property
    def row(self) -> dict:
        """The wire row (built once, then cached)."""
        row = self._row
        if row is None:
            row = self._row = self._build(*self._args)
            self._build = None
            self._args = ()
        return row

    def _tuple(self) -> tuple:
        return (self.kind, self.account_id, self.symbol, self.row, self.action)

    def __iter__(self) -> Any:
        return iter(self._tuple())

    def __getitem__(self, index: Any) -> Any:
        return self._tuple()[index]

    def __len__(self) -> int:
        return 5

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Event, tuple)):
            return self._tuple() == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Event(kind={self.kind!r}, account_id={self.account_id!r}, "
                f"symbol={self.symbol!r}, row={self.row!r}, action={self.action!r})")


class _Market:
    """Runtime state of one symbol."""

    def __init__(self, spec: InstrumentSpec, mark: Decimal, funding_rate: Decimal,
                 trade_history: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.asset = spec.asset
        self.face = spec.face_value
        self.tick = spec.tick_size
        self.book = OrderBook()
        self.fmt = PriceFormatter(spec.tick_size, spec.symbol_id)
        self.mark = mark
        self.im = ac.inverse_mark(spec.face_value, mark)
        self.last_ticks: int | None = None
        self.trades: deque[tuple] = deque(maxlen=trade_history)  # trade_row arguments
        self.candles: dict[int, list[int]] = {}   # minute start -> [o, h, l, c, volume]
        self.funding_rate = funding_rate
        self.next_funding: int | None = None


class Exchange:
    """Matching engine + inverse-contract ledger behind the server (see module doc)."""

    fee_account_id = FEE_ACCOUNT_ID
    insurance_account_id = INSURANCE_ACCOUNT_ID

    def __init__(self, config: ExchangeConfig, funding_interval_ms: int = 8 * 3600 * 1000) -> None:
        self.config = config
        self.funding_interval_ms = funding_interval_ms
        self.instruments: dict[str, InstrumentSpec] = {s.symbol: s for s in config.instruments}
        self._markets: dict[str, _Market] = {
            s.symbol: _Market(s, config.start_price, config.funding_rate, config.trade_history)
            for s in config.instruments}
        self._assets: list[str] = list(dict.fromkeys(s.asset for s in config.instruments))
        self._inv_marks: dict[str, Decimal] = {s: m.im for s, m in self._markets.items()}
        self._mmr = config.maint_margin_ratio
        self._accounts: dict[int, Account] = {}
        self._events: list[Event] = []
        self._dirty_pos: dict[tuple[int, str, int], None] = {}
        self._dirty_margin: dict[tuple[int, str], None] = {}
        self._next_account = FIRST_ACCOUNT_ID
        self._next_oid = FIRST_ORDER_ID
        self._next_trade = FIRST_TRADE_ID
        self._next_exec = 1
        self._fee = self._new_account(FEE_ACCOUNT_ID, "fees", True)
        self._insurance = self._new_account(INSURANCE_ACCOUNT_ID, "insurance", True)
        for asset in self._assets:
            self._fee.wallet(asset)
            self._insurance.wallet(asset).balance = q12(config.insurance_balance)

    # ------------------------------------------------------------------ accounts
    def _new_account(self, account_id: int, name: str, internal: bool) -> Account:
        acct = Account(account_id, name, internal)
        self._accounts[account_id] = acct
        return acct

    def open_account(self, name: str, balance: Decimal, asset: str = "BTC") -> int:
        """Create an account with ``balance`` in its contract account; returns its id."""
        if asset not in self._assets:
            raise _err(BAD_VALUE, "asset")
        if not isinstance(balance, Decimal) or not balance.is_finite() or balance < 0:
            raise _err(BAD_VALUE, "balance")
        acct = self._new_account(self._next_account, name, False)
        self._next_account += 1
        for a in self._assets:
            acct.wallet(a)
        acct.wallet(asset).balance = q12(balance)
        return acct.id

    def account_ids(self) -> list[int]:
        """Every account id, internal ones included."""
        return list(self._accounts)

    def _acct(self, account_id: int) -> Account:
        acct = self._accounts.get(account_id)
        if acct is None:
            raise _err(BAD_VALUE, "account", f"unknown account {account_id}")
        return acct

    def _market(self, symbol: str) -> _Market:
        m = self._markets.get(symbol)
        if m is None:
            raise _err(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
        return m

    def _asset(self, asset: str) -> str:
        if asset not in self._assets:
            raise _err(BAD_VALUE, "asset", f"unknown asset {asset}")
        return asset

    # ------------------------------------------------------------------ events
    def _emit_order(self, o: Order, m: _Market, action: str) -> Event:
        ev = Event("order", o.account_id, o.symbol, None, action, order_row,
                   (o, m.fmt, m.asset, o.status, o.filled, o.value_ticks, o.fee, o.margin))
        self._events.append(ev)
        return ev

    def _flush(self) -> None:
        """Queue the coalesced book, position and margin events of one operation."""
        events = self._events
        for mk in self._markets.values():
            if mk.book.touched:
                self._flush_book(mk)
        if self._dirty_pos:
            for aid, symbol, side in self._dirty_pos:
                acct = self._accounts[aid]
                pos = acct.position(symbol, side, self._markets[symbol].asset)
                events.append(Event("position", aid, symbol, None, "update", position_row,
                                    self._position_snapshot(acct, pos)))
            self._dirty_pos.clear()
        if self._dirty_margin:
            for aid, asset in self._dirty_margin:
                events.append(Event("margin", aid, None, None, "update", margin_row,
                                    self._margin_snapshot(self._accounts[aid], asset)))
            self._dirty_margin.clear()

    def _flush_book(self, m: _Market) -> None:
        events = self._events
        fmt, symbol, asset = m.fmt, m.symbol, m.asset
        for side, ticks, size, existed in m.book.take_touched():
            if size == 0:
                events.append(Event("order_book", None, symbol, None, "delete",
                                    level_delete_row, (fmt, symbol, side, ticks)))
            else:
                events.append(Event("order_book", None, symbol, None,
                                    "update" if existed else "insert", level_row,
                                    (fmt, symbol, asset, side, ticks, size)))

    def _touch(self, acct: Account, asset: str, pos: Position | None = None) -> None:
        if acct.internal:
            return
        self._dirty_margin[(acct.id, asset)] = None
        if pos is not None:
            self._dirty_pos[(acct.id, pos.symbol, pos.side)] = None

    def drain_events(self) -> list[Event]:
        """Every event queued since the last call, in order."""
        events = self._events
        self._events = []
        return events

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

    def place_order(self, account_id: int, symbol: str, side: int, close_flag: int,
                    price: Decimal, qty: int, client_oid: str | None, now_ms: int) -> dict:
        """Accept a limit order, match it as taker, rest the remainder; returns its row."""
        m = self._market(symbol)
        if side not in (0, 1) or isinstance(side, bool):
            raise _err(BAD_VALUE, "side")
        if close_flag not in (0, 1) or isinstance(close_flag, bool):
            raise _err(BAD_VALUE, "close_flag")
        if type(qty) is not int or qty <= 0:
            raise _err(BAD_VALUE, "qty", "qty must be a positive integer")
        ticks = self._ticks(m, price)
        acct = self._acct(account_id)
        asset = m.asset
        pos_side = LONG if (side == BUY) == (close_flag == 0) else SHORT
        lev = acct.setting(symbol, self.config.default_leverage).leverage(pos_side)
        w = acct.wallet(asset)
        if close_flag == 0:
            unit = m.face / price / lev
            margin = ac.order_margin(qty, unit)
            if margin > ac.available(acct, asset, self._inv_marks):
                raise _err(INSUFFICIENT_MARGIN, "qty", "insufficient margin")
            w.order_margin += margin
            self._touch(acct, asset)
        else:
            pos = acct.position(symbol, pos_side, asset)
            if qty > pos.qty - pos.closing:
                raise _err(EXCEED_POSITION, "qty", "close qty exceeds available position")
            pos.closing += qty
            unit = margin = ZERO
            self._touch(acct, asset, pos)
        oid = self._next_oid
        self._next_oid += 1
        order = Order(oid, account_id, symbol, side, close_flag, ticks, qty, client_oid, now_ms,
                      lev, unit, margin)
        acct.orders[oid] = order
        acct.open_orders[oid] = order
        if client_oid:
            acct.by_client.setdefault(client_oid, []).append(order)
        self._emit_order(order, m, "insert")
        fills = m.book.match(order)
        if fills:
            self._process_fills(m, acct, order, fills, now_ms)
        if order.filled < qty:
            m.book.rest(order)
            order.status = PARTIAL if order.filled else NEW
        else:
            order.status = FILLED
            self._finalize(acct, order)
        ev = self._emit_order(order, m, "update")
        self._flush()
        return dict(ev.row)

    def _finalize(self, acct: Account, order: Order) -> None:
        acct.open_orders.pop(order.oid, None)
        finals = acct.finals
        finals.append(order.oid)
        if len(finals) > self.config.history_limit:
            acct.orders.pop(finals.popleft(), None)

    def _process_fills(self, m: _Market, tacct: Account, taker: Order,
                       fills: list[tuple[Order, int, int]], now_ms: int) -> None:
        total = taker.filled
        taker.filled = 0
        face, tick, symbol, fmt, asset = m.face, m.tick, m.symbol, m.fmt, m.asset
        maker_rate, taker_rate = self.config.maker_fee, self.config.taker_fee
        accounts = self._accounts
        events = self._events
        for maker, q, px in fills:
            cost = ((q * face) / (px * tick)).quantize(ac.Q)
            trade_id = self._next_trade
            self._next_trade += 1
            macct = accounts[maker.account_id]
            maker.status = FILLED if maker.filled == maker.qty else PARTIAL
            self._apply_fill(m, macct, maker, q, px, cost, (cost * maker_rate).quantize(ac.Q),
                             True, trade_id, now_ms)
            self._emit_order(maker, m, "update")
            if maker.status == FILLED:
                self._finalize(macct, maker)
            taker.filled += q
            taker.status = FILLED if taker.filled == taker.qty else PARTIAL
            self._apply_fill(m, tacct, taker, q, px, cost, (cost * taker_rate).quantize(ac.Q),
                             False, trade_id, now_ms)
            args = (trade_id, fmt, symbol, asset, taker.side, px, q, now_ms)
            m.trades.append(args)
            events.append(Event("trade", None, symbol, None, "insert", trade_row, args))
            self._candle(m, now_ms, px, q)
        m.last_ticks = fills[-1][2]
        if taker.filled != total:   # pragma: no cover - engine invariant
            raise RuntimeError("fill bookkeeping mismatch")

    def _apply_fill(self, m: _Market, acct: Account, o: Order, q: int, px: int, cost: Decimal,
                    fee: Decimal, maker: bool, trade_id: int, now_ms: int) -> None:
        asset = m.asset
        w = acct.wallet(asset)
        o.value_ticks += q * px
        o.fee += fee
        if o.close_flag == 0:
            new_margin = ((o.qty - o.filled) * o.unit).quantize(ac.Q)
            w.order_margin -= o.margin - new_margin
            o.margin = new_margin
            pos = acct.position(o.symbol, LONG if o.side == BUY else SHORT, asset)
            pm = (cost / o.leverage).quantize(ac.Q)
            pos.add(q, cost, pm)
            w.pos_margin += pm
        else:
            pos = acct.position(o.symbol, SHORT if o.side == BUY else LONG, asset)
            pos.closing -= q
            pnl, released = pos.reduce(q, cost)
            w.pos_margin -= released
            w.balance += pnl
        w.balance -= fee
        self._fee.wallet(asset).balance += fee
        exec_id = self._next_exec
        self._next_exec += 1
        self._events.append(Event("execution", acct.id, o.symbol, None, "insert", execution_row,
                                  (o, m.fmt, asset, exec_id, q, px, fee, maker, trade_id,
                                   now_ms, o.status, o.filled)))
        self._touch(acct, asset, pos)

    def _candle(self, m: _Market, now_ms: int, px: int, q: int) -> None:
        minute = now_ms - now_ms % MINUTE_MS
        c = m.candles.get(minute)
        if c is None:
            m.candles[minute] = [px, px, px, px, q]
            if len(m.candles) > MAX_CANDLE_MINUTES:
                del m.candles[next(iter(m.candles))]
        else:
            if px > c[1]:
                c[1] = px
            elif px < c[2]:
                c[2] = px
            c[3] = px
            c[4] += q

    @staticmethod
    def _oid(order_id: Any) -> int | None:
        try:
            return int(order_id)
        except (TypeError, ValueError):
            return None

    def cancel_order(self, account_id: int, symbol: str, order_id: str, now_ms: int) -> dict:
        """Cancel one open order of the account (-20002 if unknown/final/foreign)."""
        m = self._market(symbol)
        acct = self._acct(account_id)
        o = acct.open_orders.get(self._oid(order_id))   # type: ignore[arg-type]
        if o is None or o.symbol != symbol:
            raise _err(ORDER_NOT_FOUND, "id", "order not found or not open")
        row = self._cancel(acct, m, o)
        self._flush()
        return row

    def _cancel(self, acct: Account, m: _Market, o: Order) -> dict:
        m.book.remove(o)
        o.status = CANCEL_PENDING
        self._emit_order(o, m, "update")
        w = acct.wallet(m.asset)
        if o.close_flag:
            pos = acct.position(o.symbol, SHORT if o.side == BUY else LONG, m.asset)
            pos.closing -= o.qty - o.filled
            self._touch(acct, m.asset, pos)
        else:
            w.order_margin -= o.margin
            o.margin = ZERO
            self._touch(acct, m.asset)
        o.status = CANCELLED
        self._finalize(acct, o)
        return dict(self._emit_order(o, m, "update").row)

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

    def query_orders(self, account_id: int, symbol: str | None, statuses: set[int] | None,
                     order_id: str | None, gt_order_id: str | None, lt_order_id: str | None,
                     count: int) -> list[dict]:
        """Order rows of the account, newest first (see module doc for gt/lt)."""
        acct = self._acct(account_id)

        def keep(o: Order) -> bool:
            return (symbol is None or o.symbol == symbol) and \
                (not statuses or o.status in statuses)

        if order_id is not None:
            o = acct.orders.get(self._oid(order_id))   # type: ignore[arg-type]
            found = [o] if o is not None and keep(o) else []
        elif gt_order_id is not None:
            gt = self._oid(gt_order_id)
            found = []
            if gt is not None:
                for o in acct.orders.values():
                    if o.oid > gt and keep(o):
                        found.append(o)
                        if len(found) >= count:
                            break
            found.reverse()
        else:
            lt = self._oid(lt_order_id) if lt_order_id is not None else None
            found = []
            for o in reversed(acct.orders.values()):
                if (lt is None or o.oid < lt) and keep(o):
                    found.append(o)
                    if len(found) >= count:
                        break
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in found]

    def open_orders_of(self, account_id: int) -> list[dict]:
        """Rows of the account's open orders, oldest first."""
        acct = self._acct(account_id)
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in acct.open_orders.values()]

    def open_order_ids(self, account_id: int) -> set[str]:
        """Ids of the account's open orders."""
        return {str(oid) for oid in self._acct(account_id).open_orders}

    def orders_by_client_oid(self, account_id: int, client_oid: str) -> list[dict]:
        """Rows of every order ever accepted for the account with ``client_oid``."""
        acct = self._acct(account_id)
        return [current_order_row(o, self._markets[o.symbol].fmt, self._markets[o.symbol].asset)
                for o in acct.by_client.get(client_oid, [])]

    # ------------------------------------------------------------------ market data
    def best_prices(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) as Decimals (None for an empty side)."""
        m = self._market(symbol)
        bid, ask = m.book.best_bid(), m.book.best_ask()
        return (None if bid is None else bid * m.tick, None if ask is None else ask * m.tick)

    def mark_price(self, symbol: str) -> Decimal:
        """Current mark price."""
        return self._market(symbol).mark

    def order_book(self, symbol: str, size: int) -> dict:
        """Top ``size`` levels per side: {"bids": [[price, qty], ...], "asks": [...]}."""
        m = self._market(symbol)
        price = m.fmt.price
        return {"bids": [[price(t), str(s)] for t, s in m.book.depth(BUY, size)],
                "asks": [[price(t), str(s)] for t, s in m.book.depth(0, size)]}

    def book_levels(self, symbol: str) -> list[dict]:
        """Every level as order_book table rows (bids best first, then asks)."""
        m = self._market(symbol)
        return [level_row(m.fmt, symbol, m.asset, side, t, s)
                for side in (BUY, 0) for t, s in m.book.depth(side)]

    def trades(self, symbol: str, gt_trade_id: str | None, lt_trade_id: str | None,
               count: int) -> list[dict]:
        """Recent trade rows, newest first (gt/lt as for ``query_orders``)."""
        m = self._market(symbol)
        out: list[tuple] = []
        if gt_trade_id is not None:
            gt = self._oid(gt_trade_id)
            if gt is not None:
                for args in m.trades:
                    if args[0] > gt:
                        out.append(args)
                        if len(out) >= count:
                            break
            out.reverse()
        else:
            lt = self._oid(lt_trade_id) if lt_trade_id is not None else None
            for args in reversed(m.trades):
                if lt is None or args[0] < lt:
                    out.append(args)
                    if len(out) >= count:
                        break
        return [trade_row(*args) for args in out]

    def candles(self, symbol: str, start_time: int | None, end_time: int | None,
                interval_min: int, size: int) -> list[list[str]]:
        """[ts, open, high, low, close, volume] rows, oldest first, last ``size`` in range."""
        m = self._market(symbol)
        span = int(interval_min) * MINUTE_MS
        buckets: dict[int, list[int]] = {}
        for minute in sorted(m.candles):
            if start_time is not None and minute < start_time - start_time % span:
                continue
            if end_time is not None and minute > end_time:
                break
            o, h, lo, c, v = m.candles[minute]
            key = minute - minute % span
            b = buckets.get(key)
            if b is None:
                buckets[key] = [o, h, lo, c, v]
            else:
                b[1] = max(b[1], h)
                b[2] = min(b[2], lo)
                b[3] = c
                b[4] += v
        price = m.fmt.price
        keys = sorted(buckets)[-size:] if size > 0 else []
        return [[str(k), price(buckets[k][0]), price(buckets[k][1]), price(buckets[k][2]),
                 price(buckets[k][3]), str(buckets[k][4])] for k in keys]

    def _next_funding_time(self, m: _Market, now_ms: int) -> int:
        if m.next_funding is not None:
            return m.next_funding
        return (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms

    def instrument_row(self, symbol: str, now_ms: int) -> dict:
        """Instrument row: §2 fields plus the §3 extras (tick_size, symbol_id, ...)."""
        m = self._market(symbol)
        spec = m.spec
        since = now_ms - DAY_MS
        volume = 0
        first_open: int | None = None
        for minute, c in m.candles.items():
            if minute >= since:
                if first_open is None:
                    first_open = c[0]
                volume += c[4]
        mark = self._price_text(m, m.mark)
        last = m.fmt.price(m.last_ticks) if m.last_ticks is not None else mark
        change = ZERO
        if first_open is not None and m.last_ticks is not None:
            change = (Decimal(m.last_ticks - first_open) / first_open).quantize(RATIO_Q)
        open_interest = sum(p.qty for a in self._accounts.values()
                            for p in a.positions.values() if p.symbol == symbol and p.side == LONG)
        nxt = self._next_funding_time(m, now_ms)
        return {
            "asset": spec.asset, "symbol": symbol, "price_precision": str(spec.price_precision),
            "last_price": last, "index_price": mark, "mark_price": mark,
            "volume_24h": str(volume), "volume_pos_hold": str(open_interest),
            "change_rate_24h": dstr(change), "face_value": dstr(spec.face_value),
            "quote_currency": spec.quote_currency, "funding_rate": dstr(m.funding_rate),
            "indicative_funding_rate": dstr(m.funding_rate), "funding_rate_time": str(nxt),
            "indicative_funding_rate_time": str(nxt + self.funding_interval_ms),
            "instrument_type": "pc", "settle_currency": spec.asset,
            "lot_size": dstr(spec.face_value), "split_char": "_",
            "tick_size": dstr(spec.tick_size), "symbol_id": str(spec.symbol_id),
        }

    @staticmethod
    def _price_text(m: _Market, price: Decimal) -> str:
        ticks, rest = divmod(price, m.tick)
        return m.fmt.price(int(ticks)) if not rest else dstr(price)

    def contract_rows(self, asset: str) -> list[dict]:
        """{symbol, price_precision} of every contract settled in ``asset``."""
        return [{"symbol": s.symbol, "price_precision": str(s.price_precision)}
                for s in self.instruments.values() if s.asset == asset]

    def asset_rows(self) -> list[dict]:
        """{asset} of every settle asset."""
        return [{"asset": a} for a in self._assets]

    # ------------------------------------------------------------------ balances
    def _margin_snapshot(self, acct: Account, asset: str) -> tuple:
        w = acct.wallet(asset)
        marks = self._inv_marks
        positions = []
        for p in acct.positions.values():
            if p.qty and p.asset == asset:
                s = acct.settings.get(p.symbol)
                positions.append((p.side == LONG, p.qty, p.cost,
                                  s is None or s.margin_mode == CROSS, marks[p.symbol]))
        return (asset, w.balance, w.order_margin, w.pos_margin, tuple(positions))

    def _margin_row(self, acct: Account, asset: str) -> dict:
        return margin_row(*self._margin_snapshot(acct, asset))

    def margin_rows(self, account_id: int) -> list[dict]:
        """§3 margin rows, one per settle asset."""
        acct = self._acct(account_id)
        return [self._margin_row(acct, a) for a in self._assets]

    def pc_account_rows(self, account_id: int, asset: str | None) -> list[dict]:
        """Contract-account rows {asset, available, total, order_margin, pos_margin}."""
        acct = self._acct(account_id)
        out = []
        for a in self._assets:
            if asset is None or a == asset:
                r = self._margin_row(acct, a)
                out.append({"asset": a, "available": r["available"], "total": r["total"],
                            "order_margin": r["order_margin"], "pos_margin": r["pos_margin"]})
        return out

    def fund_account_rows(self, account_id: int, asset: str | None) -> list[dict]:
        """Fund-account rows {asset, available, lock, total}."""
        acct = self._acct(account_id)
        return [{"asset": a, "available": dstr(acct.wallet(a).fund), "lock": "0",
                 "total": dstr(acct.wallet(a).fund)}
                for a in self._assets if asset is None or a == asset]

    def transfer(self, account_id: int, asset: str, from_type: int, to_type: int,
                 volume: Decimal) -> None:
        """Move ``volume`` between the fund (1) and contract (2) accounts."""
        acct = self._acct(account_id)
        self._asset(asset)
        if from_type not in (1, 2):
            raise _err(BAD_VALUE, "from", "only fund (1) and contract (2) accounts")
        if to_type not in (1, 2) or to_type == from_type:
            raise _err(BAD_VALUE, "to", "only fund (1) and contract (2) accounts")
        if not isinstance(volume, Decimal) or not volume.is_finite() or volume <= 0 \
                or volume != q12(volume):
            raise _err(BAD_VALUE, "volume")
        w = acct.wallet(asset)
        if from_type == 1:
            if volume > w.fund:
                raise _err(INSUFFICIENT_MARGIN, "volume", "insufficient fund balance")
            w.fund -= volume
            w.balance += volume
        else:
            if volume > ac.available(acct, asset, self._inv_marks):
                raise _err(INSUFFICIENT_MARGIN, "volume", "insufficient available balance")
            w.balance -= volume
            w.fund += volume
        self._touch(acct, asset)
        self._flush()

    def equity(self, account_id: int, asset: str = "BTC") -> Decimal:
        """Exact fund + contract balance + unrealised PnL of one account."""
        acct = self._acct(account_id)
        with localcontext() as ctx:
            ctx.prec = 80
            w = acct.wallet(asset)
            return w.fund + w.balance + ac.upnl_total(acct, asset, self._inv_marks)

    def total_equity(self, asset: str = "BTC") -> Decimal:
        """Exact sum of ``equity`` over every account (internal ones included)."""
        with localcontext() as ctx:
            ctx.prec = 80
            return sum((self.equity(a, asset) for a in self._accounts), ZERO)

    # ------------------------------------------------------------------ positions
    def _position_snapshot(self, acct: Account, pos: Position) -> tuple:
        m = self._markets[pos.symbol]
        setting = acct.setting(pos.symbol, self.config.default_leverage)
        mmr = self._mmr
        liq = ZERO
        if pos.qty:
            margin = pos.margin if setting.margin_mode == ISOLATED else \
                ac.isolated_effective_margin(acct, pos, self._inv_marks, mmr)
            liq = ac.liquidation_price(pos, margin, m.face, mmr)
        return (pos.symbol, pos.side, pos.asset, pos.qty, pos.closing, pos.cost, pos.margin,
                pos.realised, pos.auto_flag, setting.margin_mode, setting.leverage(pos.side),
                m.im, m.face, mmr, liq)

    def _position_row(self, acct: Account, pos: Position) -> dict:
        return position_row(*self._position_snapshot(acct, pos))

    def position_rows(self, account_id: int) -> list[dict]:
        """Position rows of every symbol, long then short (qty "0" when flat)."""
        acct = self._acct(account_id)
        return [self._position_row(acct, acct.position(s, side, m.asset))
                for s, m in self._markets.items() for side in (LONG, SHORT)]

    def position_qty(self, account_id: int, symbol: str, long_flag: int) -> tuple[int, int]:
        """(qty, avail_qty) of the account's long (1) or short (0) position."""
        pos = self._acct(account_id).positions.get((symbol, LONG if long_flag else SHORT))
        return (0, 0) if pos is None else (pos.qty, pos.qty - pos.closing)

    def setting_row(self, account_id: int, symbol: str) -> dict:
        """Leverage settings of the account in ``symbol``."""
        m = self._market(symbol)
        s = self._acct(account_id).setting(symbol, self.config.default_leverage)
        mx = dstr(m.spec.max_leverage)
        return {"cross_max_leverage": mx, "bid_max_leverage": mx, "ask_max_leverage": mx,
                "bid_leverage": dstr(s.long_lev), "ask_leverage": dstr(s.short_lev),
                "cross_leverage": dstr(s.cross_lev), "margin_mode": str(s.margin_mode)}

    def change_leverage(self, account_id: int, symbol: str, mode: int, long_flag: int | None,
                        leverage: Decimal, now_ms: int) -> None:
        """Set margin mode and leverage (isolated: per side via ``long_flag``, None = both)."""
        m = self._market(symbol)
        acct = self._acct(account_id)
        if mode not in (CROSS, ISOLATED):
            raise _err(BAD_VALUE, "mode")
        if long_flag not in (None, 0, 1):
            raise _err(BAD_VALUE, "long_flag")
        if not isinstance(leverage, Decimal) or not leverage.is_finite() \
                or leverage < 1 or leverage > m.spec.max_leverage:
            raise _err(BAD_VALUE, "leverage", "leverage out of range")
        s = acct.setting(symbol, self.config.default_leverage)
        positions = [acct.position(symbol, side, m.asset) for side in (LONG, SHORT)]
        if mode != s.margin_mode and (any(p.qty or p.closing for p in positions)
                                      or any(o.symbol == symbol for o in acct.open_orders.values())):
            raise _err(BAD_VALUE, "mode", "cannot change margin mode with positions or orders")
        new = ac.Setting(leverage)
        new.margin_mode, new.cross_lev, new.long_lev, new.short_lev = \
            mode, s.cross_lev, s.long_lev, s.short_lev
        if mode == CROSS:
            new.cross_lev = leverage
        else:
            if long_flag in (None, 1):
                new.long_lev = leverage
            if long_flag in (None, 0):
                new.short_lev = leverage
        deltas = []
        for p in positions:
            target = q12(p.cost / new.leverage(p.side)) if p.qty else p.margin
            deltas.append(target - p.margin)
        increase = sum((d for d in deltas if d > 0), ZERO)
        if increase > 0 and increase > ac.available(acct, m.asset, self._inv_marks) + \
                sum((-d for d in deltas if d < 0), ZERO):
            raise _err(INSUFFICIENT_MARGIN, "leverage", "insufficient margin for leverage")
        acct.settings[symbol] = new
        w = acct.wallet(m.asset)
        for p, d in zip(positions, deltas, strict=True):
            p.margin += d
            w.pos_margin += d
            self._touch(acct, m.asset, p)
        self._check_liquidations(now_ms)
        self._flush()

    def increase_margin(self, account_id: int, symbol: str, long_flag: int, increase_flag: int,
                        margin: Decimal, now_ms: int) -> None:
        """Add (1) or remove (0) margin of an isolated position."""
        m = self._market(symbol)
        acct = self._acct(account_id)
        if long_flag not in (0, 1):
            raise _err(BAD_VALUE, "long_flag")
        if increase_flag not in (0, 1):
            raise _err(BAD_VALUE, "increase_flag")
        if not isinstance(margin, Decimal) or not margin.is_finite() or margin <= 0 \
                or margin != q12(margin):
            raise _err(BAD_VALUE, "margin")
        s = acct.setting(symbol, self.config.default_leverage)
        if s.margin_mode != ISOLATED:
            raise _err(BAD_VALUE, "symbol", "margin can only be changed on isolated positions")
        pos = acct.position(symbol, LONG if long_flag else SHORT, m.asset)
        if not pos.qty:
            raise _err(BAD_VALUE, "long_flag", "no position")
        w = acct.wallet(m.asset)
        if increase_flag:
            if margin > ac.available(acct, m.asset, self._inv_marks):
                raise _err(INSUFFICIENT_MARGIN, "margin")
            pos.margin += margin
            w.pos_margin += margin
        else:
            floor = q12(pos.cost / s.leverage(pos.side)) - min(pos.upnl(m.im), ZERO)
            if pos.margin - margin < floor:
                raise _err(BAD_VALUE, "margin", "margin would fall below the initial margin")
            pos.margin -= margin
            w.pos_margin -= margin
        self._touch(acct, m.asset, pos)
        self._flush()

    def auto_margin(self, account_id: int, symbol: str, long_flag: int, open_flag: int) -> None:
        """Switch automatic margin top-up (used before liquidating an isolated position)."""
        m = self._market(symbol)
        acct = self._acct(account_id)
        if long_flag not in (0, 1):
            raise _err(BAD_VALUE, "long_flag")
        if open_flag not in (0, 1):
            raise _err(BAD_VALUE, "open_flag")
        pos = acct.position(symbol, LONG if long_flag else SHORT, m.asset)
        pos.auto_flag = open_flag
        self._touch(acct, m.asset, pos)
        self._flush()

    # ------------------------------------------------------------------ mark, funding, risk
    def set_mark_price(self, symbol: str, price: Decimal, now_ms: int) -> None:
        """Move the mark (= index) price; runs the liquidation checks."""
        m = self._market(symbol)
        if not isinstance(price, Decimal) or not price.is_finite() or price <= 0:
            raise _err(BAD_VALUE, "price")
        m.mark = price
        m.im = self._inv_marks[symbol] = ac.inverse_mark(m.face, price)
        self._check_liquidations(now_ms)
        self._flush()

    def set_funding_rate(self, symbol: str, rate: Decimal) -> None:
        """Rate applied at the next funding time by ``tick``."""
        self._market(symbol).funding_rate = rate

    def apply_funding(self, symbol: str, rate: Decimal, now_ms: int) -> None:
        """Longs pay shorts ``rate * qty * face / mark`` (rounding residue -> insurance)."""
        m = self._market(symbol)
        residue = ZERO
        for acct in self._accounts.values():
            for side in (LONG, SHORT):
                pos = acct.positions.get((symbol, side))
                if pos is None or not pos.qty:
                    continue
                pay = q12(pos.qty * m.im * rate)
                w = acct.wallet(m.asset)
                if side == LONG:
                    w.balance -= pay
                    residue += pay
                else:
                    w.balance += pay
                    residue -= pay
                self._touch(acct, m.asset)
        self._insurance.wallet(m.asset).balance += residue
        self._check_liquidations(now_ms)
        self._flush()

    def tick(self, now_ms: int) -> None:
        """Housekeeping: funding when due, then liquidation checks."""
        for symbol, m in self._markets.items():
            if m.next_funding is None:
                m.next_funding = self._next_funding_time(m, now_ms)
            elif now_ms >= m.next_funding:
                self.apply_funding(symbol, m.funding_rate, now_ms)
                m.next_funding = (now_ms // self.funding_interval_ms + 1) * self.funding_interval_ms
        self._check_liquidations(now_ms)
        self._flush()

    def _check_liquidations(self, now_ms: int) -> None:
        mmr, marks = self._mmr, self._inv_marks
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
                if pos.margin + pos.upnl(im) <= mmr * pos.cost:
                    if pos.auto_flag:
                        self._auto_top_up(acct, pos, s, im)
                    if pos.margin + pos.upnl(im) <= mmr * pos.cost:
                        self._liquidate_isolated(acct, pos, now_ms)
            for asset in self._assets:
                equity, maint, crosses = ac.cross_state(acct, asset, marks, mmr)
                if crosses and equity <= maint:
                    self._liquidate_cross(acct, asset, crosses, now_ms)

    def _auto_top_up(self, acct: Account, pos: Position, s: ac.Setting, im: Decimal) -> None:
        need = q12(pos.cost / s.leverage(pos.side)) - (pos.margin + pos.upnl(im))
        avail = ac.available(acct, pos.asset, self._inv_marks)
        add = q12(min(need, avail))
        if add > 0:
            pos.margin += add
            acct.wallet(pos.asset).pos_margin += add
            self._touch(acct, pos.asset, pos)

    def _cancel_all(self, acct: Account, symbols: set[str]) -> None:
        for o in list(acct.open_orders.values()):
            if o.symbol in symbols:
                self._cancel(acct, self._markets[o.symbol], o)

    def _take_over(self, acct: Account, pos: Position, cost: Decimal) -> None:
        """Move ``pos`` to the insurance account with exit/entry value ``cost``."""
        qty = pos.qty
        pnl, released = pos.reduce(qty, cost)
        w = acct.wallet(pos.asset)
        w.pos_margin -= released
        w.balance += pnl
        self._insurance.position(pos.symbol, pos.side, pos.asset).add(qty, cost, ZERO)
        self._touch(acct, pos.asset, pos)

    def _liquidate_isolated(self, acct: Account, pos: Position, now_ms: int) -> None:
        self._cancel_all(acct, {pos.symbol})
        bankrupt = pos.cost + pos.margin if pos.side == LONG else pos.cost - pos.margin
        if bankrupt <= 0:
            bankrupt = q12(pos.qty * self._inv_marks[pos.symbol])
        self._take_over(acct, pos, bankrupt)

    def _liquidate_cross(self, acct: Account, asset: str, crosses: list[Position],
                         now_ms: int) -> None:
        self._cancel_all(acct, {s for s, m in self._markets.items() if m.asset == asset})
        for pos in crosses:
            self._take_over(acct, pos, q12(pos.qty * self._inv_marks[pos.symbol]))
        equity, _, _ = ac.cross_state(acct, asset, self._inv_marks, self._mmr)
        w = acct.wallet(asset)
        w.balance -= equity
        self._insurance.wallet(asset).balance += equity
        self._touch(acct, asset)
