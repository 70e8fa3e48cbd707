"""The control API: HTTP on CONTROL_ADDRESS (aiohttp, in a thread and event loop of its own).

Every request carries ``Authorization: Bearer $MM_CONTROL_TOKEN`` (compared in constant
time). A POST also carries ``X-MM-Timestamp`` (Unix seconds, within CONTROL_WINDOW_S of the
bot's clock) and ``X-MM-Nonce`` (8 to 64 of A-Z a-z 0-9 _ -, never used before within the
window): a captured request cannot be played again. Its body is empty or a JSON object of
at most MAX_BODY bytes. Refusals: 401 (no or wrong token, a nonce seen before), 400
(malformed), 413 (too large); each is logged with the method, the known path or "an
unknown path", the peer and the reason -- never a header or the body.

GET /status; POST /pause, /resume, /cancel-all, /flatten, /reload. The commands are run by
the manager's thread (``commands.CommandQueue``); this thread never calls the exchange.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

from aiohttp import web

from ..log import register_secret
from ..settings import SettingsError
from .commands import NAMES, Busy, CommandQueue

log = logging.getLogger("market_maker.ops")

ENV_TOKEN = "MM_CONTROL_TOKEN"
MIN_TOKEN = 16
MAX_BODY = 1024
CONTROL_WINDOW_S = 60
COMMAND_TIMEOUT_S = 30.0
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_NONCES = 10_000


def control_token(environ: Mapping[str, str], setting: str) -> str:
    token = environ.get(ENV_TOKEN, "")
    if len(token) < MIN_TOKEN:
        what = "is not set" if not token else f"has {len(token)} characters"
        raise SettingsError(f"{setting} needs the environment variable {ENV_TOKEN} of at least {MIN_TOKEN} "
                            f"characters; it {what}")
    return token


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


class ReplayGuard:
    """Timestamps within the window, nonces used once (remembered for the window)."""

    def __init__(self, window_s: float = CONTROL_WINDOW_S, clock: Any = time.time):
        self.window_s, self.clock = window_s, clock
        self.seen: "OrderedDict[str, float]" = OrderedDict()
        self._lock = threading.Lock()

    def check(self, timestamp: Optional[str], nonce: Optional[str]) -> None:
        if timestamp is None or nonce is None:
            raise Refused(400, "X-MM-Timestamp and X-MM-Nonce headers required on a POST")
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise Refused(400, "X-MM-Timestamp is not Unix seconds")
        if not _NONCE.fullmatch(nonce):
            raise Refused(400, "X-MM-Nonce is not 8 to 64 of A-Z a-z 0-9 _ -")
        now = self.clock()
        if abs(now - int(timestamp)) > self.window_s:
            raise Refused(401, f"X-MM-Timestamp outside the {self.window_s:.0f}s window (clock skew or replay)")
        with self._lock:
            while self.seen and (next(iter(self.seen.values())) < now - 2 * self.window_s
                                 or len(self.seen) > MAX_NONCES):
                self.seen.popitem(last=False)
            if nonce in self.seen:
                raise Refused(401, "nonce used before (replay)")
            self.seen[nonce] = now


class ControlServer:
    def __init__(self, commands: CommandQueue, address: Tuple[str, int], token: str):
        self.commands = commands
        self.address = address
        self._token = token.encode()
        register_secret(token)
        self.guard = ReplayGuard()
        self.port: Optional[int] = None
        self.refused = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None

    @classmethod
    def from_settings(cls, commands: CommandQueue, settings: Any, environ: Mapping[str, str]) -> "ControlServer":
        return cls(commands, settings.CONTROL_ADDRESS, control_token(environ, "CONTROL_ADDRESS"))

    def __repr__(self) -> str:
        return f"ControlServer({self.address[0]}:{self.port or self.address[1]})"

    # -- lifecycle
    def start(self) -> None:
        ready: "concurrent.futures.Future[int]" = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="control-api", daemon=True)
        self._thread.start()
        host, port = self.address
        try:
            self.port = ready.result(timeout=30)
        except OSError as exc:
            raise SettingsError(f"CONTROL_ADDRESS = '{host}:{port}' cannot be used: {exc.strerror or exc}") from None
        log.info("Control API at http://%s:%d/ (token from %s)", host, self.port, ENV_TOKEN)

    def _serve(self, ready: "concurrent.futures.Future[int]") -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = web.Application(client_max_size=MAX_BODY, middlewares=[self._guard])
            app.router.add_get("/status", self._status)
            for name in NAMES:
                app.router.add_post(f"/{name}", self._command)
            runner = web.AppRunner(app, access_log=None)  # the access log would show paths and peers of all
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, self.address[0], self.address[1], reuse_address=False)
            loop.run_until_complete(site.start())
            self._runner = runner
            sockets = [s for s in (runner.addresses or [])]
            ready.set_result(sockets[0][1] if sockets else self.address[1])
        except BaseException as exc:  # noqa: BLE001 -- handed to start()
            ready.set_exception(exc)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # -- requests
    def _refuse(self, request: web.Request, status: int, reason: str) -> web.Response:
        self.refused += 1
        known = request.path in ("/status", *(f"/{n}" for n in NAMES))
        log.warning("Control API refused %s %s from %s: %d, %s", request.method,
                    request.path if known else "an unknown path", request.remote, status, reason)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return web.json_response({"ok": False, "error": reason}, status=status, headers=headers)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self._token):
            return self._refuse(request, 401, "missing or wrong bearer token")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._refuse(request, 413, f"body over {MAX_BODY} bytes")
        try:
            if request.method == "POST":
                self.guard.check(request.headers.get("X-MM-Timestamp"), request.headers.get("X-MM-Nonce"))
                try:
                    raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    raise Refused(413, f"body over {MAX_BODY} bytes") from None
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise Refused(400, "the body is not JSON") from None
                    if not isinstance(body, dict) or body:
                        raise Refused(400, "the body must be empty or {}")
            return await handler(request)
        except Refused as exc:
            return self._refuse(request, exc.status, exc.reason)
        except web.HTTPException as exc:  # 404 / 405 from the router
            return self._refuse(request, exc.status, exc.reason or "refused")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.commands.status())

    async def _command(self, request: web.Request) -> web.Response:
        name = request.path.lstrip("/")
        try:
            future = self.commands.submit(name, f"the control API ({request.remote})")
        except Busy as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=503)
        try:
            result: Dict[str, Any] = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT_S)
        except asyncio.TimeoutError:
            return web.json_response({"ok": False, "error": "queued; the bot has not run it yet"}, status=504)
        return web.json_response(result, status=200 if result.get("ok") else 502)
