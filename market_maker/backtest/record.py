"""``python marketmaker record --out FILE [--duration S] [--settings F]``: record a market.

Subscribes to the PUBLIC ``order_book`` and ``trade`` tables of the settings' GTE endpoint
(the embedded simulator when BASE_URL is None, as the bot does) and writes every change with
its receive time as gzip JSON lines (the layout is in eventfile.py): a header, a ``reset``
and the book snapshot after each (re)subscription, ``book`` and ``trade`` events, and an end
line. It is a client tool: the connection, keep-alive, resubscription after a gap and
reconnects are the bot's own WebSocket client's (gte/ws.py); the recorder reads the same
raw messages beside it, with its own sequence check (after a gap on a table it writes
nothing from that table until the table's next snapshot).

The file is written as FILE.part and renamed to FILE once complete (duration reached or
Ctrl-C): a FILE that exists is a whole recording. Exit 0 done, 1 the endpoint failed, 2 bad
settings or arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .eventfile import RECORDING_FORMAT, RECORDING_VERSION

log = logging.getLogger(__name__)
PROG = "marketmaker record"
BOOK_SIDE = {"buy": "bid", "sell": "ask"}


def _int(text: Any) -> Optional[int]:
    """A wire size ("12") as an int; None if it is not a whole number."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


class StreamTap:
    """Turns raw order_book/trade messages into recording events (pure: no I/O)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.seq: Dict[str, int] = {}
        self.live: set = set()                           # tables with a current snapshot
        self.levels: Dict[str, Tuple[str, str]] = {}     # book id -> (side, price text)
        self.gaps = 0
        self.last_ns = 0

    def feed(self, raw: Any, now_ns: int) -> List[dict]:
        """The events of one raw message (none for control messages, other tables, stale tables)."""
        try:
            msg = json.loads(raw)
            table = msg["table"]
        except (ValueError, TypeError, KeyError):
            return []
        if table not in ("order_book", "trade"):
            return []
        ts = self.last_ns = max(now_ns, self.last_ns)    # receive times never go backwards in the file
        action, seq, rows = msg.get("action"), msg.get("seq"), msg.get("data")
        if not isinstance(rows, list):
            return []
        rows = [r for r in rows if isinstance(r, dict) and r.get("symbol", self.symbol) == self.symbol]
        if action == "partial":
            if isinstance(seq, int):
                self.seq[table] = seq
            self.live.add(table)
            if table == "trade":
                return []                                  # past trades: not part of this recording
            self.levels = {}
            out = [{"ts_ns": ts, "kind": "reset"}]
            return out + self._book(rows, "insert", ts)
        if table not in self.live:
            return []
        if seq is not None:
            last = self.seq.get(table)
            if last is None or seq != last + 1:
                self.live.discard(table)                  # the client resubscribes; wait for its snapshot
                self.gaps += 1
                return []
            self.seq[table] = seq
        if table == "trade":
            return [{"ts_ns": ts, "kind": "trade", "side": r["side"], "price": r["price"], "qty": _int(r.get("qty"))}
                    for r in rows if r.get("side") in BOOK_SIDE and _int(r.get("qty")) is not None]
        return self._book(rows, action, ts)

    def _book(self, rows: List[dict], action: Any, ts: int) -> List[dict]:
        out = []
        for r in rows:
            lid = str(r.get("id"))
            if action == "delete":
                known = self.levels.pop(lid, None)
                if known is not None:
                    out.append({"ts_ns": ts, "kind": "book", "side": known[0], "price": known[1], "qty": 0})
                continue
            known = self.levels.get(lid)
            side = BOOK_SIDE.get(r.get("side")) if r.get("side") is not None else (known and known[0])
            price = r.get("price") if r.get("price") is not None else (known and known[1])
            size = _int(r.get("size"))
            if not side or not price or size is None:
                continue
            self.levels[lid] = (side, price)
            out.append({"ts_ns": ts, "kind": "book", "side": side, "price": price, "qty": size})
        return out


class _TeeSocket:
    """A websocket-client connection whose received messages also go to ``tap``."""

    def __init__(self, ws: Any, tap: Callable[[Any], None]) -> None:
        self._ws = ws
        self._tap = tap

    def recv(self) -> Any:
        message = self._ws.recv()
        if message:
            self._tap(message)
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


class Recorder:
    """Record one symbol's public market data from ``ws_url`` into ``out`` (see module doc)."""

    def __init__(self, ws_url: str, symbol: str, settle_currency: str, out: str) -> None:
        self.ws_url, self.symbol, self.settle, self.out = ws_url, symbol, settle_currency, out
        self.tap = StreamTap(symbol)
        self._queue: "queue.Queue[List[dict]]" = queue.Queue()
        self.events = 0
        self.stop_event = threading.Event()

    def _on_raw(self, message: Any) -> None:
        events = self.tap.feed(message, time.time_ns())
        if events:
            self._queue.put(events)

    def _factory(self, url: str, **kwargs: Any) -> Any:
        import websocket
        return _TeeSocket(websocket.create_connection(url, **kwargs), self._on_raw)

    def run(self, duration: Optional[float]) -> int:
        """Record until ``duration`` seconds passed or ``stop()``; returns the number of events."""
        from ..gte.ws import GteWebSocket
        part = self.out + ".part"
        client = GteWebSocket(self.ws_url, self.symbol, self.settle, None, websocket_factory=self._factory)
        client.start()                                  # raises if the endpoint is unreachable
        try:
            instrument = client.snapshot(depth=1).instrument
            header = {"format": RECORDING_FORMAT, "version": RECORDING_VERSION, "symbol": self.symbol,
                      "settle_currency": self.settle, "source": self.ws_url,
                      "tick_size": str(instrument.tick_size) if instrument else None,
                      "started_ns": time.time_ns()}
            with gzip.open(part, "wt", encoding="utf-8") as fh:
                fh.write(json.dumps(header) + "\n")
                deadline = None if duration is None else time.monotonic() + duration
                while not self.stop_event.is_set():
                    wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
                    self._drain(fh, wait)
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                client.stop()
                self._drain(fh, 0)
                fh.write(json.dumps({"end": True, "events": self.events, "ts_ns": time.time_ns(),
                                     "gaps": self.tap.gaps}) + "\n")
            os.replace(part, self.out)
        except BaseException:
            client.stop()
            with contextlib.suppress(OSError):
                os.remove(part)
            raise
        return self.events

    def _drain(self, fh: Any, wait: float) -> None:
        try:
            batch = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            for event in batch:
                fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.events += len(batch)
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return

    def stop(self, *_: object) -> None:
        self.stop_event.set()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Record the public order book and trades of a GTE "
                                                       "endpoint for `backtest --market replay FILE`.")
    p.add_argument("--out", required=True, metavar="FILE", help="the recording to write (gzip JSON lines)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--settings", metavar="F", help="settings file: the endpoint and SYMBOL (default: "
                                                   "./settings.py; BASE_URL None = the embedded simulator)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the record command; returns the exit status."""
    from ..settings import SettingsError, load_settings
    args = parser().parse_args(argv)
    if args.duration is not None and not 0 < args.duration < float("inf"):
        print(f"{PROG}: --duration must be a number of seconds greater than 0", file=sys.stderr)
        return 2
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        print(f"{PROG}: --out {args.out}: no such folder {folder}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.settings, overrides={"DRY_RUN": True})   # public data: no key needed
    except SettingsError as exc:
        print(f"{PROG}: bad settings: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with contextlib.ExitStack() as stack:
        if settings.use_simulator:
            from ..sim import SimConfig, run_simulator
            config = SimConfig.from_settings(settings, host="127.0.0.1", port=0,
                                             funding_interval_s=int(settings.SIM_FUNDING_INTERVAL))
            sim = stack.enter_context(run_simulator(config))
            ws_url = sim.ws_url
            log.info("Recording the embedded GTE simulator at %s", ws_url)
        else:
            ws_url = settings.WS_URL
        recorder = Recorder(ws_url, settings.SYMBOL, settings.SETTLECURRENCY, args.out)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, recorder.stop)
            signal.signal(signal.SIGTERM, recorder.stop)
        try:
            count = recorder.run(args.duration)
        except Exception as exc:   # the endpoint: unreachable, refused...
            print(f"{PROG}: recording failed: {exc}", file=sys.stderr)
            return 1
    print(f"recorded {count} events of {settings.SYMBOL} to {args.out}")
    return 0


__all__ = ["Recorder", "StreamTap", "main"]
