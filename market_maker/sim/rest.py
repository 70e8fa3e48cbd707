"""The REST endpoints of §2: parameter validation, then one call on the ``Exchange`` facade."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from .errors import BAD_VALUE, ApiError
from .validate import (CANDLE_INTERVALS, MAX_CLIENT_OID, Params, batch_filter, check_price,
                       order_query_filter)


@dataclass
class Ctx:
    """What a handler sees: the exchange, the caller's account (None on public calls), the time."""
    exchange: Any
    account_id: int | None
    now_ms: int


Handler = Callable[[Ctx, Params], Any]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    signed: bool
    limit: int
    window_s: int
    handler: Handler
    mutates: bool = False


def _asset(ctx: Ctx, p: Params, required: bool = True) -> str | None:
    asset = p.text("asset", required)
    if asset is not None and asset not in {s.asset for s in ctx.exchange.instruments.values()}:
        raise ApiError(BAD_VALUE, "asset", f"unknown asset {asset}")
    return asset


def _symbol(ctx: Ctx, p: Params, asset: str | None, required: bool = True) -> str | None:
    symbol = p.text("symbol", required)
    if symbol is None:
        return None
    spec = ctx.exchange.instruments.get(symbol)
    if spec is None or (asset is not None and spec.asset != asset):
        raise ApiError(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
    return symbol


def _market(ctx: Ctx, p: Params) -> tuple[str, str]:
    asset = _asset(ctx, p)
    return asset, _symbol(ctx, p, asset)


def _rows(rows: list) -> dict:
    return {"rows": rows}


# --- account -------------------------------------------------------------------------------

def fund_query(ctx: Ctx, p: Params) -> dict:
    return _rows(ctx.exchange.fund_account_rows(ctx.account_id, _asset(ctx, p, False)))


def pc_query(ctx: Ctx, p: Params) -> dict:
    return _rows(ctx.exchange.pc_account_rows(ctx.account_id, _asset(ctx, p, False)))


def transfer(ctx: Ctx, p: Params) -> dict:
    asset = _asset(ctx, p)
    src = p.integer("from", choices=(1, 2, 3))
    dst = p.integer("to", choices=(1, 2, 3))
    volume = p.decimal("volume")
    if src == dst:
        raise ApiError(BAD_VALUE, "to", "from and to must differ")
    ctx.exchange.transfer(ctx.account_id, asset, src, dst, volume)
    return {}


# --- public market data --------------------------------------------------------------------

def asset_query(ctx: Ctx, p: Params) -> dict:
    return _rows(ctx.exchange.asset_rows())


def contract_query(ctx: Ctx, p: Params) -> dict:
    return _rows(ctx.exchange.contract_rows(_asset(ctx, p)))


def instrument_query(ctx: Ctx, p: Params) -> dict:
    asset = _asset(ctx, p)
    symbol = _symbol(ctx, p, asset, False)
    symbols = [symbol] if symbol else sorted(s for s, spec in ctx.exchange.instruments.items()
                                             if spec.asset == asset)
    return _rows([ctx.exchange.instrument_row(s, ctx.now_ms) for s in symbols])


def candle_query(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    start = p.integer("start_time", False, lo=0)
    end = p.integer("end_time", False, lo=0)
    interval = p.integer("interval", False, choices=CANDLE_INTERVALS, default=1)
    size = p.integer("size", False, lo=1, hi=1440, default=100)
    return _rows(ctx.exchange.candles(symbol, start, end, interval, size))


def book_query(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    size = p.integer("size", False, lo=1, hi=50, default=50)
    return ctx.exchange.order_book(symbol, size)


def trade_query(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    gt = p.integer("gt_trade_id", False, lo=0)
    lt = p.integer("lt_trade_id", False, lo=0)
    count = p.integer("count", False, lo=1, hi=100, default=100)
    return _rows(ctx.exchange.trades(symbol, gt, lt, count))


# --- orders --------------------------------------------------------------------------------

def order_create(ctx: Ctx, p: Params) -> dict:
    asset, symbol = _market(ctx, p)
    spec = ctx.exchange.instruments[symbol]
    client_oid = p.text("client_oid", False, max_len=MAX_CLIENT_OID)
    side = p.flag("side")
    close_flag = p.flag("close_flag")
    p.integer("order_type", False, choices=(1,))
    price = check_price(p.decimal("price"), spec.tick_size, spec.price_precision)
    qty = p.integer("qty", lo=1)
    row = ctx.exchange.place_order(ctx.account_id, symbol, side, close_flag, price, qty,
                                   client_oid, ctx.now_ms)
    return {"order_id": row["order_id"]}


def order_cancel(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    order_id = p.text("id")
    row = ctx.exchange.cancel_order(ctx.account_id, symbol, order_id, ctx.now_ms)
    return {"order_id": row.get("order_id", order_id)}


def order_cancel_batch(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    ids = batch_filter(p.json_object("filter"))
    return _rows(ctx.exchange.cancel_batch(ctx.account_id, symbol, ids, ctx.now_ms))


def order_query(ctx: Ctx, p: Params) -> dict:
    asset = _asset(ctx, p)
    symbol = _symbol(ctx, p, asset, False)
    statuses, order_id = order_query_filter(p.json_object("filter", False))
    gt = p.integer("gt_order_id", False, lo=0)
    lt = p.integer("lt_order_id", False, lo=0)
    count = p.integer("count", False, lo=1, hi=100, default=100)
    rows = ctx.exchange.query_orders(ctx.account_id, symbol, statuses, order_id, gt, lt, count)
    if symbol is None:
        rows = [r for r in rows if ctx.exchange.instruments[r["symbol"]].asset == asset]
    return _rows(rows)


def setting_query(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    return ctx.exchange.setting_row(ctx.account_id, symbol)


# --- leverage and margin -------------------------------------------------------------------

def leverage_change(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    mode = p.integer("mode", choices=(1, 2))
    long_flag = p.flag("long_flag", False)
    leverage = p.decimal("leverage", max_decimals=2)
    ctx.exchange.change_leverage(ctx.account_id, symbol, mode, long_flag, leverage, ctx.now_ms)
    return {}


def margin_increase(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    long_flag = p.flag("long_flag")
    increase_flag = p.flag("increase_flag")
    margin = p.decimal("margin")
    ctx.exchange.increase_margin(ctx.account_id, symbol, long_flag, increase_flag, margin, ctx.now_ms)
    return {}


def margin_auto(ctx: Ctx, p: Params) -> dict:
    _, symbol = _market(ctx, p)
    long_flag = p.flag("long_flag")
    open_flag = p.flag("open_flag")
    ctx.exchange.auto_margin(ctx.account_id, symbol, long_flag, open_flag)
    return {}


_V = "/v1/api"
ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", f"{_V}/account/fund/query", True, 10, 1, fund_query),
    Endpoint("GET", f"{_V}/account/pc/query", True, 10, 1, pc_query),
    Endpoint("POST", f"{_V}/account/transfer", True, 1, 1, transfer, True),
    Endpoint("GET", f"{_V}/pc/asset/query", False, 5, 1, asset_query),
    Endpoint("GET", f"{_V}/pc/contract/query", False, 5, 1, contract_query),
    Endpoint("GET", f"{_V}/pc/instrument/query", False, 20, 1, instrument_query),
    Endpoint("GET", f"{_V}/pc/candle/query", False, 2, 1, candle_query),
    Endpoint("GET", f"{_V}/pc/order/book/query", False, 10, 1, book_query),
    Endpoint("GET", f"{_V}/pc/setting/query", True, 2, 1, setting_query),
    Endpoint("POST", f"{_V}/pc/order/create", True, 20, 1, order_create, True),
    Endpoint("POST", f"{_V}/pc/order/cancel", True, 20, 1, order_cancel, True),
    Endpoint("POST", f"{_V}/pc/order/cancel_batch", True, 1, 10, order_cancel_batch, True),
    Endpoint("GET", f"{_V}/pc/order/query", True, 10, 1, order_query),
    Endpoint("GET", f"{_V}/pc/trade/query", False, 10, 1, trade_query),
    Endpoint("POST", f"{_V}/pc/leverage/change", True, 5, 1, leverage_change, True),
    Endpoint("POST", f"{_V}/pc/margin/increase", True, 5, 1, margin_increase, True),
    Endpoint("POST", f"{_V}/pc/margin/auto", True, 2, 1, margin_auto, True),
)
