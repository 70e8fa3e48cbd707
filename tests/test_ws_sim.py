"""End-to-end: GteWebSocket against the in-process GTE simulator (loopback only)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

sim_mod = pytest.importorskip("market_maker.sim")
from market_maker.gte.errors import AuthenticationError
from market_maker.gte.rest import GteRest
from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket
from tests.waiting import wait_until


@pytest.fixture
def sim() -> Iterator[Any]:
    with sim_mod.run_simulator(sim_mod.SimConfig(port=0)) as server:
        yield server


@pytest.fixture
def creds(sim: Any) -> Credentials:
    return Credentials(sim.api_key, sim.api_secret)


@pytest.fixture
def client(sim: Any, creds: Credentials) -> Iterator[GteWebSocket]:
    rest = GteRest(sim.base_url, creds)
    ws = GteWebSocket(sim.ws_url, "BTC_USD", "BTC", creds, rest=rest, partial_timeout=5,
                      reconnect_backoff=(0.05, 0.5))
    ws.start()
    yield ws
    ws.stop()
    rest.close()


def test_start_syncs_every_table(client: GteWebSocket) -> None:
    snap = client.snapshot(5)
    assert client.connected and client.synced and snap.synced
    assert snap.instrument is not None and snap.instrument.tick_size == Decimal("0.5")
    assert snap.book.bids and snap.book.asks and not snap.book.crossed
    assert snap.margin is not None and snap.margin.total > 0
    assert client.error_count == 0


def test_stop_leaves_no_thread(sim: Any, creds: Credentials) -> None:
    ws = GteWebSocket(sim.ws_url, "BTC_USD", "BTC", creds)
    ws.start()
    ws.stop()
    assert not ws.connected
    assert not any(t.name.startswith("gte-ws") for t in threading.enumerate())


def test_bad_secret_is_authentication_error(sim: Any) -> None:
    ws = GteWebSocket(sim.ws_url, "BTC_USD", "BTC", Credentials(sim.api_key, "wrong-secret"))
    with pytest.raises(AuthenticationError):
        ws.start()


def test_own_order_appears_and_disappears(sim: Any, creds: Credentials, client: GteWebSocket) -> None:
    rest = GteRest(sim.base_url, creds)
    try:
        best_bid = client.snapshot(1).book.best_bid
        assert best_bid is not None
        order = rest.create_order("buy", best_bid - 50, 3)
        assert wait_until(lambda: any(o.order_id == order.order_id for o in client.snapshot().orders))
        rest.cancel_order(order.order_id)
        assert wait_until(lambda: not any(o.order_id == order.order_id for o in client.snapshot().orders))
    finally:
        rest.close()


def test_reconnects_after_server_disconnect(sim: Any, client: GteWebSocket) -> None:
    sim.disconnect_websockets()
    assert wait_until(lambda: client.stats.get("reconnects", 0) >= 1 and client.synced)
    # the rebuilt book fills in; a taker of the market flow may sweep one side for a moment
    assert wait_until(lambda: client.snapshot(1).book.bids and client.snapshot(1).book.asks)


def test_dropped_messages_trigger_resync_then_recover(sim: Any, client: GteWebSocket) -> None:
    sim.set_faults(fault_drop_rate=0.2)
    assert wait_until(lambda: client.stats.get("seq_gap", 0) >= 1, timeout=20)
    sim.set_faults(fault_drop_rate=0.0)
    assert wait_until(lambda: client.synced, timeout=20)
    assert client.stats["resyncs"] >= 1
    snap = client.snapshot(5)
    assert snap.book.bids and snap.book.asks
