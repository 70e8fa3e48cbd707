"""Faults at start: waited out when they pass (said once), one line and exit 1 when the exchange refuses."""
import logging
import socket
import threading
import time
from decimal import Decimal

import pytest

import websocket

from market_maker import startup
from market_maker.cli import build_runner
from market_maker.gte import errors
from market_maker.runner import EXIT_ERROR, EXIT_OK
from market_maker.settings import load_settings
from market_maker.sim import SimConfig, run_simulator
from tests.waiting import wait_until as wait_for

WAITING = "Waiting for the exchange"


@pytest.fixture(autouse=True)
def info_log(caplog):
    caplog.set_level(logging.INFO, logger="market_maker")


def settings_for(base_url, ws_url, tmp_path, **extra):
    overrides = {"BASE_URL": base_url, "WS_URL": ws_url, "API_KEY": "start-key", "API_SECRET": "start-secret-123",
                 "ORDER_PAIRS": 2, "API_REST_INTERVAL": 0, "LOOP_INTERVAL": 1, **extra}
    return load_settings(overrides=overrides, environ={}, cwd=tmp_path)


def sim_config(**extra):
    return SimConfig(port=0, seed=4, api_key="start-key", api_secret="start-secret-123", **extra)


def quick_runner(settings, base_url, ws_url, duration=None, partial_timeout=None):
    """The real bot, with a shorter reconnect backoff (the policy is the same, only faster)."""
    runner = build_runner(settings, base_url, ws_url, settings.API_KEY, settings.API_SECRET, duration=duration)
    runner.exchange.ws.reconnect_backoff = (0.05, 0.4)
    if partial_timeout is not None:
        runner.exchange.ws.partial_timeout = partial_timeout
    return runner


def in_thread(runner):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", runner.run()), daemon=True)
    thread.start()
    return thread, result


def own_open(sim):
    return len(sim.call(lambda ex: ex.open_orders_of(sim.account_id)))


class FlakyFront:
    """A front end on loopback: answers HTTP 503 to its first ``refuse`` connections (REST and the
    WebSocket handshake alike, as a load balancer does while the exchange deploys), then relays to it."""

    def __init__(self, target_port, refuse):
        self.target_port, self.refuse, self.refused = target_port, refuse, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.refused < self.refuse:
                self.refused += 1
                threading.Thread(target=self._answer_503, args=(client,), daemon=True).start()
            else:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _answer_503(client):
        with client:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = client.recv(4096)
                if not chunk:
                    return
                data += chunk
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


def test_websocket_handshake_503_is_waited_out_and_said_once(tmp_path, caplog):
    with run_simulator(sim_config(flow=True)) as sim:
        front = FlakyFront(sim.port, refuse=4)
        try:
            base, ws = f"http://127.0.0.1:{front.port}", f"ws://127.0.0.1:{front.port}/ws"
            runner = quick_runner(settings_for(base, ws, tmp_path), base, ws)
            thread, result = in_thread(runner)
            try:
                assert wait_for(lambda: own_open(sim) == 4), caplog.text[-3000:]
            finally:
                runner.stop()
                thread.join(30)
        finally:
            front.close()
    assert result.get("code") == EXIT_OK
    assert front.refused == 4
    waits = [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]
    assert waits == [f"{WAITING} at {ws}: the WebSocket handshake was answered with HTTP 503; retrying"]
    assert "The exchange answered after" in caplog.text


def test_partials_that_never_come_are_waited_for_and_ctrl_c_ends_the_wait_cleanly(tmp_path, caplog):
    # the simulator acknowledges every subscription but drops every table message: no partial ever comes
    with run_simulator(sim_config(flow=False, fault_drop_rate=Decimal(1))) as sim:
        settings = settings_for(sim.base_url, sim.ws_url, tmp_path)
        runner = quick_runner(settings, sim.base_url, sim.ws_url, partial_timeout=0.5)
        thread, result = in_thread(runner)
        try:
            assert wait_for(lambda: WAITING in caplog.text), caplog.text[-3000:]
            assert wait_for(lambda: sim.fault_counters().get("drop", 0) >= 3)  # it keeps trying
        finally:
            runner.stop()  # what SIGINT / SIGTERM call
            thread.join(30)
        assert not thread.is_alive()
        assert result.get("code") == EXIT_OK
        assert sim.call(lambda ex: ex.query_orders(sim.account_id, None, None, None, None, None, 100)) == []
    waits = [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]
    assert len(waits) == 1 and "no partial within 0.5s" in waits[0], waits
    assert "Stopped before the start completed; no order was sent" in caplog.text


def test_a_burst_of_5xx_on_the_first_rest_calls_is_waited_out(tmp_path, caplog):
    with run_simulator(sim_config(flow=True, fault_5xx_rate=Decimal(1))) as sim:
        settings = settings_for(sim.base_url, sim.ws_url, tmp_path)
        runner = quick_runner(settings, sim.base_url, sim.ws_url)
        thread, result = in_thread(runner)
        try:
            assert wait_for(lambda: WAITING in caplog.text), caplog.text[-3000:]
            assert wait_for(lambda: sim.fault_counters().get("http_5xx", 0) >= 5)  # more than REST's own 4 tries
            sim.set_faults(http_5xx_rate=0)
            assert wait_for(lambda: own_open(sim) == 4), caplog.text[-3000:]
        finally:
            runner.stop()
            thread.join(30)
        assert result.get("code") == EXIT_OK and own_open(sim) == 0
    waits = [r.getMessage() for r in caplog.records if WAITING in r.getMessage()]
    assert len(waits) == 1 and waits[0].startswith(f"{WAITING} at {sim.base_url}: GTE server error"), waits


def test_the_duration_also_bounds_the_wait(tmp_path, caplog):
    with socket.create_server(("127.0.0.1", 0)) as reserved:
        port = reserved.getsockname()[1]
    base, ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"  # nothing listens there
    runner = quick_runner(settings_for(base, ws, tmp_path), base, ws, duration=1)
    started = time.monotonic()
    assert runner.run() == EXIT_OK
    assert time.monotonic() - started < 10
    assert f"{WAITING} at {ws}: connection refused; retrying" in caplog.text
    assert "Duration of 1s elapsed before the exchange could be used" in caplog.text


def test_a_setting_the_exchange_refuses_ends_the_start_with_one_line(tmp_path, caplog):
    with run_simulator(sim_config(flow=False)) as sim:
        # an order on the account that is not the bot's (no ORDERID_PREFIX): the bot never touches it, and
        # the exchange refuses a margin mode change while it rests
        sim.call(lambda ex: ex.place_order(sim.account_id, "BTC_USD", 1, 0, Decimal("5000"), 1, "manual-1",
                                           int(time.time() * 1000)))
        settings = settings_for(sim.base_url, sim.ws_url, tmp_path, MARGIN_MODE="isolated")
        runner = quick_runner(settings, sim.base_url, sim.ws_url)
        assert runner.run() == EXIT_ERROR
        assert len(sim.call(lambda ex: ex.open_orders_of(sim.account_id))) == 1
    refused = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(refused) == 1, caplog.text
    assert refused[0].getMessage().startswith("The exchange refused to start: ")
    assert "mode" in refused[0].getMessage()
    assert WAITING not in caplog.text


@pytest.mark.parametrize("exc, waited_out", [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (socket.gaierror(-2, "Name or service not known"), True),
    (websocket.WebSocketBadStatusException("503", 503), True),
    (websocket.WebSocketBadStatusException("429", 429), True),
    (websocket.WebSocketTimeoutException("timed out"), True),
    (errors.ServerError(None, "GET x answered HTTP 502", http_status=502), True),
    (errors.ConnectionLost(None, "GET x failed"), True),
    (errors.RateLimited(-10053, "too many requests"), True),
    (errors.GteError(None, "no partial within 10s; missing tables: order"), True),
    (websocket.WebSocketBadStatusException("404", 404), False),
    (websocket.WebSocketBadStatusException("403", 403), False),
    (errors.GteError(None, "GET x answered HTTP 404", http_status=404), False),
    (errors.AuthenticationError(-10051, "bad request signature"), False),
    (errors.BadParameter(-10013, "sub instrument refused by GTE"), False),
    (errors.InsufficientMargin(-20001, "insufficient margin"), False),
    (errors.GteError(-1, "internal error"), False),
])
def test_which_faults_at_start_are_waited_out(exc, waited_out):
    assert (startup.transient_reason(exc) is not None) == waited_out
    assert startup.is_exchange_fault(exc)
