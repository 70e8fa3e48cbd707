"""The GTE WebSocket client's I/O thread: connect, authenticate, subscribe, keep alive, reconnect.

One I/O thread owns the socket (``websocket-client``'s ``create_connection``):
it receives, pings, watches for silence, resubscribes stale tables and
reconnects with exponential backoff + jitter. Every message it receives goes
through ``handle_raw`` (``ws_stream``). When the ``order`` table was rebuilt after
a resync, it reads our orders back over REST (``readback``) before the tables
count as synced again.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websocket

from .errors import AuthenticationError, GteError, error_from_code
from .readback import blind_bound_ms, finished_orders
from .signing import Credentials, ws_signature
from .ws_stream import ALL_TABLES, PUBLIC_TABLES, WsStream

if TYPE_CHECKING:
    from .rest import GteRest

log = logging.getLogger("market_maker.gte.ws")  # the client's logger, whichever of its modules logs

PING = '{"op":"ping"}'
PARTIAL_GRACE = 1.5  # seconds between a sub's ack and its partial before we call the partial lost
# Resubscribing a table whose partial does not come: at once, then after 0.5, 1, 2, 4, 4 ... s (until the
# episode's partial_timeout forces a reconnect). A server that keeps sending updates without the partial
# must not get a resubscription per message.
RESUBSCRIBE_BACKOFF = (0.5, 4.0)
AUTH_EXPIRES_MS = 5000


def _mask(key: str) -> str:
    return key[:2] + "…"


class WsSession(WsStream):
    """The connection lifecycle around a ``WsStream``: the I/O thread and its sessions."""

    def __init__(self, ws_url: str, symbol: str, settle_currency: str, credentials: Credentials | None, *,
                 rest: GteRest | None, ping_interval: float, silence_timeout: float, partial_timeout: float,
                 crossed_resync: float, reconnect_backoff: tuple[float, float],
                 on_event: Callable[[str], None] | None, clock: Callable[[], float],
                 websocket_factory: Callable[..., Any] | None, max_trades: int, max_executions: int) -> None:
        super().__init__(symbol, settle_currency, private_tables=bool(credentials), rest=rest,
                         crossed_resync=crossed_resync, on_event=on_event, clock=clock,
                         max_trades=max_trades, max_executions=max_executions)
        self.ws_url = ws_url
        self._creds = credentials
        self.ping_interval = ping_interval
        self.silence_timeout = silence_timeout
        self.partial_timeout = partial_timeout
        self.reconnect_backoff = reconnect_backoff
        self._factory = websocket_factory or websocket.create_connection
        self._tick = max(0.01, min(0.2, ping_interval / 4, silence_timeout / 4))
        self.last_message_time = 0.0  # clock() when the I/O thread last received a message (any: silence check)

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: BaseException | None = None

    # ================================================================ lifecycle
    def start(self) -> None:
        """Connect, authenticate, subscribe and block until every partial arrived.

        Raises ``AuthenticationError`` if the key is refused, ``GteError`` naming the
        missing tables if partials don't arrive within ``partial_timeout``, or the
        connection error. On success an I/O daemon thread keeps the state live.
        """
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        self._fatal = None
        ws = self._open_session(first=True)
        self._thread = threading.Thread(target=self._run, args=(ws,), daemon=True,
                                        name=f"gte-ws-{self.symbol}")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection cleanly and join the I/O thread."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("GTE WebSocket thread did not stop within %.1fs", timeout)

    # ------------------------------------------------------------- the session
    def _open_session(self, first: bool) -> Any:
        """Connect, auth, subscribe, wait for all partials (and reconcile after a resync)."""
        ws = self._factory(self.ws_url, timeout=self.partial_timeout)
        try:
            with self._lock:
                self._seq.clear()
                self._acks.clear()
                self._sub_acked.clear()
                self._awaiting = set(self._expected)
                self._resync_deadline = 0.0
                self._resync_due.clear()
                self._resub_tries.clear()
                self._resub_at.clear()
                self._set_synced(False)
                self._connected = True
                if not first and "order" in self._had_partial:
                    self._reconcile_pending = True
                self.last_message_time = self._clock()
            deadline = time.monotonic() + self.partial_timeout
            if self._creds is not None:
                self._authenticate(ws, deadline)
            self._send_sub(ws, "sub", "instrument")
            self._wait(ws, deadline, lambda: "instrument" not in self._awaiting)
            for table in self._expected:
                if table != "instrument":
                    self._send_sub(ws, "sub", table)
            self._wait(ws, deadline, lambda: not self._awaiting)
            if self._reconcile_due:
                self._reconcile()
            if self._tables.recording():
                self._record("connection", up=True, reason="first connection" if first else "reconnected")
            return ws
        except BaseException:
            with self._lock:
                self._connected = False
                self._set_synced(False)
            self._close(ws)
            raise

    def _authenticate(self, ws: Any, deadline: float) -> None:
        creds = self._creds
        assert creds is not None
        expires = str(int(self._clock() * 1000) + AUTH_EXPIRES_MS)
        args = {"api_key": creds.api_key, "expires": expires,
                "signature": ws_signature(creds.api_secret, expires)}
        log.info("authenticating as key %s", _mask(creds.api_key))
        ws.send(json.dumps({"op": "auth_key_expires", "args": args}, separators=(",", ":")))
        key = ("auth_key_expires", None)
        self._wait(ws, deadline, lambda: key in self._acks, what="the auth acknowledgement")
        code = self._acks[key]
        if code < 0:
            err = error_from_code(code)
            if isinstance(err, AuthenticationError):
                raise err
            raise AuthenticationError(code, f"WebSocket authentication refused ({err.message})")

    def _send_sub(self, ws: Any, op: str, table: str) -> None:
        args = {"instrument_type": "pc", "table": table, "settle_currency": self.settle_currency}
        if table in PUBLIC_TABLES:
            args["symbol"] = self.symbol
        with self._lock:
            self._sub_acked.discard(table)
        ws.send(json.dumps({"op": op, "args": args}, separators=(",", ":")))

    def _wait(self, ws: Any, deadline: float, done: Callable[[], bool], what: str = "") -> None:
        """Receive and apply messages until ``done()``; refused subs and timeouts raise."""
        while True:
            with self._lock:
                if done():
                    return
                refused = [(op, t, c) for (op, t), c in self._acks.items() if c < 0 and op != "auth_key_expires"]
                missing = sorted(self._awaiting)
            if refused:
                op, table, code = refused[0]
                raise error_from_code(code, f"{op} {table} refused by GTE")
            if self._resync_due and not self._resubscribe(ws):
                raise GteError(None, "the WebSocket stream broke while subscribing")
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                raise GteError(None, f"no {what or 'partial'} within {self.partial_timeout:g}s"
                               + ("" if what else f"; missing tables: {', '.join(missing)}"))
            ws.settimeout(min(remaining, self._tick))
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            if message:
                self.last_message_time = self._clock()
                self.handle_raw(message)

    # ------------------------------------------------------------- the I/O loop
    def _run(self, ws: Any | None) -> None:
        attempt = 0
        while not self._stop.is_set():
            if ws is None:
                lo, hi = self.reconnect_backoff
                delay = min(hi, lo * (2 ** attempt)) * random.uniform(0.5, 1.0)
                attempt += 1
                if self._stop.wait(delay):
                    break
                try:
                    ws = self._open_session(first=False)
                except AuthenticationError as exc:
                    log.error("GTE WebSocket authentication refused; giving up: %s", exc)
                    self._fatal = exc
                    self._emit("disconnected")
                    return
                except Exception as exc:
                    log.warning("GTE WebSocket reconnect failed (%s); retrying", exc)
                    continue
                with self._lock:
                    self._stats["reconnects"] += 1
                attempt = 0
            try:
                alive = self._pump(ws)
            except Exception:  # a bug must not kill the I/O thread and freeze a "connected" view
                log.exception("GTE WebSocket I/O loop failed; reconnecting")
                with self._lock:
                    self._stats["internal"] += 1
                alive = False
            if not alive:
                self._lost(ws)
                ws = None
        if ws is not None:
            with self._lock:
                self._connected = False
                self._set_synced(False)
            self._close(ws)

    def _pump(self, ws: Any) -> bool:
        """Serve one connection until it is lost (False) or we are stopped (True)."""
        clock = self._clock
        last_ping = clock()
        try:
            ws.settimeout(self._tick)
        except (websocket.WebSocketException, OSError):
            return False
        while not self._stop.is_set():
            try:
                message = ws.recv()
            except websocket.WebSocketTimeoutException:
                message = None
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("GTE WebSocket connection lost: %s", type(exc).__name__)
                return False
            now = clock()
            if message:
                self.last_message_time = now
                self.handle_raw(message)  # a binary frame (bytes) is decoded by json itself
            try:
                if now - last_ping >= self.ping_interval:
                    ws.send(PING)
                    last_ping = now
                crossed_since = self._crossed_since  # a frozen crossed book gets no message to check it on
                if crossed_since is not None and now - crossed_since >= self.crossed_resync:
                    with self._lock:
                        kind = self._watch_crossing(now)
                    if kind is not None:
                        self._emit(kind)
                if now - self.last_message_time > self.silence_timeout:
                    log.warning("GTE WebSocket silent for %.0fs; reconnecting", now - self.last_message_time)
                    with self._lock:
                        self._stats["silence"] += 1
                    return False
                if self._awaiting:
                    self._retry_lost_partials()
                if self._resync_due and not self._resubscribe(ws):
                    return False
                if self._reconcile_due:
                    self._reconcile()
                if self._awaiting and time.monotonic() > self._resync_deadline > 0:
                    log.warning("partials missing after resubscribe: %s; reconnecting", sorted(self._awaiting))
                    return False
            except (websocket.WebSocketException, OSError) as exc:
                log.warning("GTE WebSocket send failed: %s", type(exc).__name__)
                return False
        return True

    def _retry_lost_partials(self) -> None:
        """A partial follows its sub's ack at once: one missing PARTIAL_GRACE after the ack was dropped.

        Catches quiet tables too (execution, margin), where no later message would reveal the gap.
        """
        now = time.monotonic()
        with self._lock:
            for table in [t for t in self._awaiting if t in self._sub_acked
                          and now - self._acked_at.get(t, now) > PARTIAL_GRACE]:
                self._stats["partial_lost"] += 1
                self._sub_acked.discard(table)
                self._resync_due.add(table)
                log.info("no %s partial %.1fs after the subscription was acknowledged; resubscribing",
                         table, PARTIAL_GRACE)

    def _resubscribe(self, ws: Any) -> bool:
        """Send unsub + sub for stale tables; False means "reconnect instead"."""
        now = time.monotonic()
        with self._lock:
            if ALL_TABLES in self._resync_due:
                self._resync_due = set()
                return False
            due = {t for t in self._resync_due if self._resub_at.get(t, 0.0) <= now}
            if not due:
                return True  # backing off
            self._resync_due -= due
            if not self._resync_deadline:  # retries within an episode keep its deadline: bounded time to reconnect
                self._resync_deadline = now + self.partial_timeout
            lo, hi = RESUBSCRIBE_BACKOFF
            for table in due:
                tries = self._resub_tries[table] = self._resub_tries.get(table, 0) + 1
                self._resub_at[table] = now + min(hi, lo * 2 ** (tries - 1))
        for table in sorted(due, key=lambda t: t != "instrument"):
            self._send_sub(ws, "unsub", table)
            self._send_sub(ws, "sub", table)
        return True


    def _reconcile(self) -> None:
        """REST view of open orders after the order table was rebuilt (outside the lock)."""
        with self._lock:
            self._reconcile_due = False
        orders = None
        if self._rest is not None:
            try:
                orders = self._rest.open_orders()
                # orders placed and finished while we were blind are in no partial: ask for recent final ones,
                # page by page back to (a while before) the time we went blind
                since = self._tables.started_ms
                with self._lock:
                    blind_ms = blind_bound_ms(self._unsynced_since, self._open_before_blind_ms)
                for page in finished_orders(self._rest, since, blind_ms):
                    orders += page
            except Exception as exc:
                log.warning("open-order reconciliation over REST failed: %s", exc)
        with self._lock:
            if orders is not None:
                added = self._tables.reconcile_orders(orders)
                if added:
                    self._stats["contracts_recovered"] += added
            self._reconcile_pending = False
            self._maybe_synced()
        if self._deferred:
            self._flush_deferred()

    def _lost(self, ws: Any) -> None:
        with self._lock:
            self._connected = False
            self._set_synced(False)
            self._stats["disconnects"] += 1
            for table in self._expected:
                self._seq.pop(table, None)
        if self._tables.recording():
            self._record("connection", up=False, reason="connection lost")
        self._close(ws)
        self._emit("disconnected")

    @staticmethod
    def _close(ws: Any) -> None:
        """Send a close frame (waiting at most 1 s for the reply); errors are moot here."""
        try:
            ws.close(timeout=1)
        except Exception:
            log.debug("error while closing the WebSocket", exc_info=True)
