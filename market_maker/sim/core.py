"""The simulator's trading core: matching engine + inverse-contract accounts, nothing else.

``Core`` places and cancels orders in integer ticks, matches them (``engine.OrderBook``),
reserves and releases order margin, books every fill into both accounts' positions,
wallets and the fee account, and keeps the order history.  It builds no wire rows,
queues no events and validates only what is a trading rule (margin, closable
quantity, open order); ``Exchange`` (exchange.py) wraps it with parameter
validation, rows and events.  A backtester can drive ``Core`` directly:

    core = Core(ExchangeConfig())
    acct = core.account(core.open_account("a", Decimal(1)))
    m = core.market("BTC_USD")
    order, fills = core.place(acct, m, BUY, 0, 20_000, 5)      # 10000.0 with tick 0.5
    core.cancel(acct, m, order.oid)

``fills`` lists ``(maker order, qty, price in ticks, cost, maker fee, taker fee)`` in
match order; ``cost`` is the settle-currency notional ``rdiv(qty * face / price)``
booked on both sides, so equity is conserved exactly.  Money is in integer ledger
units of 1e-12 (see accounts.py): ``Wallet``, ``Position`` and ``Order`` amounts, the
fill report; ``open_account`` takes and ``equity`` returns Decimals.  Levels that a
match changes are also noted in ``m.book.touched`` for a publisher to take (``Exchange``
does after every operation); a direct user may ignore it (one entry per price level).
"""
from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal

from . import accounts as ac
from .accounts import CROSS, FINE, LONG, SHORT, Account, Rate, make_rate, to_units
from .engine import BUY, CANCELLED, FILLED, NEW, PARTIAL, Level, Order
from .market import CACHE_LIMIT, ExchangeConfig, InstrumentSpec, Market
from .precheck import available_after, usage_bound

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

Fill = tuple  # (maker Order, qty, ticks, cost, maker fee, taker fee)


class SimError(Exception):
    """A refused request: GTE error ``code``, ``pattern`` name and offending ``param``."""

    def __init__(self, code: int, pattern: str, param: str | None = None,
                 msg: str | None = None) -> None:
        # no super().__init__: a refusal is cheap to raise (the text is built by __str__)
        self.code = code
        self.pattern = pattern
        self.param = param
        self._msg = msg

    @property
    def msg(self) -> str:
        """Human-readable reason (the pattern in words when none was given)."""
        return self._msg or self.pattern.lower().replace("_", " ")

    def __str__(self) -> str:
        return f"{self.code} {self.pattern} {self.param or ''} {self._msg or ''}".strip()

    def __repr__(self) -> str:
        return f"SimError({self.code}, {self.pattern!r}, {self.param!r}, {self._msg!r})"


def position_side(side: int, close_flag: int) -> int:
    """The position an order trades: opening buys and closing sells the long, the others the short."""
    return LONG if (side == BUY) == (close_flag == 0) else SHORT


def err(code: int, param: str | None = None, msg: str | None = None) -> SimError:
    """A ``SimError`` of one of the trading codes above."""
    return SimError(code, _PATTERNS[code], param, msg)


class Core:
    """Matching engine + ledger of every account (see module doc)."""

    fee_account_id = FEE_ACCOUNT_ID
    insurance_account_id = INSURANCE_ACCOUNT_ID

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.instruments: dict[str, InstrumentSpec] = {s.symbol: s for s in config.instruments}
        self._markets: dict[str, Market] = {s.symbol: self._new_market(s)
                                            for s in config.instruments}
        self._assets: list[str] = list(dict.fromkeys(s.asset for s in config.instruments))
        self._inv_marks: dict[str, int] = {s: m.im for s, m in self._markets.items()}
        self._mmr = config.maint_margin_ratio
        self._mmr_ratio = config.maint_margin_ratio.as_integer_ratio()
        self._maker_rate = make_rate(*config.maker_fee.as_integer_ratio())
        self._taker_rate = make_rate(*config.taker_fee.as_integer_ratio())
        # precheck.usage_bound holds for fee rates within [-1, 1]
        self._bounded = abs(config.maker_fee) <= 1 and abs(config.taker_fee) <= 1
        self._lev_rates: dict[Decimal, Rate] = {}   # leverage -> Rate of 1 / leverage
        self._history_limit = config.history_limit
        self._accounts: dict[int, Account] = {}
        # Account.risk caches (epoch, asset, cross upnl loss, position snapshot); it is valid
        # while ``_epoch`` is unchanged and the account had no fill (see ``_risk``).
        self._epoch = object()
        # bumped by every change of a balance or position that ``_bump`` does not cover (fills, funding,
        # transfers): with ``_epoch`` it tells whether anything a liquidation check reads has changed
        self._ledger_seq = 0
        self._liquidations_checked: tuple | None = None
        self._next_account = FIRST_ACCOUNT_ID
        self._next_oid = FIRST_ORDER_ID
        self._fee = self._new_account(FEE_ACCOUNT_ID, "fees", True)
        self._insurance = self._new_account(INSURANCE_ACCOUNT_ID, "insurance", True)
        for asset in self._assets:
            self._fee.wallet(asset)
            self._insurance.wallet(asset).balance = to_units(config.insurance_balance)

    def _new_market(self, spec: InstrumentSpec) -> Market:
        return Market(spec, spec.start_price or self.config.start_price)

    # ------------------------------------------------------------------ accounts
    def _new_account(self, account_id: int, name: str, internal: bool) -> Account:
        acct = Account(account_id, name, internal)
        self._accounts[account_id] = acct
        return acct

    def open_account(self, name: str, balance: Decimal, asset: str = "BTC", every_asset: bool = False) -> int:
        """Create an account with ``balance`` in its contract account (of ``asset``, or of every
        settle asset with ``every_asset``); returns its id."""
        if asset not in self._assets:
            raise err(BAD_VALUE, "asset")
        if not isinstance(balance, Decimal) or not balance.is_finite() or balance < 0:
            raise err(BAD_VALUE, "balance")
        acct = self._new_account(self._next_account, name, False)
        self._next_account += 1
        for a in self._assets:
            acct.wallet(a)
            if every_asset:
                acct.wallet(a).balance = to_units(balance)
        acct.wallet(asset).balance = to_units(balance)
        return acct.id

    def account_ids(self) -> list[int]:
        """Every account id, internal ones included."""
        return list(self._accounts)

    def account(self, account_id: int) -> Account:
        """The account with that id (-10013 "account" if unknown)."""
        acct = self._accounts.get(account_id)
        if acct is None:
            raise err(BAD_VALUE, "account", f"unknown account {account_id}")
        return acct

    def market(self, symbol: str) -> Market:
        """The market of ``symbol`` (-10013 "symbol" if unknown)."""
        m = self._markets.get(symbol)
        if m is None:
            raise err(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
        return m

    _acct = account
    _market = market

    def equity(self, account_id: int, asset: str = "BTC") -> Decimal:
        """Exact fund + contract balance + unrealised PnL of one account."""
        return ac.to_decimal(self._equity_marks(account_id, asset), ac.MARK_SCALE)

    def total_equity(self, asset: str = "BTC") -> Decimal:
        """Exact sum of ``equity`` over every account (internal ones included)."""
        return ac.to_decimal(sum(self._equity_marks(a, asset) for a in self._accounts),
                             ac.MARK_SCALE)

    def _equity_marks(self, account_id: int, asset: str) -> int:
        acct = self._acct(account_id)
        w = acct.wallet(asset)
        return (w.fund + w.balance) * FINE + ac.upnl_total(acct, asset, self._inv_marks)

    # ------------------------------------------------------------------ risk cache
    def _bump(self) -> None:
        """Invalidate every account's risk cache (marks, settings or margins changed)."""
        self._epoch = object()

    def _risk(self, acct: Account, asset: str) -> tuple:
        """(epoch, asset, cross upnl loss, positions snapshot, exact loss) of ``acct`` in
        ``asset``.

        The loss is ``accounts.cross_upnl_loss`` floored to ledger units (so that
        ``accounts.available`` = balance - margins + loss), the exact loss the same in
        mark units; the snapshot holds (is_long, qty, cost, is_cross, inverse mark,
        margin, symbol) of every non-flat position of the asset.  Cached until the next fill
        of the account or the next ``_bump``."""
        r = acct.risk
        if r is not None and r[0] is self._epoch and r[1] == asset:
            return r
        loss = 0
        snap = []
        positions = acct.positions
        if positions:
            marks = self._inv_marks
            settings = acct.settings
            for p in positions.values():
                qty = p.qty
                if qty and p.asset == asset:
                    s = settings.get(p.symbol)
                    is_cross = s is None or s.margin_mode == CROSS
                    is_long = p.side == LONG
                    im = marks[p.symbol]
                    if is_cross:
                        # accounts.upnl, inlined (this runs after every fill of the account)
                        u = p.cost * FINE - qty * im if is_long else qty * im - p.cost * FINE
                        if u < 0:
                            loss += u
                    snap.append((is_long, qty, p.cost, is_cross, im, p.margin, p.symbol))
        r = acct.risk = (self._epoch, asset, loss // FINE, tuple(snap), loss)
        return r

    # ------------------------------------------------------------------ orders
    def place(self, acct: Account, m: Market, side: int, close_flag: int, ticks: int, qty: int,
              client_oid: str | None = None, now_ms: int = 0) -> tuple[Order, list[Fill]]:
        """Accept a limit order, match it as taker, rest the remainder.

        Arguments are trusted (the caller validated types and ranges); trading rules
        are checked here: -20001 when the available balance cannot carry the order
        margin (a resting order) or would be negative once the order has been booked
        (one that crosses: ``precheck.available_after``), -20003 when a close order
        exceeds the closable position."""
        symbol = m.symbol
        asset = m.asset
        buy = side == BUY
        book = m.book
        if buy:
            keys = book.ask_keys
            crossing = keys and keys[-1] >= -ticks
        else:
            keys = book.bid_keys
            crossing = keys and keys[-1] >= ticks
        s = acct.settings.get(symbol)
        if s is None:
            s = acct.setting(symbol, self.config.default_leverage)
        if s.margin_mode == CROSS:
            lev = s.cross_lev
        else:
            lev = s.long_lev if position_side(side, close_flag) == LONG else s.short_lev
        if close_flag == 0:
            w = acct.wallets.get(asset)
            if w is None:
                w = acct.wallet(asset)
            unit = m.units.get((ticks, lev))
            if unit is None:
                unit = m.unit(ticks, lev)
            margin = (qty * unit[0] + unit[1]) // unit[2]      # accounts.times, inlined
            r = acct.risk
            if r is None or r[0] is not self._epoch or r[1] != asset:
                r = self._risk(acct, asset)
            if crossing:
                free = w.balance - w.order_margin - w.pos_margin + r[2]
                leg = acct.positions.get((symbol, LONG if buy else SHORT))
                if not self._bounded or free < usage_bound(
                        m, qty, -keys[-1] if buy else ticks, unit, leg.cost if leg else 0):
                    if available_after(acct, m, side, ticks, qty, unit, self._lev_rate(lev),
                                       self._maker_rate, self._taker_rate, self._lev_rate,
                                       s.margin_mode == CROSS, self._inv_marks, r[4]) < 0:
                        raise err(INSUFFICIENT_MARGIN, "qty", "insufficient margin")
            elif margin > w.balance - w.order_margin - w.pos_margin + r[2]:
                raise err(INSUFFICIENT_MARGIN, "qty", "insufficient margin")
            w.order_margin += margin
        else:
            pos_side = position_side(side, close_flag)
            pos = acct.positions.get((symbol, pos_side))
            if pos is None:
                pos = acct.position(symbol, pos_side, asset)
            if qty > pos.qty - pos.closing:
                raise err(EXCEED_POSITION, "qty", "close qty exceeds available position")
            pos.closing += qty
            unit = None
            margin = 0
        oid = self._next_oid
        self._next_oid = oid + 1
        order = Order(oid, acct.id, symbol, side, close_flag, ticks, qty, client_oid, now_ms,
                      lev, unit, margin)
        acct.orders[oid] = order
        acct.open_orders[oid] = order
        if client_oid:
            by_client = acct.by_client.get(client_oid)
            if by_client is None:
                acct.by_client[client_oid] = [order]
            else:
                by_client.append(order)
        if crossing:
            fills = self._book_fills(m, acct, order, book.match(order))
            if order.filled < qty:
                book.rest(order)
                order.status = PARTIAL
            else:
                order.status = FILLED
                self._finalize(acct, order)
            return order, fills
        # no fill: rest the order on its level (OrderBook.rest without the touched record)
        order.status = NEW
        if buy:
            key, keys = ticks, book.bid_keys
        else:
            key, keys = -ticks, book.ask_keys
        levels = book.levels
        level = levels.get(key)
        if level is None:
            level = levels[key] = Level()
            insort(keys, key)
        level.orders[oid] = order
        level.total += qty
        return order, []

    def cancel(self, acct: Account, m: Market, oid: int) -> Order:
        """Cancel the account's open order ``oid`` in ``m`` (-20002 if there is none)."""
        o = acct.open_orders.get(oid)
        if o is None or o.symbol != m.symbol:
            raise err(ORDER_NOT_FOUND, "id", "order not found or not open")
        book = m.book
        if o.side == BUY:
            key, keys = o.ticks, book.bid_keys
        else:
            key, keys = -o.ticks, book.ask_keys
        levels = book.levels
        level = levels[key]
        del level.orders[oid]
        left = o.qty - o.filled
        level.total -= left
        if not level.orders:
            del levels[key]
            del keys[bisect_left(keys, key)]
        if o.close_flag:
            pos = acct.position(m.symbol, SHORT if o.side == BUY else LONG, m.asset)
            pos.closing -= left
        else:
            w = acct.wallets.get(m.asset)
            if w is None:
                w = acct.wallet(m.asset)
            w.order_margin -= o.margin
            o.margin = 0
        o.status = CANCELLED
        self._finalize(acct, o)
        return o

    def _finalize(self, acct: Account, order: Order) -> None:
        """Move a final order from the open set to the bounded history."""
        acct.open_orders.pop(order.oid, None)
        finals = acct.finals
        finals.append(order.oid)
        if len(finals) > self._history_limit:
            old = acct.orders.pop(finals.popleft(), None)
            if old is not None and old.client_oid:
                # the client_oid index holds exactly the orders still in ``acct.orders``
                same = acct.by_client.get(old.client_oid)
                if same is not None:
                    for i, o in enumerate(same):
                        if o is old:
                            del same[i]
                            break
                    if not same:
                        del acct.by_client[old.client_oid]

    # ------------------------------------------------------------------ fills
    def _book_fills(self, m: Market, tacct: Account, taker: Order,
                    matches: list[tuple[Order, int, int]]) -> list[Fill]:
        """Book the engine's matches into both sides' accounts; the fill report."""
        cost2, cost_den, value2 = 2 * m.cost_num, m.cost_den, 2 * m.value_num
        mr0, mr1, mr2 = self._maker_rate
        tr0, tr1, tr2 = self._taker_rate
        accounts = self._accounts
        apply_fill = self._apply_fill
        fees = 0
        out = []
        total = taker.filled
        taker.filled = 0
        for maker, q, px in matches:
            d = px * cost_den
            cost = (q * cost2 + d) // (2 * d)          # m.fill_cost(q, px), inlined
            value = (q * value2 + d) // (2 * d)        # m.fill_value(q, px), inlined
            mfee = (cost * mr0 + mr1) // mr2           # accounts.times, inlined
            tfee = (cost * tr0 + tr1) // tr2
            macct = accounts[maker.account_id]
            maker.status = FILLED if maker.filled == maker.qty else PARTIAL
            apply_fill(m, macct, maker, q, cost, value, mfee)
            if maker.status == FILLED:
                self._finalize(macct, maker)
            taker.filled += q
            apply_fill(m, tacct, taker, q, cost, value, tfee)
            fees += mfee + tfee
            out.append((maker, q, px, cost, mfee, tfee))
        if taker.filled != total:   # pragma: no cover - engine invariant
            raise RuntimeError("fill bookkeeping mismatch")
        fee_wallet = self._fee.wallets.get(m.asset)
        if fee_wallet is None:
            fee_wallet = self._fee.wallet(m.asset)
        fee_wallet.balance += fees
        self._ledger_seq += 1
        return out

    def _lev_rate(self, leverage: Decimal) -> Rate:
        """The ``Rate`` of ``1 / leverage`` (position margin = ``times(cost, rate)``), cached."""
        r = self._lev_rates.get(leverage)
        if r is None:
            if len(self._lev_rates) > CACHE_LIMIT:
                self._lev_rates.clear()
            n, d = leverage.as_integer_ratio()
            r = self._lev_rates[leverage] = make_rate(d, n)
        return r

    def _apply_fill(self, m: Market, acct: Account, o: Order, q: int, cost: int, value: int,
                    fee: int) -> None:
        """One fill of ``o`` (``o.filled`` already counts it) into the account's books."""
        acct.risk = None
        w = acct.wallets.get(m.asset)
        if w is None:
            w = acct.wallet(m.asset)
        o.value += value
        o.fee += fee
        if o.close_flag == 0:
            left = o.qty - o.filled
            if left:
                unit = o.unit
                new_margin = (left * unit[0] + unit[1]) // unit[2]
            else:
                new_margin = 0
            w.order_margin -= o.margin - new_margin
            o.margin = new_margin
            key = (o.symbol, LONG if o.side == BUY else SHORT)
            pos = acct.positions.get(key)
            if pos is None:
                pos = acct.position(key[0], key[1], m.asset)
            lr = self._lev_rates.get(o.leverage)
            if lr is None:
                lr = self._lev_rate(o.leverage)
            pm = (cost * lr[0] + lr[1]) // lr[2]             # accounts.pos_margin
            pos.qty += q
            pos.cost += cost
            pos.margin += pm
            pos.value += value
            w.pos_margin += pm
        else:
            key = (o.symbol, SHORT if o.side == BUY else LONG)
            pos = acct.positions.get(key)
            if pos is None:
                pos = acct.position(key[0], key[1], m.asset)
            pos.closing -= q
            pnl, released = pos.reduce(q, cost)
            w.pos_margin -= released
            w.balance += pnl
        w.balance -= fee
