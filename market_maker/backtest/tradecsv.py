"""``--market trades-csv FILE``: public trades drive the synthetic liquidity model.

Accepted layouts (recognised by the header; the file may be gzip-compressed):

* BitMEX's public trade dumps: ``timestamp,symbol,side,size,price,...`` with timestamps like
  ``2019-10-01D00:00:04.095439000``; one symbol is used (``symbol`` option, default the first
  row's), the other symbols' rows are skipped;
* a plain 4-column file ``timestamp,side,size,price``, with or without that header.

Timestamps: ISO 8601 (``T``, a space or BitMEX's ``D`` between date and time; UTC), or
integers since the epoch in seconds, milliseconds, microseconds or nanoseconds (told apart
by their size). Side: buy/sell (the taker's, any case). Size: contracts (> 0, rounded to
whole contracts). Rows must be in time order.

The market is ``sim.flow.MarketFlow`` -- the simulator's liquidity providers around a
reference price -- whose reference is the last traded price of the file and whose takers
are the file's trades (same side and size, at their times, marketable up to
``taker_slippage`` from the reference, the rest cancelled) instead of random ones.
"""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
from typing import TYPE_CHECKING, Iterator, List, NamedTuple, Optional, Tuple

from ..sim.flow import MarketFlow
from .eventfile import open_text
from .market import MarketError, register

if TYPE_CHECKING:
    from ..settings import Settings
    from ..sim.exchange import Exchange
    from ..sim.flow import FlowConfig

HEARTBEAT_MS = 1000        # the liquidity providers move at least this often between trades
BITMEX_COLUMNS = ("timestamp", "symbol", "side", "size", "price")
PLAIN_COLUMNS = ("timestamp", "side", "size", "price")


class CsvTrade(NamedTuple):
    ts_ms: int
    side: int          # 1 buy, 0 sell (the taker's)
    qty: int
    price: Decimal
    line: int


def parse_time_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 time (UTC unless it says) or an epoch integer."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        n = int(text)
        if n < 0:
            raise ValueError(f"timestamp {text!r} is before 1970")
        for limit, div in ((10 ** 11, None), (10 ** 14, 1), (10 ** 17, 1000)):
            if n < limit:
                return n * 1000 if div is None else n // div
        return n // 1_000_000
    iso = text.replace("D", "T", 1) if len(text) > 10 and text[10] == "D" else text
    if iso.endswith("Z"):
        iso = iso[:-1] + "+00:00"
    frac_ns = 0
    dot = iso.find(".")
    if dot != -1:                                  # keep nanoseconds out of fromisoformat
        end = dot + 1
        while end < len(iso) and iso[end].isdigit():
            end += 1
        digits = iso[dot + 1:end]
        if not digits:
            raise ValueError(f"bad timestamp {text!r}")
        frac_ns = int((digits + "000000000")[:9])
        iso = iso[:dot] + iso[end:]
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"bad timestamp {text!r} (ISO 8601 or epoch seconds/ms/us/ns)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp()) * 1000 + frac_ns // 1_000_000


class TradeCsvReader:
    """Iterate the trades of one symbol of a CSV file, lazily; errors name the file and line."""

    def __init__(self, path: str, symbol: Optional[str] = None, qty_scale: Decimal = Decimal(1)) -> None:
        self.path = path
        self.symbol = symbol
        self.qty_scale = qty_scale
        self.count = 0
        self.first: Optional[CsvTrade] = None

    def fail(self, line: int, text: str) -> MarketError:
        return MarketError(f"{self.path}, line {line}: {text}")

    def __iter__(self) -> Iterator[CsvTrade]:
        symbol = self.symbol
        last = None
        with open_text(self.path) as fh:
            reader = csv.reader(fh)
            cols: Optional[Tuple[int, Optional[int], int, int, int]] = None
            while True:
                try:
                    rec = next(reader)
                except StopIteration:
                    break
                except (EOFError, OSError) as exc:
                    raise MarketError(f"{self.path}: truncated or corrupt compressed file after line "
                                      f"{reader.line_num} ({exc})") from None
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise self.fail(reader.line_num, f"not CSV text ({exc})") from None
                line = reader.line_num
                if not rec or not "".join(rec).strip():
                    continue
                if cols is None:
                    cols, is_header = self._layout(rec, line)
                    if is_header:
                        continue
                try:
                    t, sym, sd, sz, px = cols
                    if sym is not None:
                        row_symbol = rec[sym].strip()
                        if symbol is None:
                            symbol = self.symbol = row_symbol
                        if row_symbol != symbol:
                            continue
                    trade = self._trade(rec, t, sd, sz, px, line)
                except IndexError:
                    raise self.fail(line, f"too few columns ({len(rec)})") from None
                except ValueError as exc:
                    raise self.fail(line, str(exc)) from None
                if last is not None and trade.ts_ms < last:
                    raise self.fail(line, "not in time order: this trade is earlier than the one above")
                last = trade.ts_ms
                if self.first is None:
                    self.first = trade
                self.count += 1
                yield trade
        if self.count == 0:
            raise MarketError(f"{self.path}: no trades" + (f" of {symbol}" if symbol else "") + " (empty file?)")

    def _layout(self, rec: List[str], line: int) -> Tuple[Tuple[int, Optional[int], int, int, int], bool]:
        names = [c.strip().lower() for c in rec]
        if all(c in names for c in BITMEX_COLUMNS):
            return (names.index("timestamp"), names.index("symbol"), names.index("side"),
                    names.index("size"), names.index("price")), True
        if names == list(PLAIN_COLUMNS):
            return (0, None, 1, 2, 3), True
        if len(rec) == 4:
            try:
                parse_time_ms(rec[0])
            except ValueError:
                pass
            else:
                return (0, None, 1, 2, 3), False
        raise self.fail(line, "unknown layout: expected a BitMEX trade dump header (timestamp,symbol,side,size,"
                              "price,...) or the 4 columns timestamp,side,size,price")

    def _trade(self, rec: List[str], t: int, sd: int, sz: int, px: int, line: int) -> CsvTrade:
        side = rec[sd].strip().lower()
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be Buy or Sell, not {rec[sd]!r}")
        try:
            size, price = Decimal(rec[sz].strip()), Decimal(rec[px].strip())
        except InvalidOperation:
            raise ValueError(f"size and price must be numbers, not {rec[sz]!r} and {rec[px]!r}") from None
        if not size.is_finite() or size <= 0:
            raise ValueError(f"size must be greater than 0, not {rec[sz]!r}")
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price must be greater than 0, not {rec[px]!r}")
        qty = max(1, int((size * self.qty_scale).to_integral_value(ROUND_HALF_UP)))
        return CsvTrade(parse_time_ms(rec[t]), 1 if side == "buy" else 0, qty, price, line)


class _TradeFlow(MarketFlow):
    """MarketFlow whose reference price and takers come from the file (see module doc)."""

    def __init__(self, exchange: "Exchange", config: "FlowConfig", seed: int) -> None:
        super().__init__(exchange, config, seed)
        self.due: List[CsvTrade] = []

    def set_reference(self, price: Decimal) -> None:
        before = self.ref_ticks
        self.ref_ticks = max(1, self._to_ticks(price))
        if self.ref_ticks != before:
            self.last_move = 1 if self.ref_ticks > before else -1

    def _move_reference(self) -> None:
        pass                                       # set from the file by set_reference

    def _takers(self, now_ms: int) -> None:
        slip = int((self.ref_ticks * self.cfg.taker_slippage).to_integral_value()) + 1
        for trade in self.due:
            ticks = self.ref_ticks + slip if trade.side == 1 else max(1, self.ref_ticks - slip)
            oid = self._send(self.taker, trade.side, ticks, trade.qty, now_ms)
            if oid is not None:
                self.ex.cancel_order(self.taker, self.cfg.symbol, oid, now_ms)
        self.due = []


class TradesCsvMarket:
    """``trades-csv``: the simulator's liquidity providers, the file's price and takers."""

    def __init__(self, path: str, flow: "FlowConfig", seed: int = 1, symbol: Optional[str] = None,
                 qty_scale: Decimal = Decimal(1)) -> None:
        self.path = path
        self.flow_config = flow
        self.seed = seed
        self._args = (symbol, qty_scale)
        check = TradeCsvReader(path, symbol, qty_scale)
        for _ in check:                            # a bad file fails here, before the run
            pass
        assert check.first is not None
        self.symbol_in_file = check.symbol
        self.first_ms = check.first.ts_ms
        self.start_price = check.first.price
        self.trades_total = check.count

    def set_seed(self, seed: int) -> None:
        """The run's seed drives the liquidity providers (before ``attach``)."""
        self.seed = seed

    def attach(self, exchange: "Exchange", symbol: str, start_ms: int) -> None:
        from dataclasses import replace
        cfg = replace(self.flow_config, symbol=symbol, taker_rate=Decimal(0), price_rows=(), speed=Decimal(1))
        self.flow = _TradeFlow(exchange, cfg, self.seed)
        self.flow.set_reference(self.start_price)
        self.start_ms = start_ms
        self._trades = iter(TradeCsvReader(self.path, *self._args))
        self._next: Optional[CsvTrade] = next(self._trades, None)
        self._last_ms: Optional[int] = None

    def _ms(self, trade: CsvTrade) -> int:
        return self.start_ms + trade.ts_ms - self.first_ms

    def next_ms(self) -> Optional[int]:
        if self._next is None:
            return None
        due = self._ms(self._next)
        if self._last_ms is not None and due - self._last_ms > HEARTBEAT_MS:
            return self._last_ms + HEARTBEAT_MS
        return due

    def step(self, now_ms: int) -> None:
        trade = self._next
        while trade is not None and self._ms(trade) <= now_ms:
            self.flow.due.append(trade)
            self.flow.set_reference(trade.price)
            trade = next(self._trades, None)
        self._next = trade
        self._last_ms = now_ms
        self.flow.step(now_ms)


def trades_csv_market(settings: "Settings", arg: Optional[str], symbol: Optional[str] = None,
                      qty_scale: Decimal = Decimal(1)) -> TradesCsvMarket:
    """``--market trades-csv FILE``: the flow knobs are the settings' SIM_* values."""
    if not arg:
        raise MarketError("market 'trades-csv' needs a FILE (a CSV of public trades)")
    from ..sim.config import SimConfig
    from ..sim.flow import FlowConfig
    if settings is None:
        flow, seed = FlowConfig(), 1
    else:
        config = SimConfig.from_settings(settings)
        flow, seed = config.flow_config(), config.seed
    return TradesCsvMarket(arg, flow, seed, symbol, qty_scale)


register("trades-csv", trades_csv_market)

__all__ = ["CsvTrade", "TradeCsvReader", "TradesCsvMarket", "parse_time_ms", "trades_csv_market"]
