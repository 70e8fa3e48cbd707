"""Inverse-contract account ledger of the simulator (pure; no I/O, no clock).

Model, per account and settle asset (see ``docs`` in exchange.py for the wire view):

* ``Wallet.balance`` — contract-account wallet balance (deposits, realised PnL,
  fees, funding).  ``Wallet.fund`` — the separate "fund" account balance.
* ``Wallet.order_margin`` — sum of margin reserved by resting *open* orders:
  ``quantize(remaining * face / price / leverage)``; no taker-fee reserve.
* ``Wallet.pos_margin`` — sum of the positions' margins.  A fill that opens
  ``q`` contracts at ``p`` adds ``quantize(cost / leverage)`` with
  ``cost = quantize(q * face / p)``; a close releases the pro-rata share.
* available = balance - order_margin - pos_margin + sum(min(0, upnl)) over
  cross positions.  ``total`` (wire) = balance + unrealised PnL.

Positions keep a cost basis ``cost = sum(q * face / p)`` in settle currency, so the
entry price is the harmonic mean ``qty * face / cost``.  Unrealised PnL uses the
per-symbol inverse mark ``im = quantize(face / mark, 1e-20)``: long
``cost - qty * im``, short ``qty * im - cost``.  Because every fill is booked with
one shared ``cost`` value on both sides and ``qty * im`` is exact, the sum of all
accounts' equity is conserved *exactly* (fees go to an internal fee account,
funding rounding residue to the insurance account).

Liquidation (maintenance margin MM = mmr * cost):
* isolated: when ``margin + upnl <= MM``.  Liquidation price: long
  ``q*face / (margin + cost*(1-mmr))``, short ``q*face / (cost*(1+mmr) - margin)``.
  The position is taken over by the insurance account at the bankruptcy price
  (where margin + upnl = 0), i.e. with cost ``cost + margin`` (long) or
  ``cost - margin`` (short); the account loses exactly its position margin.
* cross: when ``balance - isolated margins + sum(cross upnl) <= sum(cross MM)``.
  All cross positions of that asset are taken over at the mark price and the
  remaining cross equity (positive or negative) is moved to the insurance account.
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal

Q = Decimal("1e-12")          # settle-currency quantum of balances, costs, fees
IM_Q = Decimal("1e-20")       # quantum of the inverse mark price face/mark
ZERO = Decimal(0)
ONE = Decimal(1)

CROSS = 1
ISOLATED = 2
LONG = 1
SHORT = 0


def q12(value: Decimal) -> Decimal:
    """Round a settle-currency amount to the ledger quantum."""
    return value.quantize(Q)


def inverse_mark(face: Decimal, mark: Decimal) -> Decimal:
    """Value of one contract in settle currency at ``mark`` (quantized, shared by all)."""
    return (face / mark).quantize(IM_Q)


def fill_cost(qty: int, face: Decimal, price: Decimal) -> Decimal:
    """Settle-currency notional of ``qty`` contracts at ``price``: qty*face/price."""
    return (qty * face / price).quantize(Q)


def order_margin(qty: int, unit: Decimal) -> Decimal:
    """Margin reserved by ``qty`` contracts; ``unit`` = face / price / leverage."""
    return (qty * unit).quantize(Q)


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
                 "auto_flag")

    def __init__(self, symbol: str, side: int, asset: str) -> None:
        self.symbol = symbol
        self.side = side
        self.asset = asset
        self.qty = 0
        self.closing = 0          # contracts held by resting close orders
        self.cost = ZERO          # sum(q*face/p) of the open contracts
        self.margin = ZERO
        self.realised = ZERO
        self.auto_flag = 0

    @property
    def avail_qty(self) -> int:
        """Contracts that a new close order may still take."""
        return self.qty - self.closing

    def upnl(self, im: Decimal) -> Decimal:
        """Unrealised PnL at inverse mark ``im`` (exact, not quantized)."""
        if self.side == LONG:
            return self.cost - self.qty * im
        return self.qty * im - self.cost

    def entry_price(self, face: Decimal) -> Decimal:
        """Harmonic average entry price (0 when flat)."""
        if not self.qty or not self.cost:
            return ZERO
        return self.qty * face / self.cost

    def add(self, qty: int, cost: Decimal, margin: Decimal) -> None:
        """Open ``qty`` more contracts with the given cost and margin."""
        self.qty += qty
        self.cost += cost
        self.margin += margin

    def reduce(self, qty: int, cost: Decimal) -> tuple[Decimal, Decimal]:
        """Close ``qty`` contracts whose exit value is ``cost``.

        Returns (realised PnL, released margin)."""
        if qty == self.qty:
            basis, released = self.cost, self.margin
        else:
            basis = q12(self.cost * qty / self.qty)
            released = q12(self.margin * qty / self.qty)
        pnl = basis - cost if self.side == LONG else cost - basis
        self.qty -= qty
        self.cost -= basis
        self.margin -= released
        self.realised += pnl
        return pnl, released


class Wallet:
    """Balances of one account in one settle asset."""
    __slots__ = ("asset", "balance", "fund", "order_margin", "pos_margin")

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.balance = ZERO
        self.fund = ZERO
        self.order_margin = ZERO
        self.pos_margin = ZERO


class Account:
    """A trading account: wallets per asset, two-way positions, settings, order history."""
    __slots__ = ("id", "name", "internal", "wallets", "positions", "settings", "orders",
                 "finals", "by_client", "open_orders", "risk")

    def __init__(self, account_id: int, name: str, internal: bool = False) -> None:
        self.id = account_id
        self.name = name
        self.internal = internal
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


def cross_upnl_loss(acct: Account, asset: str, inv_marks: dict[str, Decimal]) -> Decimal:
    """Sum of negative unrealised PnL of the account's cross positions in ``asset``."""
    loss = ZERO
    for p in acct.positions.values():
        if p.qty and p.asset == asset:
            s = acct.settings.get(p.symbol)
            if s is None or s.margin_mode == CROSS:
                u = p.upnl(inv_marks[p.symbol])
                if u < 0:
                    loss += u
    return loss


def available(acct: Account, asset: str, inv_marks: dict[str, Decimal]) -> Decimal:
    """Balance free for new orders, transfers and margin increases."""
    w = acct.wallet(asset)
    return w.balance - w.order_margin - w.pos_margin + cross_upnl_loss(acct, asset, inv_marks)


def upnl_total(acct: Account, asset: str, inv_marks: dict[str, Decimal]) -> Decimal:
    """Exact unrealised PnL of all the account's positions settled in ``asset``."""
    total = ZERO
    for p in acct.positions.values():
        if p.qty and p.asset == asset:
            total += p.upnl(inv_marks[p.symbol])
    return total


def liquidation_price(pos: Position, margin: Decimal, face: Decimal, mmr: Decimal) -> Decimal:
    """Mark price at which ``margin + upnl`` falls to ``mmr * cost`` (0 if none)."""
    if not pos.qty:
        return ZERO
    if pos.side == LONG:
        denom = margin + pos.cost * (ONE - mmr)
    else:
        denom = pos.cost * (ONE + mmr) - margin
    if denom <= 0:
        return ZERO
    return pos.qty * face / denom


def cross_state(acct: Account, asset: str, inv_marks: dict[str, Decimal],
                mmr: Decimal) -> tuple[Decimal, Decimal, list[Position]]:
    """(cross equity, cross maintenance margin, cross positions) of ``asset``."""
    w = acct.wallet(asset)
    equity = w.balance
    maint = ZERO
    crosses: list[Position] = []
    for p in acct.positions.values():
        if not p.qty or p.asset != asset:
            continue
        s = acct.settings.get(p.symbol)
        if s is not None and s.margin_mode == ISOLATED:
            equity -= p.margin
        else:
            equity += p.upnl(inv_marks[p.symbol])
            maint += mmr * p.cost
            crosses.append(p)
    return equity, maint, crosses


def isolated_effective_margin(acct: Account, pos: Position, inv_marks: dict[str, Decimal],
                              mmr: Decimal) -> Decimal:
    """Margin backing ``pos`` for the liquidation-price formula (cross: the free equity)."""
    s = acct.settings.get(pos.symbol)
    if s is not None and s.margin_mode == ISOLATED:
        return pos.margin
    equity, maint, crosses = cross_state(acct, pos.asset, inv_marks, mmr)
    return equity - pos.upnl(inv_marks[pos.symbol]) - (maint - mmr * pos.cost)
