"""GTE REST client (gte-api.md §2): signed requests, retries, domain values out.

``GteRest`` is built in layers, one job per module:

* ``rest_transport.RestTransport``: sign, send, read the envelope, the retry
  policy (what is resent and what never is), the deadline, read-only mode;
* ``rest_orders.OrderEndpoints``: our orders -- ``client_oid`` naming, create
  (never placed twice: an unanswered create is looked up, else in doubt until it
  settles), cancels, order queries and paging;
* this module: the account, market data and leverage/margin endpoints, and the
  public client.
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional

import requests

from ..models import Book, Instrument, Margin, Trade
from . import parse
from .errors import GteError
from .ratelimit import RateLimiter
from .rest_orders import (ALL_STATUSES, MAX_BATCH_CANCEL, MAX_CLIENT_OID, OPEN_STATUS_LIST, ORDER_CANCEL,
                          ORDER_CANCEL_BATCH, ORDER_CREATE, ORDER_QUERY, SETTLE_GRACE_MS, OrderEndpoints)
from .rest_transport import (API_PREFIX, MAX_BACKOFF, MAX_QUERY_COUNT, RestStats, RestTransport, _copy_template,
                             _obj, _require_count, _require_decimal, _rows, filter_json)
from .signing import Credentials

__all__ = ["GteRest", "OrderEndpoints", "RestTransport", "RestStats", "filter_json", "API_PREFIX",
           "FUND_QUERY", "PC_ACCOUNT_QUERY", "TRANSFER", "ASSET_QUERY", "CONTRACT_QUERY", "INSTRUMENT_QUERY",
           "BOOK_QUERY", "SETTING_QUERY", "ORDER_CREATE", "ORDER_CANCEL", "ORDER_CANCEL_BATCH", "ORDER_QUERY",
           "TRADE_QUERY", "LEVERAGE_CHANGE", "MARGIN_INCREASE", "ALL_STATUSES", "OPEN_STATUS_LIST",
           "MAX_CLIENT_OID", "MAX_BATCH_CANCEL", "MAX_QUERY_COUNT", "MAX_BACKOFF", "SETTLE_GRACE_MS",
           "_copy_template"]  # the last one for the tests of the lean request copy

FUND_QUERY = "account/fund/query"
PC_ACCOUNT_QUERY = "account/pc/query"
TRANSFER = "account/transfer"
ASSET_QUERY = "pc/asset/query"
CONTRACT_QUERY = "pc/contract/query"
INSTRUMENT_QUERY = "pc/instrument/query"
BOOK_QUERY = "pc/order/book/query"
SETTING_QUERY = "pc/setting/query"
TRADE_QUERY = "pc/trade/query"
LEVERAGE_CHANGE = "pc/leverage/change"
MARGIN_INCREASE = "pc/margin/increase"


def _levels(raw: Any, descending: bool) -> tuple:
    if not isinstance(raw, list):
        raise parse.MalformedRow("order book side is not a list")
    levels = []
    for level in raw:
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise parse.MalformedRow(f"bad order book level {level!r}")
        row = {"price": level[0], "size": level[1]}
        levels.append((parse.dec(row, "price"), parse.integer(row, "size")))
    return tuple(sorted(levels, key=lambda lv: lv[0], reverse=descending))


class GteRest(OrderEndpoints):
    """Synchronous GTE REST client for one asset/symbol and one API key."""

    def __init__(self, base_url: str, credentials: Optional[Credentials], *, timeout: float = 7,
                 order_id_prefix: str = "mm", asset: str = "BTC", symbol: str = "BTC_USD",
                 rate_limiter: Optional[RateLimiter] = None, max_retries: int = 3,
                 backoff: float = 0.25, read_only: bool = False,
                 session: Optional[requests.Session] = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(base_url, credentials, order_id_prefix=order_id_prefix, timeout=timeout, asset=asset,
                         symbol=symbol, rate_limiter=rate_limiter, max_retries=max_retries, backoff=backoff,
                         read_only=read_only, session=session, sleep=sleep, clock=clock)

    def __repr__(self) -> str:
        return (f"GteRest(base_url={self.base_url!r}, credentials={self.credentials!r}, "
                f"symbol={self.symbol!r}, read_only={self.read_only})")

    def __enter__(self) -> "GteRest":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ accounts

    def fund_accounts(self, asset: Optional[str] = None) -> Dict[str, Dict[str, Decimal]]:
        """Fund-account balances by asset: ``{"BTC": {"available", "lock", "total"}}``."""
        data = self._call("GET", FUND_QUERY, {"asset": asset}, signed=True, idempotent=True)
        zero = Decimal(0)
        return {parse.text(row, "asset"): {name: parse.dec(row, name, zero)
                                           for name in ("available", "lock", "total")}
                for row in _rows(data)}

    def pc_accounts(self, asset: Optional[str] = None) -> List[Margin]:
        """Contract-account margin per settle currency."""
        data = self._call("GET", PC_ACCOUNT_QUERY, {"asset": asset}, signed=True, idempotent=True)
        return [parse.parse_margin(row) for row in _rows(data)]

    def transfer(self, from_account: int, to_account: int, volume: Decimal,
                 asset: Optional[str] = None) -> None:
        """Move ``volume`` of ``asset`` between accounts (1 fund, 2 contract, 3 spot). Not resent on doubt."""
        _require_decimal("volume", volume, positive=True)
        params = {"asset": asset or self.asset, "from": int(from_account), "to": int(to_account),
                  "volume": volume}
        self._call("POST", TRANSFER, params, signed=True, idempotent=False)

    # ------------------------------------------------------------------ market data

    def assets(self) -> List[str]:
        """Settle assets with perpetual contracts."""
        data = self._call("GET", ASSET_QUERY, {}, signed=False, idempotent=True)
        return [parse.text(row, "asset") for row in _rows(data)]

    def contracts(self, asset: Optional[str] = None) -> Dict[str, int]:
        """``{symbol: price_precision}`` of the asset's contracts."""
        data = self._call("GET", CONTRACT_QUERY, {"asset": asset or self.asset},
                          signed=False, idempotent=True)
        return {parse.text(row, "symbol"): parse.integer(row, "price_precision", 0) for row in _rows(data)}

    def instruments(self, asset: Optional[str] = None) -> List[Instrument]:
        """Every instrument of the asset."""
        data = self._call("GET", INSTRUMENT_QUERY, {"asset": asset or self.asset},
                          signed=False, idempotent=True)
        return [parse.parse_instrument(row) for row in _rows(data)]

    def instrument(self, symbol: Optional[str] = None) -> Instrument:
        """One instrument (default: ours); GteError when the exchange does not list it."""
        wanted = symbol or self.symbol
        data = self._call("GET", INSTRUMENT_QUERY, {"asset": self.asset, "symbol": wanted},
                          signed=False, idempotent=True)
        for row in _rows(data):
            if row.get("symbol") == wanted:
                return parse.parse_instrument(row)
        raise GteError(None, f"instrument {wanted} is not listed for {self.asset}")

    def order_book(self, size: int = 50) -> Book:
        """Top ``size`` (1-50) levels per side, best first."""
        if not 1 <= size <= 50:
            raise ValueError("size must be between 1 and 50")
        data = self._call("GET", BOOK_QUERY, self._base(size=size), signed=False, idempotent=True)
        book = _obj(data)
        return Book(bids=_levels(book.get("bids", []), True), asks=_levels(book.get("asks", []), False))

    def trades(self, count: int = 100) -> List[Trade]:
        """Recent public trades, as the exchange orders them.

        REST trade rows carry no taker side; such trades get ``side=""``.
        """
        _require_count(count)
        data = self._call("GET", TRADE_QUERY, self._base(count=count), signed=False, idempotent=True)
        result = []
        for row in _rows(data):
            if row.get("side") not in (None, ""):
                result.append(parse.parse_trade(row))
            else:
                result.append(Trade(side="", price=parse.dec(row, "price"), qty=parse.integer(row, "qty"),
                                    time=parse.integer(row, "trade_time", 0)))
        return result

    def setting(self) -> Dict[str, Any]:
        """Leverage settings as Decimals and ``margin_mode`` as int (1 cross, 2 isolated)."""
        data = _obj(self._call("GET", SETTING_QUERY, self._base(), signed=True, idempotent=True))
        out: Dict[str, Any] = {}
        for name, value in data.items():
            if name == "margin_mode":
                out[name] = parse.integer(data, name)
            elif name.endswith("leverage") and value not in (None, ""):
                out[name] = parse.dec(data, name)
        return out

    # ------------------------------------------------------------------ leverage and margin

    def change_leverage(self, leverage: Decimal, mode: int, long_flag: Optional[int] = None) -> None:
        """Set leverage (two decimals at most) and margin mode (1 cross, 2 isolated)."""
        _require_decimal("leverage", leverage, positive=True)
        if leverage != leverage.quantize(Decimal("0.01")):
            raise ValueError("leverage takes at most two decimals")
        if mode not in (1, 2):
            raise ValueError("mode must be 1 (cross) or 2 (isolated)")
        if long_flag not in (None, 0, 1):
            raise ValueError("long_flag must be None, 0 (short) or 1 (long)")
        params = self._base(mode=mode, long_flag=long_flag, leverage=leverage)
        self._call("POST", LEVERAGE_CHANGE, params, signed=True, idempotent=True)

    def increase_margin(self, long_flag: int, increase_flag: int, margin: Decimal) -> None:
        """Add (increase_flag 1) or remove (0) isolated margin of one leg. Not resent on doubt."""
        if long_flag not in (0, 1) or increase_flag not in (0, 1):
            raise ValueError("long_flag and increase_flag must be 0 or 1")
        _require_decimal("margin", margin, positive=True)
        params = self._base(long_flag=long_flag, increase_flag=increase_flag, margin=margin)
        self._call("POST", MARGIN_INCREASE, params, signed=True, idempotent=False)
