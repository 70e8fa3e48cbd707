"""aiohttp server of the local GTE simulator: REST §2 + WebSocket §3 on one port, plus faults."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from collections.abc import Callable, Iterator

from aiohttp import WSCloseCode, WSMsgType, web

from .auth import KeyStore, generate_credentials
from .config import SimConfig, fault_field_to_config
from .errors import (BAD_VALUE, EXPIRED, INTERNAL, RATE_LIMITED, ApiError, envelope, error_envelope,
                     now_ms)
from .exchange import Exchange, ExchangeConfig, InstrumentSpec, SimError
from .flow import MarketFlow
from .faults import FaultInjector
from .limits import ConnectionCaps, OncePerClient
from .ratelimit import RateLimiter
from .rest import ENDPOINTS, Ctx, Endpoint
from .validate import Params, request_params
from .ws import WsHub, WsSession

log = logging.getLogger(__name__)
T = TypeVar("T")
ORDER_CREATE = "/v1/api/pc/order/create"
LOOPBACK = ("127.", "::1", "::ffff:127.")
FLOW_SEED_STEP = 7919  # seed of the n-th instrument's flow: seed + n * FLOW_SEED_STEP
RATE_LIMIT_BUCKETS = 10_000  # (key or address, endpoint) windows kept; stale ones are pruned beyond it


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_json_default)


def _seconds(value: Decimal) -> float:
    return int(value * 1000) / 1000


@dataclass(frozen=True)
class Admitted:
    """A REST call read, authenticated and rate-limited on arrival, not yet executed."""
    params: dict[str, str]
    account_id: int | None
    expires_ms: int | None  # api-expires of a signed call; it is never executed after it


def _build_exchange(config: SimConfig) -> tuple[Exchange, list[MarketFlow]]:
    """The core ``Exchange`` with every instrument of ``config`` and (when enabled) one
    ``MarketFlow`` per instrument, each seeded differently."""
    instruments = config.instruments()
    specs = tuple(InstrumentSpec(symbol=i.symbol, asset=i.asset, symbol_id=i.symbol_id, tick_size=i.tick_size,
                                 price_precision=i.price_precision, start_price=i.start_price,
                                 quote_currency=i.symbol.split("_", 1)[1] if "_" in i.symbol else "USD")
                  for i in instruments)
    exchange = Exchange(ExchangeConfig(instruments=specs, start_price=config.start_price,
                                       history_limit=config.history_limit,
                                       trade_history=config.trade_history),
                        funding_interval_ms=config.funding_interval_s * 1000)
    if not config.flow:
        return exchange, []
    return exchange, [MarketFlow(exchange, i.flow, config.seed + n * FLOW_SEED_STEP)
                      for n, i in enumerate(instruments)]


class SimServer:
    """The simulator. Use ``await start()``/``await stop()`` inside a loop, or ``run_simulator``
    (a background thread). The sync helpers (``call``, ``set_faults``...) are thread-safe."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.exchange, self.flows = _build_exchange(self.config)
        self.flow = self.flows[0] if self.flows else None  # the first instrument's
        self.assets = list(dict.fromkeys(i.asset for i in self.exchange.instruments.values()))
        self.keys = KeyStore()
        self.faults = FaultInjector(self.config.fault_config(), seed=self.config.seed)
        self.limiter = RateLimiter(max_buckets=RATE_LIMIT_BUCKETS)
        self.refusals = OncePerClient()
        self.caps = ConnectionCaps(self.config.ws_max_per_address, self.config.ws_max_connections,
                                   self.refusals)
        self.hub = WsHub(self.exchange, self.keys, self.faults, self._flush_events,
                         self.config.ws_max_subs_per_s, self.refusals)
        key, secret = self.config.api_key, self.config.api_secret
        if not key or not secret:
            key, secret = generate_credentials()
        self.api_key, self.api_secret = key, secret
        self.account_id = self._add_account(key, secret, self.config.balance)
        for extra_key, extra_secret, balance in self.config.extra_accounts:
            self._add_account(extra_key, extra_secret, balance)
        self.rate_limited = 0
        self.port = self.config.port
        self._endpoints = {e.path: e for e in ENDPOINTS}
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task | None = None
        self._held: set[asyncio.Task] = set()  # late creates waiting to execute

    def __repr__(self) -> str:
        return f"SimServer({self.base_url}, key={self.api_key}, account={self.account_id})"

    # --- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        host = self.config.host
        if host in ("", "0.0.0.0"):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # --- lifecycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (routes only; no background task)."""
        app = web.Application(client_max_size=self.config.max_body_bytes)
        app.router.add_get("/ws", self._handle_ws)
        app.router.add_get("/sim/stats", self._handle_stats)
        app.router.add_route("*", "/{tail:.*}", self._handle_rest)
        return app

    async def start(self) -> None:
        """Bind, serve and start the periodic task (in the running loop)."""
        self._step()  # the flow quotes a book before the first client arrives
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = self._runner.addresses[0][1]
        self._ticker = asyncio.ensure_future(self._tick_loop())
        log.info("GTE simulator REST %s/v1/api WS %s (key=%s)", self.base_url, self.ws_url, self.api_key)

    async def stop(self) -> None:
        """Close every connection and stop serving."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        for task in list(self._held):
            task.cancel()  # a late create not yet executed never will be
        sessions = list(self.hub.sessions)
        self.hub.close_all()
        if sessions:
            await asyncio.wait([s.writer for s in sessions], timeout=2)
            for session in sessions:
                if not session.writer.done():
                    session.abort()  # a peer that does not read must not hold up the shutdown
            await asyncio.gather(*(s.writer for s in sessions), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self, timeout: float = 10.0) -> SimServer:
        """Run the server in a daemon thread with its own loop; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                asyncio.set_event_loop(None)
                loop.close()

        self._thread = threading.Thread(target=main, name="gte-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("simulator did not start in time")
        if failure:
            self._thread.join()
            raise failure[0]
        return self

    def stop_thread(self, timeout: float = 10.0) -> None:
        """Stop a server started by ``start_in_thread`` and join its thread."""
        if self._thread is None or self._loop is None:
            return
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._thread = None

    # --- thread-safe helpers -----------------------------------------------------------------

    def _on_loop(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() == self._loop_thread:
            return fn()

        async def run() -> T:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(exchange)`` on the server's loop; pushes caused by it go out right after."""
        def run() -> T:
            try:
                return fn(self.exchange)
            finally:
                self._flush_events()
        return self._on_loop(run)

    def fault_counters(self) -> dict[str, int]:
        """Injected faults by kind."""
        return self._on_loop(self.faults.snapshot)

    def set_faults(self, **changes: Any) -> None:
        """Change fault settings at runtime (``drop_rate=0.1`` or ``fault_drop_rate=0.1``)."""
        mapped = {fault_field_to_config(k): v for k, v in changes.items()}
        self._on_loop(lambda: self.faults.set(**mapped))

    def disconnect_websockets(self) -> int:
        """Close every WebSocket connection now; returns how many."""
        def run() -> int:
            closed = self.hub.close_all()
            self.faults.count("ws_disconnect", closed)
            return closed
        return self._on_loop(run)

    def add_account(self, key: str, secret: str, balance: Decimal | str | int) -> int:
        """A new paper account reachable with ``key``/``secret``; returns its id."""
        return self._on_loop(lambda: self._add_account(key, secret, Decimal(str(balance))))

    def stats(self) -> dict[str, Any]:
        """Fault counters, accounts, open orders and connections (what ``/sim/stats`` serves)."""
        return self._on_loop(self._stats)

    def _add_account(self, key: str, secret: str, balance: Decimal) -> int:
        if key in self.keys:
            raise ValueError(f"api key {key} already exists")
        account_id = self.exchange.open_account(key, balance, self.assets[0], every_asset=True)
        self.keys.add(key, secret, account_id)
        return account_id

    def _stats(self) -> dict[str, Any]:
        accounts = []
        for account_id in self.exchange.account_ids():
            accounts.append({"account_id": account_id,
                             "equity": str(self.exchange.equity(account_id, self.assets[0])),
                             "open_orders": len(self.exchange.open_orders_of(account_id))})
        return {"faults": self.faults.snapshot(), "rate_limited": self.rate_limited,
                "accounts": accounts, "open_orders": sum(a["open_orders"] for a in accounts),
                "connections": sum(1 for s in self.hub.sessions if not s.closed),
                "refused": dict(self.refusals.counts)}

    # --- periodic work -----------------------------------------------------------------------

    def _step(self) -> None:
        now = now_ms()
        for flow in self.flows:
            flow.step(now)
        self.exchange.tick(now)
        self._flush_events()

    def _flush_events(self) -> None:
        self.hub.dispatch(self.exchange.drain_events())

    async def _tick_loop(self) -> None:
        cfg = self.config
        interval = cfg.tick_interval_ms / 1000
        next_position = next_instrument = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                self._step()
                if self.faults.ws_disconnect_due():
                    self.faults.count("ws_disconnect", self.hub.close_all())
                tables = set()
                mono = time.monotonic()
                if mono >= next_position:
                    tables |= {"position", "margin"}
                    next_position = mono + _seconds(cfg.position_push_s)
                if mono >= next_instrument:
                    tables.add("instrument")
                    next_instrument = mono + _seconds(cfg.instrument_push_s)
                if tables:
                    self.hub.periodic(tables)
            except Exception:
                log.exception("simulator tick failed")

    # --- handlers ----------------------------------------------------------------------------

    @staticmethod
    def _reply(body: dict, status: int = 200) -> web.Response:
        return web.Response(status=status, text=_dumps(body), content_type="application/json")

    def _too_large(self, request: web.Request, size: int | None) -> web.Response:
        """HTTP 413 with an error envelope; the connection is closed (the body is not read)."""
        limit = self.config.max_body_bytes
        self.refusals.refuse("body_size", request.remote, "refusing %s %s from %s: body of %s (limit %d bytes)",
                             request.method, request.path, request.remote,
                             f"{size} bytes" if size is not None else "more bytes", limit)
        reply = self._reply(error_envelope(ApiError(BAD_VALUE, "body", f"request body over {limit} bytes",
                                                    "REQUEST_TOO_LARGE")), 413)
        reply.force_close()
        return reply

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        size = request.content_length
        if size is not None and size > self.config.max_body_bytes:
            return self._too_large(request, size)
        endpoint = self._endpoints.get(request.path)
        if endpoint is None:
            return self._reply(error_envelope(ApiError(BAD_VALUE, "path", "no such endpoint",
                                                       "PATH_NOT_FOUND")), 404)
        if request.method != endpoint.method:
            return self._reply(error_envelope(ApiError(BAD_VALUE, "method", "method not allowed",
                                                       "METHOD_NOT_ALLOWED")), 405)
        delay = self.faults.latency_s()
        if delay:
            await asyncio.sleep(_seconds(delay))  # before reading: the expiry is checked after it
        failure = self.faults.http_5xx()
        if failure is not None:  # before anything is executed
            status, with_envelope = failure
            if with_envelope:
                return self._reply(envelope(None, code=-status, msg="simulated server error"), status)
            return web.Response(status=status, text="simulated upstream failure")
        try:
            call = await self._admit(endpoint, request)
        except ApiError as err:
            return self._reply(error_envelope(err))
        except web.HTTPRequestEntityTooLarge:  # a chunked body that grew past the limit
            return self._too_large(request, None)
        except ConnectionResetError:  # the client died mid-request (a bot killed, say): nothing to answer
            log.info("REST %s from %s: the client went away before its request was read", endpoint.path,
                     request.remote)
            return web.Response(status=400)
        except Exception:
            log.exception("REST %s failed on arrival (key=%s)", endpoint.path, request.headers.get("api-key"))
            return self._reply(error_envelope(ApiError(INTERNAL, None, "internal error")))
        hold = self.faults.late_create_s() if endpoint.path == ORDER_CREATE else Decimal(0)
        if hold:
            reply = await self._execute_late(endpoint, call, hold)
        else:
            reply = self._execute(endpoint, call)
        if endpoint.path == ORDER_CREATE and reply["code"] == 0 and self.faults.lose_response() \
                and request.transport:
            request.transport.abort()  # executed, but the client never hears back
            return web.Response()
        return self._reply(reply)

    async def _admit(self, endpoint: Endpoint, request: web.Request) -> Admitted:
        """What happens on arrival: read the parameters, authenticate, rate-limit."""
        body = b"" if endpoint.method == "GET" else await request.read()
        raw = request_params(request.query.items(), request.content_type, body)
        account_id, expires = None, None
        bucket: tuple = (request.remote, endpoint.path)  # public calls: per client IP
        if endpoint.signed:
            key = self.keys.verify_rest(request.headers, raw, now_ms())
            if self.faults.rate_limit_burst():
                raise ApiError(RATE_LIMITED, None, "too many requests (simulated burst)")
            account_id, bucket = key.account_id, (key.key, endpoint.path)
            expires = int(request.headers["api-expires"])
        if self.config.rate_limits and not self.limiter.allow(bucket, endpoint.limit, endpoint.window_s):
            self.rate_limited += 1
            raise ApiError(RATE_LIMITED)
        return Admitted(raw, account_id, expires)

    def _execute(self, endpoint: Endpoint, call: Admitted) -> dict:
        """Run an admitted call now, unless its ``api-expires`` has passed; the reply envelope."""
        now = now_ms()
        if call.expires_ms is not None and now > call.expires_ms:
            return error_envelope(ApiError(EXPIRED, "api-expires", "request expired before execution"))
        try:
            return envelope(endpoint.handler(Ctx(self.exchange, call.account_id, now), Params(call.params)))
        except (ApiError, SimError) as err:
            return error_envelope(err)
        except Exception:
            log.exception("REST %s failed (account %s)", endpoint.path, call.account_id)
            return error_envelope(ApiError(INTERNAL, None, "internal error"))
        finally:
            if endpoint.mutates:
                self._flush_events()  # pushes go out right after the call, not at the next tick

    async def _execute_late(self, endpoint: Endpoint, call: Admitted, hold: Decimal) -> dict:
        """The late-create fault: hold an admitted call, then execute it even if the client
        has given up (a task of its own, shielded from the handler's cancellation)."""
        async def held() -> dict:
            await asyncio.sleep(_seconds(hold))
            reply = self._execute(endpoint, call)
            self.faults.count("late_create_expired" if reply["code"] == EXPIRED else "late_create")
            return reply
        task = asyncio.ensure_future(held())
        self._held.add(task)
        task.add_done_callback(self._held.discard)
        return await asyncio.shield(task)

    async def _handle_stats(self, request: web.Request) -> web.Response:
        if not (request.remote or "").startswith(LOOPBACK):
            return web.json_response({"error": "loopback only"}, status=403)
        return web.Response(text=_dumps(self._stats()), content_type="application/json")

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote
        refused = self.caps.admit(peer)
        if refused is not None:
            status, reason = refused
            reply = self._reply(error_envelope(ApiError(RATE_LIMITED, "connections", reason,
                                                        "TOO_MANY_CONNECTIONS")), status)
            reply.force_close()  # a refused client keeps no idle keep-alive connection either
            return reply
        try:
            return await self._serve_ws(request)
        finally:
            self.caps.release(peer)

    async def _serve_ws(self, request: web.Request) -> web.StreamResponse:
        cfg = self.config
        # no compression: the hub writes ready-made text frames (see WsSession)
        ws = web.WebSocketResponse(max_msg_size=cfg.ws_max_msg_bytes, compress=False)
        await ws.prepare(request)
        session = WsSession(ws, request.remote, request.transport, cfg.ws_send_buffer_bytes)
        self.hub.add(session)
        idle = _seconds(cfg.ws_idle_timeout_s)
        try:
            while not session.closed:
                try:
                    msg = await ws.receive(timeout=idle)
                except TimeoutError:
                    log.info("closing idle WebSocket %s", request.remote)
                    break
                if msg.type == WSMsgType.TEXT:
                    self.hub.handle_text(session, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.hub.handle_text(session, msg.data.decode("utf-8", "replace"))
                else:
                    too_big = getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                    if msg.type == WSMsgType.ERROR and too_big:
                        self.refusals.refuse("ws_message_size", request.remote,
                                             "closing WebSocket %s: a message over %d bytes",
                                             request.remote, cfg.ws_max_msg_bytes)
                    break
        finally:
            self.hub.remove(session)
            session.close_soon()
            await asyncio.gather(session.writer, return_exceptions=True)
        return ws


@contextmanager
def run_simulator(config: SimConfig | None = None) -> Iterator[SimServer]:
    """``with run_simulator(SimConfig(port=0)) as sim:`` — a simulator in a background thread."""
    server = SimServer(config or SimConfig(port=0))
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()
