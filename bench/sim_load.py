#!/usr/bin/env python3
"""Load benchmark of the simulator: REST throughput, WebSocket fan-out lag, idle sockets, memory.

  python bench/sim_load.py                     # every phase (~14 minutes, 10 of them memory)
  python bench/sim_load.py --quick             # a short version (~2 minutes)
  python bench/sim_load.py --phases rest,fanout --seconds 5

The simulator runs as ``python -m market_maker.sim`` in a subprocess with its default
market (seeded flow); this process is the load generator (aiohttp clients on loopback,
one account each). Every loop is bounded by a duration; the phases:

* rest: N clients (1..300), each a closed loop of order/create + order/cancel over
  one keep-alive connection (orders rest far from the market; the simulator runs
  with --no-rate-limits, or the 20/s limits would be the measurement). Requests/s,
  latency p50/p99, errors (HTTP != 200 or code != 0 or exception).
* fanout: N subscribers (1..500) of order_book + trade. Lag = receive time in this
  process minus the simulator's "time" field of the message (same machine clock,
  ms resolution). Messages/s in total and per subscriber, lag p50/p99/max.
* idle: one client's REST p50 (create + cancel, 10 pairs/s) alone, then with idle
  WebSocket connections open (10 000 attempted, spread over source addresses
  127.1.x.y; the caps refuse what is over them). RSS and CPU of the simulator.
  The soft limit of open files is raised to the hard limit (resource module).
* memory: 20 active clients (every table subscribed; two orders near the market,
  cancelled 0.5 s later: ~4 creates + 4 cancels per second each) for --minutes;
  the simulator's RSS every 5 s; growth between minute 2 and the end.

Prints one table (markdown) at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
ASSET, SYMBOL, TICK = "BTC", "BTC_USD", 0.5
CREATE, CANCEL = "/v1/api/pc/order/create", "/v1/api/pc/order/cancel"
PER_SOURCE = 200  # connections per source address (under the simulator's per-address cap)


# --- the simulator process -------------------------------------------------------------------

class SimProcess:
    """``python -m market_maker.sim`` on an ephemeral port with ``accounts`` extra accounts."""

    def __init__(self, accounts: int, *extra: str) -> None:
        self.keys = [(f"load{i}", f"load{i}-secret-{os.getpid()}") for i in range(accounts)]
        args = [sys.executable, "-m", "market_maker.sim", "--port", "0", "--seed", "1",
                "--log-level", "WARNING", *extra]
        for key, secret in self.keys:
            args += ["--account", f"{key}:{secret}:10"]
        self.proc = subprocess.Popen(args, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        self.base = self.ws = ""
        while not (self.base and self.ws):
            line = self.proc.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            m = re.match(r"\s+(REST|WebSocket)\s+(\S+)", line)
            if m and m.group(1) == "REST":
                self.base = m.group(2).rsplit("/v1/api", 1)[0]
            elif m:
                self.ws = m.group(2)
        self.ps = psutil.Process(self.proc.pid)
        self._cpu = self._cpu_at = 0.0
        self.cpu_percent()

    def rss_mb(self) -> float:
        return self.ps.memory_info().rss / 1e6

    def cpu_percent(self) -> float:
        """CPU use (% of one core) since the previous call."""
        t = self.ps.cpu_times()
        cpu, now = t.user + t.system, time.monotonic()
        pct = 100 * (cpu - self._cpu) / (now - self._cpu_at) if self._cpu_at else 0.0
        self._cpu, self._cpu_at = cpu, now
        return pct

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- clients -----------------------------------------------------------------------------------

def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _params_string(params: dict[str, str]) -> str:
    return "{" + ",".join('"%s":"%s"' % kv for kv in sorted(params.items()) if kv[1] != "") + "}"


def _price(x: float) -> str:
    return "%.1f" % (round(x / TICK) * TICK)


class RestClient:
    """One account over one keep-alive connection; records latency and errors."""

    def __init__(self, base: str, key: str, secret: str) -> None:
        self.base, self.key, self.secret = base, key, secret
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        self.latencies: list[float] = []
        self.errors = 0
        self.not_open = 0  # cancels of an order that had filled meanwhile (-20002)

    async def post(self, path: str, params: dict[str, str]) -> dict | None:
        expires = str(int(time.time() * 1000) + 5000)
        headers = {"api-key": self.key, "api-expires": expires, "Content-Type": "application/json",
                   "api-signature": _sign(self.secret, self.key + expires + _params_string(params))}
        start = time.perf_counter()
        try:
            async with self.http.post(self.base + path, data=json.dumps(params), headers=headers) as r:
                body = await r.json(content_type=None) if r.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            body = None
        self.latencies.append(time.perf_counter() - start)
        if body is None or (body.get("code") != 0 and body.get("code") != -20002):
            self.errors += 1
            return None
        if body["code"] == -20002:
            self.not_open += 1
            return None
        return body

    async def create(self, side: int, price: str, qty: int = 1) -> str | None:
        body = await self.post(CREATE, {"asset": ASSET, "symbol": SYMBOL, "side": str(side), "close_flag": "0",
                                        "price": price, "qty": str(qty), "order_type": "1"})
        return None if body is None else str(body["data"]["order_id"])

    async def cancel(self, order_id: str) -> None:
        await self.post(CANCEL, {"id": order_id, "asset": ASSET, "symbol": SYMBOL})

    async def close(self) -> None:
        await self.http.close()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _ms(x: float) -> str:
    return "-" if x != x else ("%.1f ms" % (x * 1000) if x < 1 else "%.2f s" % x)


def _source(i: int) -> str:
    """A loopback source address for connection ``i`` (PER_SOURCE connections each)."""
    k = i // PER_SOURCE
    return "127.1.%d.%d" % (k // 250, k % 250 + 1)


@dataclass
class Table:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, phase: str, load: str, figures: str) -> None:
        self.rows.append((phase, load, figures))
        print(f"  {phase:8s} {load:34s} {figures}", flush=True)

    def markdown(self) -> str:
        out = ["| phase | load | figures |", "| --- | --- | --- |"]
        out += ["| %s | %s | %s |" % r for r in self.rows]
        return "\n".join(out)


# --- phases ------------------------------------------------------------------------------------

async def phase_rest(table: Table, steps: list[int], seconds: float) -> None:
    sim = SimProcess(max(steps), "--no-rate-limits")
    try:
        for n in steps:
            clients = [RestClient(sim.base, *sim.keys[i]) for i in range(n)]
            stop_at = [0.0]

            async def loop(c: RestClient) -> None:
                while time.monotonic() < stop_at[0]:
                    oid = await c.create(1, _price(5000 + random.randrange(100) * TICK))
                    if oid is not None:
                        await c.cancel(oid)

            stop_at[0] = time.monotonic() + 1.0  # warm-up: connections, first requests
            await asyncio.gather(*(loop(c) for c in clients))
            for c in clients:
                c.latencies.clear()
                c.errors = 0
            sim.cpu_percent()
            start = time.monotonic()
            stop_at[0] = start + seconds
            await asyncio.gather(*(loop(c) for c in clients))
            elapsed = time.monotonic() - start
            lat = [x for c in clients for x in c.latencies]
            errors = sum(c.errors for c in clients)
            table.add("rest", f"{n} clients, create+cancel", "%.0f req/s, p50 %s, p99 %s, errors %d, sim CPU %.0f %%"
                      % (len(lat) / elapsed, _ms(_pct(lat, 0.5)), _ms(_pct(lat, 0.99)), errors, sim.cpu_percent()))
            await asyncio.gather(*(c.close() for c in clients))
    finally:
        sim.stop()


async def _open_ws(sessions: list[aiohttp.ClientSession], url: str, i: int) -> aiohttp.ClientWebSocketResponse:
    k = i // PER_SOURCE
    while len(sessions) <= k:
        conn = aiohttp.TCPConnector(limit=0, local_addr=(_source(len(sessions) * PER_SOURCE), 0))
        sessions.append(aiohttp.ClientSession(connector=conn))
    return await sessions[k].ws_connect(url, autoping=True, max_msg_size=0)


async def phase_fanout(table: Table, steps: list[int], seconds: float) -> None:
    sim = SimProcess(0)
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    lags: list[float] = []
    counts = [0]
    measuring = [False]

    async def reader(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time() * 1000
            text = msg.data
            at = text.rfind(',"time":"')
            if measuring[0] and at >= 0 and text.startswith('{"table"'):
                counts[0] += 1
                lags.append(now - int(text[at + 9:text.index('"', at + 9)]))

    tasks: list[asyncio.Task] = []
    try:
        for n in steps:
            while len(sockets) < n:
                ws = await _open_ws(sessions, sim.ws, len(sockets))
                for t in ("order_book", "trade"):
                    await ws.send_str(json.dumps({"op": "sub", "args": {"instrument_type": "pc", "table": t,
                                                                        "settle_currency": ASSET, "symbol": SYMBOL}}))
                sockets.append(ws)
                tasks.append(asyncio.ensure_future(reader(ws)))
            await asyncio.sleep(2.0)  # partials delivered, steady state
            lags.clear()
            counts[0] = 0
            sim.cpu_percent()
            measuring[0] = True
            await asyncio.sleep(seconds)
            measuring[0] = False
            total = counts[0] / seconds
            ms = [x / 1000 for x in lags]
            table.add("fanout", f"{n} subscribers (order_book+trade)",
                      "%.0f msgs/s total, %.1f per subscriber, lag p50 %s, p99 %s, max %s, sim CPU %.0f %%"
                      % (total, total / n, _ms(_pct(ms, 0.5)), _ms(_pct(ms, 0.99)), _ms(max(ms, default=float("nan"))),
                         sim.cpu_percent()))
    finally:
        for ws in sockets:
            await ws.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in sessions:
            await s.close()
        sim.stop()


async def _rest_probe(client: RestClient, seconds: float, pairs_per_s: float = 10) -> list[float]:
    client.latencies.clear()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        oid = await client.create(1, _price(5000 + random.randrange(100) * TICK))
        if oid is not None:
            await client.cancel(oid)
        await asyncio.sleep(max(0.0, 1 / pairs_per_s - (time.monotonic() - t0)))
    return list(client.latencies)


async def _per_address_cap(url: str, bound: int = 2000) -> tuple[str, float, int]:
    """Open sockets from one fresh source address until one is refused; (answer, its ms, accepted)."""
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=("127.2.0.1", 0)))
    sockets = []
    try:
        while len(sockets) < bound:
            t0 = time.perf_counter()
            try:
                sockets.append(await http.ws_connect(url))
            except aiohttp.WSServerHandshakeError as exc:
                return f"HTTP {exc.status}", (time.perf_counter() - t0) * 1000, len(sockets)
        return "nothing", 0.0, len(sockets)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await http.close()


async def phase_idle(table: Table, target: int, seconds: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = target + 1000
    if hard < need:
        table.add("idle", f"{target} sockets", f"skipped: open-file limit {hard} < {need}")
        return
    sim = SimProcess(1)
    client = RestClient(sim.base, *sim.keys[0])
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    refused: dict[int, int] = {}
    try:
        await _rest_probe(client, 1.0)
        rss0 = sim.rss_mb()
        sim.cpu_percent()
        alone = await _rest_probe(client, seconds)
        cpu0 = sim.cpu_percent()
        over, over_ms, one_address = await _per_address_cap(sim.ws)
        start = time.monotonic()
        for first in range(0, target, 100):
            results = await asyncio.gather(*(_open_ws(sessions, sim.ws, i)
                                             for i in range(first, min(target, first + 100))),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, aiohttp.WSServerHandshakeError):
                    refused[r.status] = refused.get(r.status, 0) + 1
                elif isinstance(r, BaseException):
                    refused[0] = refused.get(0, 0) + 1
                else:
                    sockets.append(r)
        opened = time.monotonic() - start
        await asyncio.sleep(1.0)
        sim.cpu_percent()
        loaded = await _rest_probe(client, seconds)
        cpu1 = sim.cpu_percent()
        rss1 = sim.rss_mb()
        table.add("idle", "none (1 REST client, 10 pairs/s)", "REST p50 %s, p99 %s, sim RSS %.1f MB, CPU %.0f %%"
                  % (_ms(_pct(alone, 0.5)), _ms(_pct(alone, 0.99)), rss0, cpu0))
        table.add("idle", f"{target} idle sockets attempted",
                  "%d open, refused %s (in %.1f s); REST p50 %s (%+.2f ms), p99 %s, sim RSS %.1f MB, CPU %.0f %%"
                  % (len(sockets), ", ".join(f"{v} x HTTP {k}" if k else f"{v} x error" for k, v in sorted(refused.items()))
                     or "none", opened, _ms(_pct(loaded, 0.5)), (_pct(loaded, 0.5) - _pct(alone, 0.5)) * 1000,
                     _ms(_pct(loaded, 0.99)), rss1, cpu1))
        table.add("idle", "sockets from one address", f"{one_address} accepted, the next refused with {over} "
                                                       f"in {over_ms:.1f} ms")
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for s in sessions:
            await s.close()
        await client.close()
        sim.stop()


async def phase_memory(table: Table, clients: int, minutes: float) -> None:
    sim = SimProcess(clients)
    mark = [10000.0]
    stop = asyncio.Event()
    rests = [RestClient(sim.base, *sim.keys[i]) for i in range(clients)]
    http = aiohttp.ClientSession()

    async def watcher(key: str, secret: str) -> None:
        async with http.ws_connect(sim.ws) as ws:
            expires = str(int(time.time() * 1000) + 5000)
            await ws.send_str(json.dumps({"op": "auth_key_expires", "args": {
                "api_key": key, "expires": expires, "signature": _sign(secret, "GET/ws" + expires)}}))
            for t in ("order_book", "trade", "instrument", "order", "execution", "position", "margin"):
                args = {"instrument_type": "pc", "table": t, "settle_currency": ASSET}
                if t in ("order_book", "trade", "instrument"):
                    args["symbol"] = SYMBOL
                await ws.send_str(json.dumps({"op": "sub", "args": args}))
            last_ping = time.monotonic()
            while not stop.is_set():
                try:
                    msg = await ws.receive(timeout=1.0)
                except asyncio.TimeoutError:
                    msg = None
                if msg is not None and msg.type != aiohttp.WSMsgType.TEXT:
                    break
                if msg is not None and msg.data.startswith('{"table":"instrument"'):
                    rows = json.loads(msg.data)["data"]
                    if rows and rows[0].get("mark_price"):
                        mark[0] = float(rows[0]["mark_price"])
                if time.monotonic() - last_ping > 20:
                    await ws.send_str('{"op":"ping"}')
                    last_ping = time.monotonic()

    async def trader(c: RestClient) -> None:
        rnd = random.Random(c.key)
        while not stop.is_set():
            m = mark[0]
            ids = [await c.create(1, _price(m - rnd.randint(1, 12) * TICK), rnd.randint(1, 5)),
                   await c.create(0, _price(m + rnd.randint(1, 12) * TICK), rnd.randint(1, 5))]
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except asyncio.TimeoutError:
                pass
            for oid in ids:
                if oid is not None:
                    await c.cancel(oid)

    tasks = [asyncio.ensure_future(watcher(*k)) for k in sim.keys] + \
        [asyncio.ensure_future(trader(c)) for c in rests]
    samples: list[tuple[float, float]] = []
    try:
        start = time.monotonic()
        end = start + minutes * 60
        while time.monotonic() < end:
            samples.append(((time.monotonic() - start) / 60, sim.rss_mb()))
            if len(samples) % 12 == 1:
                print("    memory: %.1f MB at %.1f min" % (samples[-1][1], samples[-1][0]), flush=True)
            await asyncio.sleep(5)
        samples.append(((time.monotonic() - start) / 60, sim.rss_mb()))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in rests:
            await c.close()
        await http.close()
        sim.stop()

    def at(minute: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - minute))[1]

    warm = min(2.0, minutes / 5)
    points = sorted({0.0, 1.0, warm, minutes / 2, minutes} & {m for m in (0.0, 1.0, 2.0, 5.0, minutes / 2, minutes, warm)
                                                                if m <= minutes})
    errors = sum(c.errors for c in rests)
    requests = sum(len(c.latencies) for c in rests)
    table.add("memory", f"{clients} active clients, {minutes:g} min",
              "RSS " + ", ".join("%.1f MB at %g min" % (at(m), round(m, 2)) for m in points)
              + "; growth %g -> %g min %+.1f MB; %d REST calls, %d errors"
              % (round(warm, 2), minutes, at(minutes) - at(warm), requests, errors))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer steps, shorter phases (~2 minutes)")
    ap.add_argument("--phases", default="rest,fanout,idle,memory", help="comma-separated subset")
    ap.add_argument("--seconds", type=float, default=None, help="measurement per step (default 5, quick 2)")
    ap.add_argument("--minutes", type=float, default=None, help="memory phase length (default 10, quick 1)")
    ap.add_argument("--idle", type=int, default=None, help="idle sockets to attempt (default 10000, quick 2000)")
    a = ap.parse_args()
    seconds = a.seconds or (2.0 if a.quick else 5.0)
    minutes = a.minutes or (1.0 if a.quick else 10.0)
    idle = a.idle or (2000 if a.quick else 10_000)
    rest_steps = [1, 10, 50] if a.quick else [1, 10, 50, 100, 200, 300]
    fan_steps = [1, 50, 200] if a.quick else [1, 10, 50, 100, 200, 500]
    phases = a.phases.split(",")
    table = Table()
    print(f"simulator load benchmark ({os.cpu_count()} CPUs, Python {sys.version.split()[0]})", flush=True)

    async def run() -> None:
        if "rest" in phases:
            await phase_rest(table, rest_steps, seconds)
        if "fanout" in phases:
            await phase_fanout(table, fan_steps, seconds)
        if "idle" in phases:
            await phase_idle(table, idle, max(seconds, 5.0))
        if "memory" in phases:
            await phase_memory(table, 20, minutes)

    asyncio.run(run())
    print()
    print(table.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
