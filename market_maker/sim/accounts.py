"""Inverse-contract account ledger of the simulator (pure; no I/O, no clock).

Every settle-currency amount is an integer count of **ledger units** of 1e-12 (``SCALE``
units per BTC): balances, margins, position costs, fees, realised PnL.  Integer
arithmetic is exact and several times cheaper than ``Decimal``; Decimals appear only at
the edges (``to_units`` for amounts coming in, ``to_decimal`` and ``rows.ustr`` going
out).  Divisions round to the nearest unit, ties toward +infinity (``rdiv``).

Model, per account and settle asset (for the wire view see exchange.py and the facade
modules it names):

* ``Wallet.balance`` — contract-account wallet balance (deposits, realised PnL,
  fees, funding).  ``Wallet.fund`` — the separate "fund" account balance.
* ``Wallet.order_margin`` — sum of margin reserved by resting *open* orders:
  ``rdiv(remaining * face / price / leverage)``; no taker-fee reserve.
* ``Wallet.pos_margin`` — sum of the positions' margins.  A fill that opens
  ``q`` contracts at ``p`` adds ``rdiv(cost / leverage)`` with
  ``cost = rdiv(q * face / p)``; a close releases the pro-rata share.
* available = balance - order_margin - pos_margin + sum(min(0, upnl)) over
  cross positions, floored to a unit.  ``total`` (wire) = balance + unrealised PnL.
  An opening order must leave it >= 0 once booked: for one that crosses the book that
  is checked at the fill prices (precheck.py), where an inverse buy far above the ask
  books more margin than its limit price reserves.

Positions keep a cost basis ``cost = sum(q * face / p)`` (PnL is booked with it).  The
prices shown are the contract-weighted harmonic means ``qty * face / value``, where
``value`` is the same sum counted in much finer **value units** of 1e-40 (``VALUE_SCALE``;
``Position.value``, ``Order.value``): a 1e-12 cost would show a fill at 10100 as entry
10099.99999899.  With 1e-40 a single price, or several fills at one price, render as
exactly that price and mixed prices as the harmonic mean rounded to 1e-8 (the error of
the sum, half a unit per fill, is ~1e-28 of it).  A close takes its pro-rata share of
``value`` as of ``cost``.  Unrealised PnL is counted in finer **mark units**
of 1e-20 (``FINE`` = 1e8 mark units per ledger unit): the per-symbol inverse mark
``im = rdiv(face / mark)`` in mark units; long ``cost * FINE - qty * im``, short
``qty * im - cost * FINE``.  Because every fill is booked with one shared ``cost`` on
both sides, the sum of all accounts' equity is conserved *exactly* (fees go to an
internal fee account, funding rounding residue to the insurance account).

Liquidation (maintenance margin MM = mmr * cost):
* isolated: when ``margin + upnl <= MM``.  Liquidation price: long
  ``q*face / (margin + cost*(1-mmr))``, short ``q*face / (cost*(1+mmr) - margin)``.
  The position is taken over by the insurance account at the bankruptcy price
  (where margin + upnl = 0), i.e. with cost ``cost + margin`` (long) or
  ``cost - margin`` (short); the account loses exactly its position margin.
* cross: when ``balance - isolated margins + sum(cross upnl) <= sum(cross MM)``.
  All cross positions of that asset are taken over at the mark price and the
  remaining cross equity (positive or negative) is moved to the insurance account.
  Liquidation price of a symbol's cross legs (``cross_liquidation_price``, the same
  for both legs): the mark ``P`` of that symbol where the cross equity, with every
  other symbol at its mark, meets the maintenance margin.  As a function of ``P`` the
  equity is ``K + MM - (long qty - short qty) * face / P``, with ``K`` = balance -
  isolated margins + other symbols' cross upnl + long cost - short cost - MM, so:
  net long and ``K > 0``: liquidated at or below ``net * face / K``; net short and
  ``K < 0``: at or above ``-net * face / K``; net short with ``K >= 0`` or flat with
  ``K > 0``: never (price 0: a fully hedged account cannot be liquidated by that
  mark).  Net long or flat with ``K <= 0`` is at or below maintenance at every price
  (the next liquidation pass takes it): the price shown is the current mark.
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal, localcontext

SCALE = 10 ** 12              # ledger units per settle-currency unit
MARK_SCALE = 10 ** 20         # mark units (unrealised PnL, inverse marks) per settle unit
FINE = MARK_SCALE // SCALE    # mark units per ledger unit
VALUE_SCALE = 10 ** 40        # value units (displayed entry and average prices) per settle unit
VALUE_PER_UNIT = VALUE_SCALE // SCALE   # value units per ledger unit

CROSS = 1
ISOLATED = 2
LONG = 1
SHORT = 0

Ratio = tuple[int, int]       # (numerator, denominator > 0) of an exact Decimal


def rdiv(n: int, d: int) -> int:
    """``n / d`` rounded to the nearest integer, ties toward +infinity (``d > 0``)."""
    return (2 * n + d) // (2 * d)


Rate = tuple[int, int, int]   # x -> rdiv(x * num, den), kept as (2 * num, den, 2 * den)


def make_rate(num: int, den: int) -> Rate:
    """The ``Rate`` multiplying by ``num / den`` (``den > 0``); apply it with ``times``."""
    return (2 * num, den, 2 * den)


def times(x: int, rate: Rate) -> int:
    """``rdiv(x * num, den)`` for ``rate = make_rate(num, den)``."""
    return (x * rate[0] + rate[1]) // rate[2]


def pos_margin(cost: int, leverage: Decimal) -> int:
    """Initial margin of a position of ``cost`` ledger units: ``rdiv(cost / leverage)``."""
    n, d = leverage.as_integer_ratio()
    return rdiv(cost * d, n)


def to_units(amount: Decimal) -> int:
    """A settle-currency amount in ledger units (rounded to 1e-12 with ``rdiv``)."""
    n, d = amount.as_integer_ratio()
    return rdiv(n * SCALE, d)


def is_whole_units(amount: Decimal) -> bool:
    """True if ``amount`` is an exact multiple of the ledger unit (1e-12)."""
    n, d = amount.as_integer_ratio()       # exact: no context rounding
    return n * SCALE % d == 0


def to_decimal(units: int, scale: int = SCALE) -> Decimal:
    """Ledger units (or mark units with ``scale=MARK_SCALE``) as an exact Decimal."""
    with localcontext() as ctx:
        ctx.prec = 80
        return Decimal(units) / scale


def inverse_mark(face: Decimal, mark: Decimal) -> int:
    """Value of one contract at ``mark`` in mark units (1e-20), shared by all accounts."""
    fn, fd = face.as_integer_ratio()
    mn, md = mark.as_integer_ratio()
    return rdiv(fn * md * MARK_SCALE, fd * mn)


def upnl(is_long: bool, qty: int, cost: int, im: int) -> int:
    """Unrealised PnL in mark units of ``qty`` contracts of ``cost`` ledger units at
    inverse mark ``im`` (exact)."""
    return cost * FINE - qty * im if is_long else qty * im - cost * FINE


def at_or_below(equity: int, cost: int, mmr: Ratio) -> bool:
    """``equity`` (mark units) <= maintenance margin ``mmr * cost`` (ledger units)."""
    return equity * mmr[1] <= mmr[0] * cost * FINE


class Setting:
    """Per account and symbol: margin mode and leverages."""
    __slots__ = ("margin_mode", "cross_lev", "long_lev", "short_lev")

    def __init__(self, leverage: Decimal) -> None:
        self.margin_mode = CROSS
        self.cross_lev = leverage
        self.long_lev = leverage
        self.short_lev = leverage

    def leverage(self, side: int) -> Decimal:
        """Leverage applying to a long (side 1) or short (side 0) position."""
        if self.margin_mode == CROSS:
            return self.cross_lev
        return self.long_lev if side == LONG else self.short_lev


class Position:
    """One side (long or short) of an account's position in one symbol."""
    __slots__ = ("symbol", "side", "asset", "qty", "closing", "cost", "margin", "realised",
                 "auto_flag", "value")

    def __init__(self, symbol: str, side: int, asset: str) -> None:
        self.symbol = symbol
        self.side = side
        self.asset = asset
        self.qty = 0
        self.closing = 0          # contracts held by resting close orders
        self.cost = 0             # sum(q*face/p) of the open contracts, ledger units
        self.margin = 0
        self.realised = 0
        self.auto_flag = 0
        self.value = 0            # cost in value units (1e-40), for the entry price only

    @property
    def avail_qty(self) -> int:
        """Contracts that a new close order may still take."""
        return self.qty - self.closing

    def upnl(self, im: int) -> int:
        """Unrealised PnL in mark units at inverse mark ``im`` (exact)."""
        return upnl(self.side == LONG, self.qty, self.cost, im)

    def add(self, qty: int, cost: int, margin: int, value: int) -> None:
        """Open ``qty`` more contracts with the given cost, margin and value (value units)."""
        self.qty += qty
        self.cost += cost
        self.margin += margin
        self.value += value

    def reduce(self, qty: int, cost: int) -> tuple[int, int]:
        """Close ``qty`` contracts whose exit value is ``cost``.

        Returns (realised PnL, released margin)."""
        if qty == self.qty:
            basis, released, value = self.cost, self.margin, self.value
        else:
            basis = rdiv(self.cost * qty, self.qty)
            released = rdiv(self.margin * qty, self.qty)
            value = rdiv(self.value * qty, self.qty)
        pnl = basis - cost if self.side == LONG else cost - basis
        self.qty -= qty
        self.cost -= basis
        self.margin -= released
        self.value -= value
        self.realised += pnl
        return pnl, released


class Wallet:
    """Balances of one account in one settle asset."""
    __slots__ = ("asset", "balance", "fund", "order_margin", "pos_margin")

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.balance = 0
        self.fund = 0
        self.order_margin = 0
        self.pos_margin = 0


class Account:
    """A trading account: wallets per asset, two-way positions, settings, order history."""
    __slots__ = ("id", "name", "internal", "silent", "wallets", "positions", "settings", "orders",
                 "finals", "by_client", "open_orders", "risk")

    def __init__(self, account_id: int, name: str, internal: bool = False) -> None:
        self.id = account_id
        self.name = name
        self.internal = internal
        self.silent = internal   # the exchange queues none of its private events (Exchange.silence)
        self.wallets: dict[str, Wallet] = {}
        self.positions: dict[tuple[str, int], Position] = {}
        self.settings: dict[str, Setting] = {}
        self.orders: dict[int, object] = {}     # order_id -> engine.Order (ascending ids)
        self.finals: deque[int] = deque()       # final order ids, oldest first
        self.by_client: dict[str, list] = {}    # client_oid -> orders ever accepted
        self.open_orders: dict[int, object] = {}  # order_id -> open engine.Order
        self.risk: tuple | None = None          # Exchange._risk cache (see exchange.py)

    def wallet(self, asset: str) -> Wallet:
        """The wallet of ``asset`` (created empty on first use)."""
        w = self.wallets.get(asset)
        if w is None:
            w = self.wallets[asset] = Wallet(asset)
        return w

    def position(self, symbol: str, side: int, asset: str) -> Position:
        """The long (1) or short (0) position in ``symbol`` (created flat on first use)."""
        key = (symbol, side)
        p = self.positions.get(key)
        if p is None:
            p = self.positions[key] = Position(symbol, side, asset)
        return p

    def setting(self, symbol: str, leverage: Decimal) -> Setting:
        """Settings of ``symbol`` (created with ``leverage`` on first use)."""
        s = self.settings.get(symbol)
        if s is None:
            s = self.settings[symbol] = Setting(leverage)
        return s

    def asset_positions(self, asset: str) -> list[Position]:
        """Non-flat positions settled in ``asset``."""
        return [p for p in self.positions.values() if p.qty and p.asset == asset]


def cross_upnl_loss(acct: Account, asset: str, inv_marks: dict[str, int]) -> int:
    """Sum of negative unrealised PnL (mark units) of the account's cross positions."""
    loss = 0
    for p in acct.positions.values():
        if p.qty and p.asset == asset:
            s = acct.settings.get(p.symbol)
            if s is None or s.margin_mode == CROSS:
                u = p.upnl(inv_marks[p.symbol])
                if u < 0:
                    loss += u
    return loss


def available(acct: Account, asset: str, inv_marks: dict[str, int]) -> int:
    """Ledger units free for new orders, transfers and margin increases (floored)."""
    w = acct.wallet(asset)
    return (w.balance - w.order_margin - w.pos_margin
            + cross_upnl_loss(acct, asset, inv_marks) // FINE)


def upnl_total(acct: Account, asset: str, inv_marks: dict[str, int]) -> int:
    """Exact unrealised PnL (mark units) of all the account's positions in ``asset``."""
    total = 0
    for p in acct.positions.values():
        if p.qty and p.asset == asset:
            total += p.upnl(inv_marks[p.symbol])
    return total


def cross_liquidation_price(symbol: str, positions: tuple, balance: int, mmr: Ratio,
                            face: Decimal, mark: Decimal) -> Decimal:
    """Liquidation price of the cross legs of ``symbol`` (see module doc), to 1e-8.

    ``positions`` = ((is_long, qty, cost, is_cross, im, margin, symbol), ...) of every
    non-flat position of the asset (``Core._risk``), ``balance`` the contract balance
    (ledger units).  Exact in integers scaled by the denominator of ``mmr``."""
    n, d = mmr
    k = balance * FINE                  # mark units
    cross_cost = net = 0
    for is_long, q, c, is_cross, im, margin, sym in positions:
        if not is_cross:
            k -= margin * FINE
        else:
            cross_cost += c
            if sym != symbol:
                k += upnl(is_long, q, c, im)
            elif is_long:
                k += c * FINE
                net += q
            else:
                k -= c * FINE
                net -= q
    k = k * d - n * cross_cost * FINE   # K * d
    if (net > 0 and k > 0) or (net < 0 and k < 0):
        fn, fd = face.as_integer_ratio()
        return Decimal(rdiv(abs(net) * fn * d * MARK_SCALE * 10 ** 8, fd * abs(k))).scaleb(-8)
    if net >= 0 and k <= 0:
        return mark
    return Decimal(0)


def cross_state(acct: Account, asset: str,
                inv_marks: dict[str, int]) -> tuple[int, int, list[Position]]:
    """(cross equity in mark units, cost of the cross positions, cross positions) of ``asset``.

    The cross maintenance margin is ``mmr * cost`` (see ``at_or_below``)."""
    w = acct.wallet(asset)
    equity = w.balance * FINE
    cost = 0
    crosses: list[Position] = []
    for p in acct.positions.values():
        if not p.qty or p.asset != asset:
            continue
        s = acct.settings.get(p.symbol)
        if s is not None and s.margin_mode == ISOLATED:
            equity -= p.margin * FINE
        else:
            equity += p.upnl(inv_marks[p.symbol])
            cost += p.cost
            crosses.append(p)
    return equity, cost, crosses
