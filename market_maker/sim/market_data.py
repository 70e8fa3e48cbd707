"""Market data of the ``Exchange`` facade: the wire's per-market state and the public queries.

``_Market`` is a ``core.Market`` plus what the wire needs (price texts, recent trades,
1-minute candles, funding rate and time).  ``MarketData`` (a mixin of ``Exchange``) answers
the read-only public queries (best prices, mark, book depth and levels, trades, candles,
instrument, contract and asset rows) and aggregates the candles of each fill (``_candle``,
called by ``Exchange._publish_fills``).

* ``trades``: newest first; with ``gt`` the ``count`` ids just above it (still returned
  newest first), else the newest ``count`` below ``lt`` (as ``Exchange.query_orders``).
* Candles are aggregated from 1-minute buckets aligned on multiples of the
  interval since the epoch; empty intervals are omitted; rows oldest first.
* Per-market cache of ticks -> Decimal price (``best_prices``).
"""
from __future__ import annotations

from collections import deque
from decimal import Decimal

from .accounts import LONG
from .core import BAD_VALUE, Core, err
from .market import InstrumentSpec, Market
from .engine import BUY
from .rows import PriceFormatter, dstr, level_row, trade_row

MINUTE_MS = 60_000
DAY_MS = 86_400_000
MAX_CANDLE_MINUTES = 100_000
RATIO_Q = Decimal("1e-8")
_DZERO = Decimal(0)
_err = err


class _Market(Market):
    """A ``core.Market`` plus what the wire needs: price texts, trades, candles, funding."""

    def __init__(self, spec: InstrumentSpec, mark: Decimal, funding_rate: Decimal,
                 trade_history: int) -> None:
        super().__init__(spec, mark)
        self.fmt = PriceFormatter(spec.tick_size, spec.symbol_id, spec.face_value)
        self.last_ticks: int | None = None
        self.trades: deque[tuple] = deque(maxlen=trade_history)  # trade_row arguments
        self.candles: dict[int, list[int]] = {}   # minute start -> [o, h, l, c, volume]
        self.funding_rate = funding_rate
        self.next_funding: int | None = None


class MarketData(Core):
    """Public market-data queries and candle aggregation (a mixin of ``Exchange``; uses
    ``Exchange._oid`` and ``MarkFundingRisk._next_funding_time``)."""

    _markets: dict[str, _Market]   # type: ignore[assignment]

    def _candle(self, m: _Market, now_ms: int, px: int, q: int) -> None:
        """Add a fill of ``q`` at ``px`` ticks to its 1-minute candle (the oldest beyond
        ``MAX_CANDLE_MINUTES`` is dropped)."""
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


    def best_prices(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """(best bid, best ask) as Decimals (None for an empty side)."""
        m = self._markets.get(symbol)
        if m is None:
            raise _err(BAD_VALUE, "symbol", f"unknown symbol {symbol}")
        book = m.book
        bids, asks = book.bid_keys, book.ask_keys
        price_of = m.price_of
        bid = ask = None
        if bids:
            bid = price_of.get(bids[-1]) or m.price(bids[-1])
        if asks:
            ask = price_of.get(-asks[-1]) or m.price(-asks[-1])
        return (bid, ask)

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
        change = _DZERO
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
