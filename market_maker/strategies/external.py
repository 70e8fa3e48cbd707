"""Another venue's best bid and ask as fair value, read over its WebSocket in a thread of its own.

Binance ``bookTicker`` (``{"s", "b", "B", "a", "A", ...}``, bare or wrapped as a combined
stream's ``{"stream", "data"}``) and Gate.io ``spot.book_ticker`` (a subscribe request, then
``{"channel": "spot.book_ticker", "event": "update", "result": {"s", "b", "a", ...}}``).
The fair value is the mid of the latest ticker, with the time it arrived (the strategy's
clock): the strategy pulls its quotes when it is too old or too far from the GTE mid.
A malformed message is logged and counted, never fatal; a lost connection is retried with
a doubling, jittered backoff.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Dict, Optional, Tuple

import websocket

from ..clock import SYSTEM_CLOCK, Clock
from ..startup import backoff_delay

__all__ = ["BookTickerSource", "default_url", "parse_binance", "parse_gateio", "shared_source"]

log = logging.getLogger("market_maker.fairvalue")

DEFAULT_URLS = {
    "binance": "wss://stream.binance.com:9443/ws/{lower}@bookTicker",
    "gateio": "wss://api.gateio.ws/ws/v4/",
}


class Malformed(ValueError):
    """A message that is not a book ticker we can use."""


def default_url(venue: str, symbol: str) -> str:
    return DEFAULT_URLS[venue].format(lower=symbol.lower())


def _mid(row: Any, symbol: str) -> Decimal:
    if not isinstance(row, dict):
        raise Malformed("not an object")
    if str(row.get("s", "")).upper() != symbol.upper():
        raise Malformed(f"symbol {row.get('s')!r}, not {symbol}")
    try:
        bid, ask = Decimal(str(row["b"])), Decimal(str(row["a"]))
    except (KeyError, InvalidOperation) as exc:
        raise Malformed(f"no usable bid/ask ({exc!r})") from None
    if not (bid.is_finite() and ask.is_finite() and 0 < bid <= ask):
        raise Malformed(f"bid {bid} / ask {ask} is not a market")
    return (bid + ask) / 2


def parse_binance(message: Any, symbol: str) -> Optional[Decimal]:
    """The mid of a Binance bookTicker message (None for a message that carries no ticker, e.g. a reply)."""
    if isinstance(message, dict) and "data" in message:
        message = message["data"]
    if isinstance(message, dict) and "result" in message and "id" in message:
        return None  # the answer to a request
    return _mid(message, symbol)


def parse_gateio(message: Any, symbol: str) -> Optional[Decimal]:
    """The mid of a Gate.io spot.book_ticker update (None for the subscribe answer, pongs...)."""
    if not isinstance(message, dict):
        raise Malformed("not an object")
    if message.get("event") != "update":
        if message.get("error"):
            raise Malformed(f"error {message['error']!r}")
        return None
    if message.get("channel") != "spot.book_ticker":
        raise Malformed(f"channel {message.get('channel')!r}")
    return _mid(message.get("result"), symbol)


def gateio_subscribe(symbol: str) -> str:
    return json.dumps({"time": int(time.time()), "channel": "spot.book_ticker", "event": "subscribe",
                       "payload": [symbol]})


PARSERS: Dict[str, Callable[[Any, str], Optional[Decimal]]] = {"binance": parse_binance, "gateio": parse_gateio}


class BookTickerSource:
    """The latest mid of one venue's book ticker, kept up to date by a daemon thread."""

    def __init__(self, venue: str, symbol: str, url: Optional[str] = None, clock: Clock = SYSTEM_CLOCK,
                 backoff: Tuple[float, float] = (0.5, 30.0), recv_timeout: float = 10.0):
        if venue not in PARSERS:
            raise ValueError(f"unknown venue {venue!r}")
        self.venue, self.symbol = venue, symbol
        self.url = url or default_url(venue, symbol)
        self.clock, self.backoff, self.recv_timeout = clock, backoff, recv_timeout
        self.malformed = 0
        self.connects = 0
        self.last_error: Optional[str] = None
        self._latest: Tuple[Optional[Decimal], Optional[float]] = (None, None)
        self._first = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ws: Optional[websocket.WebSocket] = None
        self._thread: Optional[threading.Thread] = None

    def __repr__(self) -> str:
        return f"BookTickerSource({self.venue}:{self.symbol} at {self.url})"

    # -- the strategy's side
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"fairvalue-{self.venue}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            try:
                ws.abort()  # wakes the thread's recv at once (a polite close would wait for the venue's answer)
            except Exception:  # a socket that is already gone
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_first(self, timeout: float) -> bool:
        """True once a first price arrived (waits at most ``timeout`` seconds of real time)."""
        return self._first.wait(timeout)

    def latest(self) -> Tuple[Optional[Decimal], Optional[float]]:
        """(mid, when it arrived by the clock), or (None, None) before the first one."""
        with self._lock:
            return self._latest

    # -- the thread
    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                self._ws = websocket.create_connection(self.url, timeout=self.recv_timeout)
                self.connects += 1
                if self.venue == "gateio":
                    self._ws.send(gateio_subscribe(self.symbol))
                log.info("Fair value: connected to %s for %s", self.url, self.symbol)
                while not self._stop.is_set():
                    if self._receive(self._ws.recv()):
                        attempt = 0  # data flows: the next outage starts the backoff again
            except Exception as exc:  # the venue is away; the strategy's staleness check pulls the quotes
                if self._stop.is_set():
                    break
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                delay = backoff_delay(attempt, self.backoff)
                attempt += 1
                log.warning("Fair value: %s lost or unreachable (%s); reconnecting in %.1fs", self.url,
                            self.last_error, delay)
                self._stop.wait(delay)
            finally:
                ws, self._ws = self._ws, None
                if ws is not None:
                    try:
                        ws.close()
                    except Exception:
                        pass

    def _receive(self, text: Any) -> bool:
        try:
            if not text:
                raise ConnectionError("the connection was closed")
            price = PARSERS[self.venue](json.loads(text), self.symbol)
        except (ValueError, TypeError) as exc:  # Malformed, bad JSON
            self.malformed += 1
            log.warning("Fair value: ignored a malformed message from %s (%s): %.200s", self.venue, exc, text)
            return False
        if price is None:
            return False
        with self._lock:
            self._latest = (price, self.clock.time())
        self._first.set()
        return True


_SHARED: Dict[Tuple[str, str, Optional[str]], BookTickerSource] = {}
_SHARED_LOCK = threading.Lock()


def shared_source(venue: str, symbol: str, url: Optional[str], clock: Clock) -> BookTickerSource:
    """One source per venue, symbol and URL: a reloaded strategy keeps reading the running one."""
    with _SHARED_LOCK:
        key = (venue, symbol, url)
        source = _SHARED.get(key)
        if source is None or source.stopped or source.clock is not clock:
            source = _SHARED[key] = BookTickerSource(venue, symbol, url, clock)
        return source
