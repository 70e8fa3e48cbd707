"""Account administration of the ``Exchange`` facade: balance and position rows, transfers,
leverage and margin settings.

``AccountAdmin`` is a mixin of ``Exchange`` (it queues its events with ``Exchange._touch``
and ``_flush``, and runs ``_check_liquidations`` after a leverage change).

* ``total`` (margin/pc rows) = balance + unrealised PnL.
* Position row: ``pos_margin_ratio`` = (pos_margin + pnl) / (qty*face/mark);
  ``pos_pnl_ratio`` = pnl / pos_margin.  Position events snapshot their inputs
  (``_position_snapshot``); the liquidation price is derived when the row is read
  (``_position_row_of``).
* The cross ``liquidation_price`` is the same on both legs of a symbol: the mark of
  that symbol where the account's cross equity (both legs' upnl at that mark, other
  symbols at theirs) meets the maintenance margin; below it for a net long, above it
  for a net short; "0" when no mark liquidates (e.g. a fully hedged account); the
  current mark when the account is at or below maintenance at every mark.
* Changing leverage re-margins to cost/leverage exactly the open legs whose leverage
  changes (cross: the shared cross leverage, so both legs; isolated: the leg(s) named by
  ``long_flag``); the other leg keeps its margin, including any added with
  ``increase_margin`` (-20001 if the increase does not fit).  Resting orders keep the
  margin reserved at placement.  The margin mode of a symbol cannot change while the
  account has a position or an open order in it (-10013 "mode").
* The per-account risk cache (``Account.risk``, ``Core._risk``) serves the margin and
  position rows.
"""
from __future__ import annotations

from decimal import Decimal

from . import accounts as ac
from .accounts import CROSS, FINE, ISOLATED, LONG, MARK_SCALE, SHORT, Account, Position
from .core import BAD_VALUE, INSUFFICIENT_MARGIN, Core, err
from .market_data import _Market
from .rows import dstr, margin_row, position_row, ustr

_DZERO = Decimal(0)
_err = err


def _position_row_of(symbol: str, side: int, asset: str, qty: int, closing: int, cost: int,
                     value: int, margin: int, realised: int, auto_flag: int, mode: int,
                     leverage: Decimal, im: int, mark: Decimal, face: Decimal, mmr: Decimal,
                     balance: int | None, snap: tuple | None) -> dict:
    """Position row from a snapshot; the liquidation price is derived here, on first read.

    Amounts in ledger units, ``im`` in mark units (accounts.py).  Isolated: the
    position's own margin backs it (exact in integers scaled by the denominator of
    ``mmr``, one Decimal division at the end).  Cross: the account's cross equity as a
    function of this symbol's mark, both legs at once (``accounts.cross_liquidation_price``
    over the snapshot of the account's positions)."""
    liq = _DZERO
    if qty:
        n, d = mmr.as_integer_ratio()
        if mode != ISOLATED:
            liq = ac.cross_liquidation_price(symbol, snap, balance, (n, d), face,  # type: ignore[arg-type]
                                             mark)
        else:
            eff = margin * FINE * d
            if side == LONG:
                denom = eff + cost * FINE * (d - n)
            else:
                denom = cost * FINE * (d + n) - eff
            if denom > 0:
                fn, fd = face.as_integer_ratio()
                liq = Decimal(qty * fn * d * MARK_SCALE) / Decimal(fd * denom)
    return position_row(symbol, side, asset, qty, closing, cost, value, margin, realised,
                        auto_flag, mode, leverage, im, face, mmr, liq)


class AccountAdmin(Core):
    """Balance and position rows, transfers, leverage and margin (a mixin of ``Exchange``)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]

    def _asset(self, asset: str) -> str:
        if asset not in self._assets:
            raise _err(BAD_VALUE, "asset", f"unknown asset {asset}")
        return asset

    # ------------------------------------------------------------------ balances
    def _margin_snapshot(self, acct: Account, asset: str) -> tuple:
        w = acct.wallets.get(asset)
        if w is None:
            w = acct.wallet(asset)
        r = acct.risk
        if r is None or r[0] is not self._epoch or r[1] != asset:
            r = self._risk(acct, asset)
        return (asset, w.balance, w.order_margin, w.pos_margin, r[3])

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
        return [{"asset": a, "available": ustr(acct.wallet(a).fund), "lock": "0",
                 "total": ustr(acct.wallet(a).fund)}
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
                or not ac.is_whole_units(volume):
            raise _err(BAD_VALUE, "volume")
        units = ac.to_units(volume)
        w = acct.wallet(asset)
        if from_type == 1:
            if units > w.fund:
                raise _err(INSUFFICIENT_MARGIN, "volume", "insufficient fund balance")
            w.fund -= units
            w.balance += units
        else:
            if units > ac.available(acct, asset, self._inv_marks):
                raise _err(INSUFFICIENT_MARGIN, "volume", "insufficient available balance")
            w.balance -= units
            w.fund += units
        self._ledger_seq += 1
        self._touch(acct, asset)
        self._flush()

    # ------------------------------------------------------------------ positions
    def _position_snapshot(self, acct: Account, pos: Position) -> tuple:
        """Arguments of ``_position_row_of`` (the liquidation price is computed on read)."""
        m = self._markets[pos.symbol]
        setting = acct.settings.get(pos.symbol)
        if setting is None:
            setting = acct.setting(pos.symbol, self.config.default_leverage)
        mode = setting.margin_mode
        if mode == CROSS:
            lev = setting.cross_lev
        else:
            lev = setting.long_lev if pos.side == LONG else setting.short_lev
        balance = snap = None
        if pos.qty and mode != ISOLATED:
            asset = pos.asset
            w = acct.wallets.get(asset)
            if w is None:
                w = acct.wallet(asset)
            balance = w.balance
            r = acct.risk
            if r is None or r[0] is not self._epoch or r[1] != asset:
                r = self._risk(acct, asset)
            snap = r[3]
        return (pos.symbol, pos.side, pos.asset, pos.qty, pos.closing, pos.cost, pos.value,
                pos.margin, pos.realised, pos.auto_flag, mode, lev, m.im, m.mark, m.face,
                self._mmr, balance, snap)

    def _position_row(self, acct: Account, pos: Position) -> dict:
        return _position_row_of(*self._position_snapshot(acct, pos))

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
        # only a leg whose leverage changes is re-margined: margin added to the other leg
        # with increase_margin stays where it is
        changed = [new.leverage(p.side) != s.leverage(p.side) for p in positions]
        deltas = [ac.pos_margin(p.cost, new.leverage(p.side)) - p.margin if c and p.qty else 0
                  for p, c in zip(positions, changed)]
        increase = sum(d for d in deltas if d > 0)
        if increase > 0 and increase > ac.available(acct, m.asset, self._inv_marks) + \
                sum(-d for d in deltas if d < 0):
            raise _err(INSUFFICIENT_MARGIN, "leverage", "insufficient margin for leverage")
        acct.settings[symbol] = new
        w = acct.wallet(m.asset)
        for p, c, d in zip(positions, changed, deltas):
            p.margin += d
            w.pos_margin += d
            self._touch(acct, m.asset, p if c or mode != s.margin_mode else None)
        self._bump()
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
                or not ac.is_whole_units(margin):
            raise _err(BAD_VALUE, "margin")
        units = ac.to_units(margin)
        s = acct.setting(symbol, self.config.default_leverage)
        if s.margin_mode != ISOLATED:
            raise _err(BAD_VALUE, "symbol", "margin can only be changed on isolated positions")
        pos = acct.position(symbol, LONG if long_flag else SHORT, m.asset)
        if not pos.qty:
            raise _err(BAD_VALUE, "long_flag", "no position")
        w = acct.wallet(m.asset)
        if increase_flag:
            if units > ac.available(acct, m.asset, self._inv_marks):
                raise _err(INSUFFICIENT_MARGIN, "margin")
            pos.margin += units
            w.pos_margin += units
        else:
            # the initial margin plus any unrealised loss must stay (in mark units)
            floor = ac.pos_margin(pos.cost, s.leverage(pos.side)) * FINE - min(pos.upnl(m.im), 0)
            if (pos.margin - units) * FINE < floor:
                raise _err(BAD_VALUE, "margin", "margin would fall below the initial margin")
            pos.margin -= units
            w.pos_margin -= units
        self._bump()
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
