"""Reading market files lazily, line by line, with errors that name the file and line.

Three layouts, one event stream of ``Event(ts_ns, kind, side, ticks, qty, line)``:

* ``events``: JSON lines, one object per line in time order (``ts_ns`` never decreases):
  ``{"ts_ns": int, "kind": "book"|"trade", "side": ..., "price": number, "qty": number}``.
  ``book``: side "bid"/"ask", qty the level's new total (0 removes it). ``trade``: side the
  taker's, "buy"/"sell". An optional first line without ``kind`` is a header
  (``{"tick_size": number, "symbol": str}``). Numbers may also be numeric strings.
* a recording (``record``): the same lines, gzip-compressed, a header line
  ``{"format": "marketmaker-recording", "version": 1, "tick_size": "...", ...}``,
  ``{"ts_ns": ..., "kind": "reset"}`` before each book snapshot, and a last line
  ``{"end": true, "events": N}`` -- without it the recording is truncated.
* any of them gzip-compressed (recognised by its first bytes).

Sizes are contracts; a fractional size is rounded to the nearest contract (a level that is
not empty keeps at least 1). Prices must be multiples of the tick size.
"""
from __future__ import annotations

import gzip
import json
import re
import zlib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
from pathlib import Path
from typing import IO, Iterator, NamedTuple, Optional

from .market import MarketError

RECORDING_FORMAT = "marketmaker-recording"
RECORDING_VERSION = 1
BOOK_SIDES = ("bid", "ask")
# floats stay text (exact, and a price text seen before is a dict hit: see EventReader._ticks)
_decode = json.JSONDecoder(parse_float=str).raw_decode
# the compact line the recorder and bench/gen_events.py write; anything else goes through json
_COMPACT = re.compile(r'\{"ts_ns":(\d+),"kind":"(book|trade)","side":"(bid|ask|buy|sell)",'
                      r'"price":(?:"([0-9]+(?:\.[0-9]+)?)"|([0-9]+(?:\.[0-9]+)?)),"qty":(\d+)\}\s*$')
_SIDES_OF = {"book": ("bid", "ask"), "trade": ("buy", "sell")}
TRADE_SIDES = ("buy", "sell")


class Event(NamedTuple):
    ts_ns: int
    kind: str          # "book" | "trade" | "reset"
    side: str          # bid/ask for book, buy/sell (taker) for trade, "" for reset
    ticks: int
    qty: int
    line: int


@dataclass(frozen=True)
class Header:
    tick_size: Optional[Decimal] = None
    symbol: Optional[str] = None
    recording: bool = False


def open_text(path: str | Path) -> IO[str]:
    """The file as text, gunzipped when it starts with gzip's magic bytes."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            return gzip.open(path, "rt", encoding="utf-8", newline="\n")
        return open(path, "r", encoding="utf-8", newline="\n")
    except OSError as exc:
        raise MarketError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _number(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} must be a number, not {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return d


def _header(obj: dict) -> Header:
    fmt = obj.get("format")
    if fmt is not None and fmt != RECORDING_FORMAT:
        raise ValueError(f"unknown format {fmt!r} (expected {RECORDING_FORMAT!r})")
    if fmt is not None and obj.get("version") != RECORDING_VERSION:
        raise ValueError(f"recording version {obj.get('version')!r} is not supported "
                         f"(this version reads {RECORDING_VERSION})")
    tick = obj.get("tick_size")
    if tick is not None:
        tick = _number(tick, "tick_size")
        if tick <= 0:
            raise ValueError("tick_size must be greater than 0")
    symbol = obj.get("symbol")
    return Header(tick, str(symbol) if symbol is not None else None, fmt is not None)


class EventReader:
    """Iterate a market file's events; every problem is a ``MarketError`` naming file and line.

    ``tick`` (``--tick``) is used when the file's header gives none; ``recording`` demands the
    recording layout (header and end line)."""

    def __init__(self, path: str | Path, tick: Optional[Decimal] = None, recording: bool = False,
                 qty_scale: Decimal = Decimal(1)) -> None:
        self.path = str(path)
        self.recording = recording
        self.qty_scale = qty_scale
        self.header = Header()
        self.tick: Optional[Decimal] = tick
        self.ended = False
        self.count = 0
        self.first_ns: Optional[int] = None
        self.last_ns: Optional[int] = None
        self._price_cache: dict = {}
        self._unit_scale = qty_scale == 1

    def fail(self, line: int, text: str) -> MarketError:
        return MarketError(f"{self.path}, line {line}: {text}")

    def __iter__(self) -> Iterator[Event]:
        fh = open_text(self.path)
        lineno = 0
        compact = _COMPACT.match
        cache = self._price_cache
        try:
            with fh:
                lines = iter(fh)
                while True:
                    try:
                        raw = next(lines)
                    except StopIteration:
                        break
                    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
                        raise MarketError(f"{self.path}: truncated or corrupt compressed file after line "
                                          f"{lineno} ({exc})") from None
                    except UnicodeDecodeError:
                        raise self.fail(lineno + 1, "not UTF-8 text") from None
                    lineno += 1
                    fast = compact(raw)
                    if fast is not None:
                        ts, kind, side, quoted, bare, qty = fast.groups()
                        ts, qty = int(ts), int(qty)
                        last = self.last_ns
                        ticks = cache.get(quoted or bare)
                        if ticks is not None and last is not None and ts >= last and self._unit_scale \
                                and side in _SIDES_OF[kind] and (qty or kind == "book") and not self.ended \
                                and (self.header.recording or not self.recording):
                            self.last_ns = ts
                            self.count += 1
                            yield Event(ts, kind, side, ticks, qty, lineno)
                            continue
                    if not raw.strip():
                        continue
                    event = self._parse(raw, lineno)
                    if event is not None:
                        yield event
        finally:
            fh.close()
        if self.recording and not self.ended:
            raise MarketError(f"{self.path}: truncated recording: no end line after line {lineno} "
                              f"(was the recorder killed?)")
        if self.count == 0:
            raise MarketError(f"{self.path}: no book or trade events (empty file)")

    def _parse(self, raw: str, lineno: int) -> Optional[Event]:
        if self.ended:
            raise self.fail(lineno, "data after the recording's end line")
        text = raw.strip()
        try:
            obj, end = _decode(text)
            if end != len(text):
                raise ValueError("trailing data")
        except ValueError:
            raise self.fail(lineno, "not a JSON object (a truncated or garbled line?)") from None
        if not isinstance(obj, dict):
            raise self.fail(lineno, "not a JSON object")
        try:
            if "kind" not in obj:
                return self._meta(obj, lineno)
            return self._event(obj, lineno)
        except ValueError as exc:
            raise self.fail(lineno, str(exc)) from None

    def _meta(self, obj: dict, lineno: int) -> None:
        if obj.get("end") is True:
            if not self.header.recording:
                raise ValueError("an end line without a recording header")
            self.ended = True
            return None
        if self.count or self.header != Header() or lineno > 1:
            raise ValueError('missing "kind" (a header is allowed on the first line only)')
        self.header = _header(obj)
        if self.header.tick_size is not None:
            self.tick = self.header.tick_size
            self._price_cache.clear()
        return None

    def _event(self, obj: dict, lineno: int) -> Event:
        # the fast path: a well-formed book or trade whose price was seen before
        ts, kind, side, price, qty = (obj.get("ts_ns"), obj.get("kind"), obj.get("side"), obj.get("price"),
                                      obj.get("qty"))
        last = self.last_ns
        if type(ts) is int and (last is not None and ts >= last) and type(qty) is int and self._unit_scale \
                and (type(price) is int or type(price) is str) and (self.header.recording or not self.recording):
            ticks = self._price_cache.get(price)
            if ticks is not None and ((kind == "book" and qty >= 0 and (side == "bid" or side == "ask"))
                                      or (kind == "trade" and qty > 0 and (side == "buy" or side == "sell"))):
                self.last_ns = ts
                self.count += 1
                return Event(ts, kind, side, ticks, qty, lineno)
        return self._checked_event(obj, lineno)

    def _checked_event(self, obj: dict, lineno: int) -> Event:
        if self.recording and not self.header.recording:
            raise ValueError(f"not a recording: its first line must be a {RECORDING_FORMAT!r} header")
        ts = obj.get("ts_ns")
        if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
            raise ValueError(f"ts_ns must be a whole number of nanoseconds >= 0, not {ts!r}")
        if self.last_ns is not None and ts < self.last_ns:
            raise ValueError(f"not in time order: ts_ns {ts} is before {self.last_ns} (the line above)")
        kind = obj["kind"]
        if kind == "reset":
            if not self.header.recording:
                raise ValueError('kind "reset" is only allowed in recordings')
            self._seen(ts)
            return Event(ts, "reset", "", 0, 0, lineno)
        if kind not in ("book", "trade"):
            raise ValueError(f'kind must be "book" or "trade", not {kind!r}')
        side = obj.get("side")
        sides = BOOK_SIDES if kind == "book" else TRADE_SIDES
        if side not in sides:
            raise ValueError(f"side of a {kind} must be {' or '.join(map(repr, sides))}, not {side!r}")
        ticks = self._ticks(obj.get("price"))
        qty = obj.get("qty")
        if type(qty) is int and qty > 0 and self._unit_scale:
            contracts = qty
        else:
            qty = _number(qty, "qty")
            if qty < 0 or (kind == "trade" and qty == 0):
                raise ValueError(f"qty of a {kind} must be {'>= 0' if kind == 'book' else '> 0'}, not {qty}")
            contracts = int((qty * self.qty_scale).to_integral_value(ROUND_HALF_UP))
            if qty and not contracts:
                contracts = 1
        self._seen(ts)
        return Event(ts, kind, side, ticks, contracts, lineno)

    def _ticks(self, price: object) -> int:
        """A price in ticks (cached by its text: a market's prices repeat)."""
        if type(price) is int or type(price) is str:
            ticks = self._price_cache.get(price)
            if ticks is not None:
                return ticks
        if self.tick is None:
            raise ValueError("the file gives no tick size: pass --tick")
        d = _number(price, "price")
        if d <= 0:
            raise ValueError(f"price must be greater than 0, not {d}")
        ticks, rest = divmod(d, self.tick)
        if rest:
            raise ValueError(f"price {d} is not a multiple of the tick size {self.tick}")
        if (type(price) is int or type(price) is str) and len(self._price_cache) < 1_000_000:
            self._price_cache[price] = self._price_cache[str(price)] = int(ticks)
        return int(ticks)

    def _seen(self, ts: int) -> None:
        if self.first_ns is None:
            self.first_ns = ts
        self.last_ns = ts
        self.count += 1


def scan(path: str | Path, tick: Optional[Decimal] = None, recording: bool = False,
         qty_scale: Decimal = Decimal(1)) -> EventReader:
    """Read the whole file once (streaming, constant memory) so a bad one fails before a run starts."""
    reader = EventReader(path, tick, recording, qty_scale)
    for _ in reader:
        pass
    return reader


__all__ = ["Event", "EventReader", "Header", "RECORDING_FORMAT", "RECORDING_VERSION", "open_text", "scan"]
