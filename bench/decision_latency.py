#!/usr/bin/env python3
"""Decision latency: from a book message entering the WebSocket handler to the converge
requests being issued, through the real handler, snapshot, quoting, converge and REST
client (HTTP intercepted in-process: no network, no rate-limit waits, no debounce).

  python bench/decision_latency.py [--pairs 6 30] [--moves 2000] [--journal-moves 2000]
  python bench/decision_latency.py --ops [--pairs 6] [--moves 3000]   # notifications+metrics+control on vs off

Prints p50/p99 to the first and to the last request of each requote, and the API
calls one requote costs after a 1-tick and after a 1 % market move with the default
settings. Then the same decision with the journal on and off side by side in one run:
two bots, one with a journal (a real SQLite file, its writer thread) subscribed to its
events, moved in alternating blocks (the journal's queue written out, untimed, before
each block of the bot without it); prints both p50/p99 and their ratio (issue #14:
p50 may grow by at most 5 %). Exchange echoes (order inserts/cancels on the private order table) are fed
back between moves, untimed, as the exchange would push them.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Dict, List

import requests
from requests.adapters import BaseAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from market_maker.gte.ratelimit import Limit, RateLimiter  # noqa: E402
from market_maker.gte.rest import GteRest  # noqa: E402
from market_maker.gte.signing import Credentials  # noqa: E402
from market_maker.gte.ws import GteWebSocket  # noqa: E402
from market_maker.heap import freeze_startup_heap  # noqa: E402
from market_maker.market_maker import ExchangeInterface, OrderManager  # noqa: E402
from market_maker.settings import load_settings  # noqa: E402

TICK = Decimal("0.5")
SYMBOL_ID = 1
MID = 20000  # ticks: 10000.0 USD


class Echo:
    """Builds the private/public WebSocket messages the exchange would push."""

    def __init__(self) -> None:
        self.seq: Dict[str, int] = {}
        self.pending: List[str] = []

    def message(self, table: str, action: str, rows: list) -> str:
        self.seq[table] = self.seq.get(table, 0) + 1
        return json.dumps({"table": table, "action": action, "data": rows, "time": "1", "seq": self.seq[table]},
                          separators=(",", ":"))


def level(ticks: int, side: str, size: int = 100) -> dict:
    return {"id": str(100000000 * SYMBOL_ID - ticks), "instrument_type": "pc", "settle_currency": "BTC",
            "symbol": "BTC_USD", "side": side, "price": str(ticks * TICK), "size": str(size)}


def book_partial(echo: Echo, mid: int, half_spread: int, levels: int = 1000) -> str:
    rows = [level(mid + half_spread + i, "sell") for i in range(levels)]
    rows += [level(mid - half_spread - i, "buy") for i in range(levels)]
    echo.seq["order_book"] = 0
    return echo.message("order_book", "partial", rows)


class FakeExchangeAdapter(BaseAdapter):
    """Answers GTE REST calls in-process and records when each request was issued."""

    def __init__(self, echo: Echo) -> None:
        super().__init__()
        self.echo = echo
        self.ids = itertools.count(122702086658933120)
        self.sent: List[float] = []
        self.calls: Dict[str, int] = {}
        self.rows: Dict[str, dict] = {}

    def send(self, request, **kwargs):  # type: ignore[override]
        self.sent.append(time.perf_counter())
        path = request.path_url.split("?")[0].replace("/v1/api/", "")
        self.calls[path] = self.calls.get(path, 0) + 1
        data: object = {}
        if path == "pc/order/create":
            body = json.loads(request.body)
            order_id = str(next(self.ids))
            row = {"order_id": order_id, "client_oid": body.get("client_oid", ""), "status": "2",
                   "side": body["side"], "close_flag": body["close_flag"], "price": body["price"], "qty": body["qty"],
                   "filled_qty": "0", "avg_price": "0", "fee": "0", "leverage": "10", "order_margin": "0",
                   "order_type": "1", "ctime": str(int(time.time() * 1000)), "symbol": "BTC_USD",
                   "settle_currency": "BTC", "instrument_type": "pc"}
            self.rows[order_id] = row
            self.echo.pending.append(self.echo.message("order", "insert", [row]))
            data = {"order_id": order_id}
        elif path in ("pc/order/cancel", "pc/order/cancel_batch"):
            body = json.loads(request.body)
            ids = [body["id"]] if "id" in body else json.loads(body["filter"])["order_id"]
            for order_id in ids:
                if self.rows.pop(order_id, None) is not None:
                    self.echo.pending.append(self.echo.message("order", "update",
                                                               [{"order_id": order_id, "status": "8"}]))
            data = {"order_id": ids[0]}
        elif path == "pc/order/query":
            data = {"rows": list(self.rows.values())}
        resp = requests.Response()
        resp.status_code = 200
        resp._content = json.dumps({"code": 0, "data": data, "input": None, "traceId": "", "cost": 0,
                                    "error": None, "msg": None, "time": 0}).encode()
        resp.url = request.url
        resp.request = request
        return resp

    def close(self) -> None:
        pass


def build(pairs: int, **overrides: object):
    settings = load_settings(overrides={"ORDER_PAIRS": pairs, "API_REST_INTERVAL": 0, **overrides}, environ={},
                             cwd=Path("/nonexistent"))
    echo = Echo()
    adapter = FakeExchangeAdapter(echo)
    session = requests.Session()
    session.mount("http://", adapter)
    unlimited = RateLimiter({name: Limit(10**9) for name in ("pc/order/create", "pc/order/cancel",
                                                             "pc/order/cancel_batch", "pc/order/query",
                                                             "pc/leverage/change")})
    rest = GteRest("http://bench.invalid", Credentials("bench-key", "bench-secret"), session=session,
                   rate_limiter=unlimited, order_id_prefix=settings.ORDERID_PREFIX)
    ws = GteWebSocket("", "BTC_USD", "BTC", None)
    ws.prime_for_replay(TICK, SYMBOL_ID)
    ws._connected = True  # what the I/O thread sets once the socket is up
    exchange = ExchangeInterface(settings, "http://bench.invalid", "", "bench-key", "bench-secret", rest=rest, ws=ws)
    manager = OrderManager(settings, exchange)
    return settings, echo, adapter, ws, manager


def feed(ws: GteWebSocket, message: str) -> None:
    ws.last_message_time = time.time()  # what the I/O thread records on receipt
    ws.handle_raw(message)


def flush_echoes(ws: GteWebSocket, echo: Echo) -> None:
    while echo.pending:
        feed(ws, echo.pending.pop(0))


def latency(pairs: int, moves: int) -> None:
    settings, echo, adapter, ws, manager = build(pairs, RELIST_INTERVAL=0, MIN_SPREAD=0, MAINTAIN_SPREADS=False)
    feed(ws, book_partial(echo, MID, 10))
    manager.step()
    flush_echoes(ws, echo)
    freeze_startup_heap()  # as Runner.run does once the bot has started
    first: List[float] = []
    last: List[float] = []
    inside = level(MID - 9, "buy")
    for i in range(moves):
        rows = [inside] if i % 2 == 0 else [{"id": inside["id"]}]
        message = echo.message("order_book", "insert" if i % 2 == 0 else "delete", rows)
        adapter.sent.clear()
        t0 = time.perf_counter()
        feed(ws, message)
        manager.step()
        if adapter.sent:
            first.append(adapter.sent[0] - t0)
            last.append(adapter.sent[-1] - t0)
        flush_echoes(ws, echo)
    q = statistics.quantiles
    print(f"ORDER_PAIRS={pairs:>3}: {len(first)} requotes; to first request p50 {q(first, n=100)[49] * 1e3:.3f} ms "
          f"p99 {q(first, n=100)[98] * 1e3:.3f} ms; to last request p50 {q(last, n=100)[49] * 1e3:.3f} ms "
          f"p99 {q(last, n=100)[98] * 1e3:.3f} ms")


class Bot:
    """One bench bot quoting ``pairs`` around the book, optionally with a journal."""

    def __init__(self, pairs: int, journal_path: str = "") -> None:
        self.settings, self.echo, self.adapter, self.ws, self.manager = build(
            pairs, RELIST_INTERVAL=0, MIN_SPREAD=0, MAINTAIN_SPREADS=False)
        self.journal = None
        if journal_path:
            from market_maker.journal.recorder import open_journal
            self.journal = open_journal(journal_path, self.settings, mode="live", strategy="bench", threaded=True)
            self.manager.exchange.events.subscribe(self.journal)
        feed(self.ws, book_partial(self.echo, MID, 10))
        self.manager.step()
        flush_echoes(self.ws, self.echo)
        self.inside = level(MID - 9, "buy")
        self.moves = 0
        self.first: List[float] = []
        self.last: List[float] = []

    def move(self) -> None:
        i, self.moves = self.moves, self.moves + 1
        rows = [self.inside] if i % 2 == 0 else [{"id": self.inside["id"]}]
        message = self.echo.message("order_book", "insert" if i % 2 == 0 else "delete", rows)
        self.adapter.sent.clear()
        t0 = time.perf_counter()
        feed(self.ws, message)
        self.manager.step()
        if self.adapter.sent:
            self.first.append(self.adapter.sent[0] - t0)
            self.last.append(self.adapter.sent[-1] - t0)
        flush_echoes(self.ws, self.echo)


def journal_side_by_side(pairs: int, moves: int, block: int = 50) -> None:
    """p50/p99 to the first request with the journal on and off, in one run (see the module doc)."""
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        on, off = Bot(pairs, str(Path(folder) / "journal.sqlite")), Bot(pairs)
        freeze_startup_heap()
        for _ in range(max(1, moves // block)):
            for _ in range(block):
                on.move()
            on.journal.flush()  # untimed: the next block of the other bot runs with a quiet writer
            for _ in range(block):
                off.move()
        on.journal.close(0)
        q = statistics.quantiles
        p_on, p_off = q(on.first, n=100), q(off.first, n=100)
        print(f"ORDER_PAIRS={pairs:>3} journal on : {len(on.first)} requotes; to first request p50 "
              f"{p_on[49] * 1e3:.3f} ms p99 {p_on[98] * 1e3:.3f} ms ({on.journal.writer.written} records written, "
              f"{on.journal.lost} lost)")
        print(f"ORDER_PAIRS={pairs:>3} journal off: {len(off.first)} requotes; to first request p50 "
              f"{p_off[49] * 1e3:.3f} ms p99 {p_off[98] * 1e3:.3f} ms")
        print(f"ORDER_PAIRS={pairs:>3} journal on/off: p50 x{p_on[49] / p_off[49]:.3f} "
              f"({(p_on[49] / p_off[49] - 1) * 100:+.1f} %), p99 x{p_on[98] / p_off[98]:.3f}")
        l_on, l_off = q(on.last, n=100), q(off.last, n=100)
        print(f"ORDER_PAIRS={pairs:>3} to the last request (the events of the earlier ones told): p50 on "
              f"{l_on[49] * 1e3:.3f} ms off {l_off[49] * 1e3:.3f} ms (x{l_on[49] / l_off[49]:.3f}), p99 on "
              f"{l_on[98] * 1e3:.3f} ms off {l_off[98] * 1e3:.3f} ms")


def calls_per_move(label: str, shift_ticks) -> None:
    settings, echo, adapter, ws, manager = build(6)
    feed(ws, book_partial(echo, MID, 2))
    manager.step()
    flush_echoes(ws, echo)
    adapter.calls.clear()
    mid = MID + shift_ticks(MID)
    feed(ws, book_partial(echo, mid, 2))
    manager.step()
    flush_echoes(ws, echo)
    total = sum(adapter.calls.values())
    detail = ", ".join(f"{k.split('/')[-1]} {v}" for k, v in sorted(adapter.calls.items()))
    print(f"API calls for one requote after a {label} move (default settings, ORDER_PAIRS=6): {total} ({detail})")


def record_stages() -> Dict[str, List[float]]:
    """Wrap the decision's stages to record their in-loop durations (adds ~1 us per call)."""
    from market_maker import converge, quoting
    from market_maker import market_maker as mm

    stages: Dict[str, List[float]] = {}

    def wrap(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                stages.setdefault(label, []).append(time.perf_counter() - t0)
        setattr(owner, name, timed)

    wrap(GteWebSocket, "handle_raw", "handle_raw")
    wrap(GteWebSocket, "snapshot", "snapshot")
    wrap(mm.OrderManager, "sanity_check", "sanity_check")
    wrap(mm.ExchangeInterface, "own_open_orders", "own_open_orders")
    wrap(quoting, "build_ladder", "build_ladder")
    wrap(converge, "plan_converge", "plan_converge")
    wrap(converge, "ordered_steps", "ordered_steps")
    wrap(mm.ExchangeInterface, "cancel_orders", "cancel_orders (all)")
    wrap(mm.ExchangeInterface, "create_order", "create_order (each)")
    return stages


def ops_overhead(pairs: int, moves: int) -> None:
    """p50 of a decision (book message in, requote out) with notifications, metrics and control on vs off.

    Two bots, one with every ops part on (a local webhook, a Prometheus endpoint scraped every second, the
    control API polled for /status every second), fed the same moves alternately (off-on, then on-off) so
    both see the same machine load. Wall time and the deciding thread's CPU time are both reported: on a
    shared machine the wall time carries the other processes' noise."""
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from market_maker.ops.parts import Ops
    from market_maker.runner import Runner

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    token = "bench-control-token-0123456789"
    bots = {}
    for mode in ("off", "on"):
        extra = {} if mode == "off" else {"METRICS_ADDRESS": "127.0.0.1:0", "CONTROL_ADDRESS": "127.0.0.1:0",
                                          "NOTIFY_URLS": [f"http://127.0.0.1:{hook.server_address[1]}/hook"]}
        settings, echo, adapter, ws, manager = build(pairs, RELIST_INTERVAL=0, MIN_SPREAD=0, MAINTAIN_SPREADS=False,
                                                     JOURNAL_PATH="", **extra)  # no journal: no event is built
        runner = Runner(settings, manager.exchange, OrderManager)
        runner.manager = manager
        ops = None
        if mode == "on":
            ops = Ops(runner, environ={"MM_CONTROL_TOKEN": token})
            ops.start()
        feed(ws, book_partial(echo, MID, 10))
        runner.cycle()
        flush_echoes(ws, echo)
        bots[mode] = (runner, echo, ws, ops, [], [])
    stop = threading.Event()
    ops_on = bots["on"][3]

    def poll() -> None:  # what Prometheus and an operator's dashboard do meanwhile
        auth = {"Authorization": f"Bearer {token}"}
        while not stop.wait(1.0):
            urllib.request.urlopen(f"http://127.0.0.1:{ops_on.metrics.port}/metrics", timeout=5).read()
            request = urllib.request.Request(f"http://127.0.0.1:{ops_on.control.port}/status", headers=auth)
            urllib.request.urlopen(request, timeout=5).read()
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    freeze_startup_heap()
    inside = level(MID - 9, "buy")
    perf, cpu = time.perf_counter, time.thread_time
    for i in range(moves):
        for mode in (("off", "on") if i % 4 < 2 else ("on", "off")):  # each move on both, in both orders
            runner, echo, ws, ops, walls, cpus = bots[mode]
            rows = [inside] if i % 2 == 0 else [{"id": inside["id"]}]
            message = echo.message("order_book", "insert" if i % 2 == 0 else "delete", rows)
            t0, c0 = perf(), cpu()
            feed(ws, message)
            runner.cycle()
            walls.append(perf() - t0)
            cpus.append(cpu() - c0)
            flush_echoes(ws, echo)
            if i % 500 == 0 and ops is not None:
                ops.notifier.notify(f"bench move {i}")  # a notification now and then, as in a live run
    stop.set()
    med = statistics.median
    for label, index in (("wall", 4), ("thread CPU", 5)):
        offs, ons = bots["off"][index], bots["on"][index]
        off, on = med(offs), med(ons)
        paired = med(b / a for a, b in zip(offs, ons) if a > 0)  # same move, same moment: less load noise
        print(f"ORDER_PAIRS={pairs:>3}, {moves} moves each: decision p50 ({label}) off {off * 1e3:.3f} ms, "
              f"on {on * 1e3:.3f} ms ({(on / off - 1) * 100:+.1f} %); median of per-move ratios "
              f"{(paired - 1) * 100:+.1f} %")
    ops_on.stop(0)
    hook.shutdown()

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, nargs="+", default=[6, 30])
    ap.add_argument("--moves", type=int, default=2000)
    ap.add_argument("--journal-moves", type=int, default=2000,
                    help="moves per bot of the journal on/off comparison (0: skip it)")
    ap.add_argument("--stages", action="store_true",
                    help="also print each stage's in-loop p50 (the wrappers add a little to the totals)")
    ap.add_argument("--ops", action="store_true",
                    help="only measure the overhead of notifications + metrics + control (on vs off)")
    a = ap.parse_args()
    import logging
    logging.getLogger("market_maker").setLevel(logging.WARNING)
    if a.ops:
        for pairs in a.pairs:
            ops_overhead(pairs, a.moves)
        return
    stages = record_stages() if a.stages else None
    for pairs in a.pairs:
        if stages is not None:
            stages.clear()
        latency(pairs, a.moves)
        if stages is not None:
            for label, times in stages.items():
                print(f"    {label:<22} p50 {statistics.median(times) * 1e6:7.1f} us  ({len(times)} calls)")
    calls_per_move("1-tick", lambda mid: 1)
    calls_per_move("1 %", lambda mid: mid // 100)
    if a.journal_moves:
        for pairs in a.pairs:
            journal_side_by_side(pairs, a.journal_moves)


if __name__ == "__main__":
    main()
