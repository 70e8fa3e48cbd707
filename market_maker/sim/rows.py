"""Wire-row formatting of the simulator: every number becomes a plain decimal string.

Prices are ``ticks * tick_size`` rendered with ``format(d, "f")`` (so with tick 0.5
every price has one decimal: "10000.0", "10000.5").  Other decimals, and amounts in
the ledger's integer units of 1e-12 (``ustr``), are rendered without exponent and
without trailing zeros ("0.00086", "10", "-0.5").
Order rows are filled into a copy of a per-asset template whose keys are already in
wire order (copying a dict is much cheaper than building an 18-key display).
"""
from __future__ import annotations

from decimal import Decimal

from .accounts import FINE, SCALE, VALUE_SCALE, rdiv, upnl
from .engine import Order

AVG_Q = Decimal("1e-8")
AVG_SCALE = 10 ** 8          # displayed average / entry prices: units of AVG_Q
BOOK_ID_BASE = 100_000_000


def dstr(value: Decimal) -> str:
    """Plain string of a decimal: no exponent, no trailing zeros, never "-0"."""
    if not value:
        return "0"
    s = str(value)              # same text as format(value, "f") unless it has an exponent
    if "E" in s:
        s = format(value, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def ustr(units: int) -> str:
    """Plain string of an amount in ledger units (1e-12): same text as ``dstr``."""
    if not units:
        return "0"
    if units < 0:
        whole, frac = divmod(-units, SCALE)
        sign = "-"
    else:
        whole, frac = divmod(units, SCALE)
        sign = ""
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:012d}".rstrip("0")


def harmonic_price(qty: int, face: Decimal, value: int) -> int:
    """Price of ``qty`` contracts of ``face`` worth ``value`` value units (accounts.py), in
    units of 1e-8 (nearest, ties up): ``qty * face / value``, the contract-weighted
    harmonic mean of their fill prices."""
    fn, fd = face.as_integer_ratio()
    return rdiv(qty * fn * VALUE_SCALE * AVG_SCALE, fd * value)


class PriceFormatter:
    """Cached tick -> price-string conversion for one instrument."""
    __slots__ = ("tick", "symbol_id", "face", "_tick_q", "_cache")

    def __init__(self, tick: Decimal, symbol_id: int, face: Decimal = Decimal(1)) -> None:
        self.tick = tick
        self.symbol_id = symbol_id
        self.face = face
        tn, td = tick.as_integer_ratio()
        # the tick in units of 1e-8 (None if finer): average prices on a tick use ``price``
        self._tick_q = tn * AVG_SCALE // td if tn * AVG_SCALE % td == 0 else None
        self._cache: dict[int, str] = {}

    def price(self, ticks: int) -> str:
        """Price string of ``ticks``."""
        s = self._cache.get(ticks)
        if s is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            s = self._cache[ticks] = format(ticks * self.tick, "f")
        return s

    def book_id(self, ticks: int) -> str:
        """Order-book level id: 100000000 * symbol_id - price / tick_size."""
        return str(BOOK_ID_BASE * self.symbol_id - ticks)

    def avg_price(self, value: int, filled: int) -> str:
        """Average fill price of an order from its fills' ``value`` (value units): the
        contract-weighted harmonic mean to 1e-8, "0" before any fill.  A mean that is a
        whole number of ticks renders as a price ("10000.5", "10000.0")."""
        if not filled:
            return "0"
        avg = harmonic_price(filled, self.face, value)
        q = self._tick_q
        if q is not None:
            ticks, rest = divmod(avg, q)
            if not rest:
                return self.price(ticks)
        return dstr(Decimal(avg).scaleb(-8))


_STATUS_TEXT = {1: "1", 2: "2", 4: "4", 8: "8", 16: "16", 32: "32"}
_dstr_cache: dict[Decimal, str] = {}


def dstr_cached(value: Decimal) -> str:
    """``dstr`` memoised by value (for the few distinct values such as leverages)."""
    s = _dstr_cache.get(value)
    if s is None:
        if len(_dstr_cache) > 10_000:
            _dstr_cache.clear()
        s = _dstr_cache[value] = dstr(value)
    return s


_ORDER_KEYS = ("order_id", "client_oid", "status", "side", "close_flag", "price", "qty",
               "filled_qty", "avg_price", "fee", "leverage", "order_margin", "order_type",
               "ctime", "asset", "settle_currency", "symbol", "instrument_type")
_order_templates: dict[str, dict] = {}


def _order_template(asset: str) -> dict:
    tpl = dict.fromkeys(_ORDER_KEYS, "")
    tpl.update(order_type="1", asset=asset, settle_currency=asset, instrument_type="pc")
    if len(_order_templates) > 1000:
        _order_templates.clear()
    _order_templates[asset] = tpl
    return tpl


def order_row(o: Order, fmt: PriceFormatter, asset: str, status: int, filled: int,
              value: int, fee: int, margin: int) -> dict:
    """Order row of §2 (+ instrument_type); mutable fields passed as a snapshot."""
    # copying a template with the keys in wire order is cheaper than a dict display
    r = (_order_templates.get(asset) or _order_template(asset)).copy()
    r["order_id"] = str(o.oid)
    r["client_oid"] = o.client_oid or None  # JSON null when the order had none (gte-api.md §2)
    r["status"] = _STATUS_TEXT.get(status) or str(status)
    r["side"] = "1" if o.side else "0"
    r["close_flag"] = "1" if o.close_flag else "0"
    r["price"] = fmt._cache.get(o.ticks) or fmt.price(o.ticks)
    r["qty"] = str(o.qty)
    if filled:
        r["filled_qty"] = str(filled)
        r["avg_price"] = fmt.avg_price(value, filled)
    else:
        r["filled_qty"] = r["avg_price"] = "0"
    r["fee"] = ustr(fee) if fee else "0"
    r["leverage"] = _dstr_cache.get(o.leverage) or dstr_cached(o.leverage)
    r["order_margin"] = ustr(margin) if margin else "0"
    r["ctime"] = str(o.ctime)
    r["symbol"] = o.symbol
    return r


def current_order_row(o: Order, fmt: PriceFormatter, asset: str) -> dict:
    """Order row of the order's present state."""
    return order_row(o, fmt, asset, o.status, o.filled, o.value, o.fee, o.margin)


def execution_row(o: Order, fmt: PriceFormatter, asset: str, exec_id: int, qty: int,
                  ticks: int, fee: int, maker: bool, match_id: int, now_ms: int,
                  status: int, cum_qty: int) -> dict:
    """Execution row of §3 for one fill of ``o`` (+ last_price, fee conventions)."""
    return {
        "exec_id": str(exec_id),
        "order_id": str(o.oid),
        "exec_type": "4",
        "order_status": str(status),
        "side": "1" if o.side else "0",
        "close_flag": "1" if o.close_flag else "0",
        "order_price": fmt.price(o.ticks),
        "order_qty": str(o.qty),
        "order_type": "1",
        "last_qty": str(qty),
        "cum_qty": str(cum_qty),
        "leaves_qty": str(o.qty - cum_qty),
        "maker_flag": "1" if maker else "0",
        "trade_match_id": str(match_id),
        "ctime": str(now_ms),
        "symbol": o.symbol,
        "settle_currency": asset,
        "instrument_type": "pc",
        "last_price": fmt.price(ticks),
        "fee": ustr(fee),
    }


def level_row(fmt: PriceFormatter, symbol: str, asset: str, side: int, ticks: int,
              size: int) -> dict:
    """order_book table row of one level."""
    return {
        "id": fmt.book_id(ticks),
        "instrument_type": "pc",
        "settle_currency": asset,
        "symbol": symbol,
        "side": "buy" if side else "sell",
        "price": fmt.price(ticks),
        "size": str(size),
    }


def level_delete_row(fmt: PriceFormatter, symbol: str, side: int, ticks: int) -> dict:
    """order_book delete row: the key plus symbol, side and price."""
    return {"id": fmt.book_id(ticks), "symbol": symbol, "side": "buy" if side else "sell",
            "price": fmt.price(ticks)}


def trade_row(trade_id: int, fmt: PriceFormatter, symbol: str, asset: str, taker_side: int,
              ticks: int, qty: int, now_ms: int) -> dict:
    """Trade row (REST fields of §2 and WebSocket fields of §3)."""
    return {
        "trade_id": str(trade_id),
        "price": fmt.price(ticks),
        "qty": str(qty),
        "asset": asset,
        "symbol": symbol,
        "trade_time": str(now_ms),
        "side": "buy" if taker_side else "sell",
        "instrument_type": "pc",
        "settle_currency": asset,
    }


def margin_row(asset: str, balance: int, order_margin: int, pos_margin: int,
               positions: tuple) -> dict:
    """§3 margin row; ``positions`` = ((is_long, qty, cost, is_cross, im, margin, symbol),
    ...)  (``Core._risk``).

    Amounts in ledger units, ``im`` in mark units; ``available`` is floored to a unit
    (what an order may still reserve), ``total`` rounded."""
    total = loss = 0
    for is_long, qty, cost, is_cross, im, _margin, _symbol in positions:
        u = upnl(is_long, qty, cost, im)
        total += u
        if is_cross and u < 0:
            loss += u
    return {"settle_currency": asset, "instrument_type": "pc",
            "total": ustr(balance + rdiv(total, FINE)),
            "available": ustr(balance - order_margin - pos_margin + loss // FINE),
            "order_margin": ustr(order_margin), "pos_margin": ustr(pos_margin)}


def position_row(symbol: str, side: int, asset: str, qty: int, closing: int, cost: int,
                 value: int, margin: int, realised: int, auto_flag: int, mode: int,
                 leverage: Decimal, im: int, face: Decimal, mmr: Decimal,
                 liq: Decimal) -> dict:
    """§3 position row from a snapshot (``liq`` already computed, 0 = none).

    Amounts in ledger units, ``im`` in mark units, ``value`` in value units (accounts.py)."""
    if qty:
        u = upnl(side == 1, qty, cost, im)
        ratio = (Decimal(margin * FINE + u) / Decimal(qty * im)).quantize(AVG_Q)
        pnl_ratio = ((Decimal(u) / Decimal(margin * FINE)).quantize(AVG_Q) if margin
                     else Decimal(0))
        entry = Decimal(harmonic_price(qty, face, value)).scaleb(-8) if value else Decimal(0)
        liq = liq.quantize(AVG_Q)
        pnl = rdiv(u, FINE)
    else:
        pnl = 0
        ratio = pnl_ratio = entry = liq = Decimal(0)
    return {
        "symbol": symbol, "side": str(side), "qty": str(qty), "avail_qty": str(qty - closing),
        "entry_price": dstr(entry), "leverage": dstr(leverage), "liquidation_price": dstr(liq),
        "margin_mode": str(mode), "pnl": ustr(pnl), "realised_pnl": ustr(realised),
        "pos_margin": ustr(margin), "pos_margin_ratio": dstr(ratio),
        "maint_margin_ratio": dstr(mmr), "pos_pnl_ratio": dstr(pnl_ratio),
        "auto_increase_flag": str(auto_flag), "settle_currency": asset,
        "instrument_type": "pc",
    }
