"""GteWebSocket's connection on a fake socket: authentication, subscriptions, reconnects, pings and
silence, and keeping the secret out of logs."""
from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from market_maker.gte.errors import AuthenticationError, GteError
from market_maker.gte.ws import GteWebSocket
from tests.waiting import wait_until
from tests.ws_client_helpers import CREDS, SECRET, FakeExchange, live_client, synced_client


@pytest.fixture
def ex() -> FakeExchange:
    return FakeExchange()


def test_repr_hides_secret() -> None:
    client = GteWebSocket("ws://x", "BTC_USD", "BTC", CREDS)
    assert SECRET not in repr(client) and SECRET not in str(client)


def test_start_authenticates_subscribes_and_syncs(ex: FakeExchange, caplog: Any) -> None:
    client = live_client(ex)
    with caplog.at_level(logging.DEBUG):
        client.start()
        try:
            assert client.connected and client.synced
            sent = [json.loads(s) for s in ex.last.sent]
            assert sent[0]["op"] == "auth_key_expires" and sent[0]["args"]["api_key"] == "abcdef123"
            subs = [(s["args"]["table"], s["args"].get("symbol")) for s in sent[1:]]
            assert subs[0] == ("instrument", "BTC_USD")
            assert set(subs) == {("instrument", "BTC_USD"), ("trade", "BTC_USD"), ("order_book", "BTC_USD"),
                                 ("order", None), ("execution", None), ("position", None), ("margin", None)}
            assert client.snapshot().book.best_bid == Decimal("9999.5")
        finally:
            client.stop()
    signature = json.loads(ex.last.sent[0])["args"]["signature"]
    assert SECRET not in caplog.text and signature not in caplog.text
    assert "authenticating as key ab…" in caplog.text
    assert not any(t.name.startswith("gte-ws") for t in threading.enumerate())


def test_public_only_client_sends_no_auth(ex: FakeExchange) -> None:
    client = live_client(ex, credentials=None)
    client.start()
    client.stop()
    assert [json.loads(s)["args"]["table"] for s in ex.last.sent] == ["instrument", "trade", "order_book"]


def test_auth_refused_raises_authentication_error(ex: FakeExchange) -> None:
    ex.auth_status = "-10051"
    client = live_client(ex)
    with pytest.raises(AuthenticationError):
        client.start()
    assert len(ex.sockets) == 1 and ex.last.closed and not client.connected


def test_string_acks_are_understood_and_never_logged(ex: FakeExchange, caplog: Any) -> None:
    """GTE echoes the request as a string; the auth one carries the signature."""
    ex.auth_status = "-10052"
    client = live_client(ex)
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        client.start()
    sent = ex.last.sent[0]
    signature = json.loads(sent)["args"]["signature"]
    assert client._acks[("auth_key_expires", None)] == -10052
    assert signature not in caplog.text and signature not in str(info.value) and SECRET not in caplog.text
    refused, _ = synced_client()
    with caplog.at_level(logging.DEBUG):
        refused.handle_raw(json.dumps({"status": "-10013", "request": json.dumps(
            {"op": "sub", "args": {"table": "order", "signature": "f" * 64}})}))
    assert refused._acks[("sub", "order")] == -10013
    assert "f" * 64 not in caplog.text and "GTE refused sub order with code -10013" in caplog.text


def test_refused_subscription_raises(ex: FakeExchange) -> None:
    ex.refuse = {"margin"}
    with pytest.raises(GteError):
        live_client(ex).start()


def test_missing_partial_times_out_naming_tables(ex: FakeExchange) -> None:
    ex.silent_tables = {"position", "trade"}
    client = live_client(ex, partial_timeout=0.3)
    with pytest.raises(GteError, match="position") as info:
        client.start()
    assert "trade" in str(info.value) and "order_book" not in str(info.value)


def test_server_disconnect_reconnects(ex: FakeExchange) -> None:
    events: list[str] = []
    client = live_client(ex, on_event=events.append)
    client.start()
    try:
        ex.last.inbox.put(None)  # connection dropped
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced)
        assert "disconnected" in events and client.stats["disconnects"] == 1
        assert client.connected
    finally:
        client.stop()


def test_reconnect_with_refused_auth_gives_up(ex: FakeExchange) -> None:
    client = live_client(ex)
    client.start()
    ex.auth_status = "-10054"
    ex.last.inbox.put(None)
    assert wait_until(lambda: client.fatal_error is not None)
    assert isinstance(client.fatal_error, AuthenticationError)
    time.sleep(0.1)
    assert len(ex.sockets) == 2
    client.stop()


def test_pings_and_silence_timeout(ex: FakeExchange) -> None:
    now = [1000.0]
    client = live_client(ex, ping_interval=20, silence_timeout=30, clock=lambda: now[0])
    client.start()
    try:
        now[0] += 21
        assert wait_until(lambda: '{"op":"ping"}' in ex.last.sent)
        assert wait_until(lambda: client.stats.get("pongs") == 1)
        ex.answer_pings = False
        now[0] += 31  # nothing received for more than silence_timeout
        assert wait_until(lambda: len(ex.sockets) == 2 and client.synced)
        assert client.stats["silence"] == 1
    finally:
        client.stop()


def test_auth_expires_is_now_plus_5s(ex: FakeExchange) -> None:
    client = live_client(ex, clock=lambda: 1_700_000_000.0)
    client.start()
    client.stop()
    assert json.loads(ex.sockets[0].sent[0])["args"]["expires"] == str(1_700_000_000_000 + 5000)


def test_pongs_keep_the_socket_alive_but_not_the_market_data(ex: FakeExchange) -> None:
    now = [1000.0]
    client = live_client(ex, ping_interval=20, silence_timeout=30, clock=lambda: now[0])
    client.start()
    try:
        assert client.snapshot().last_update_ms == 1_000_000
        for _ in range(3):  # a frozen book feed on a socket that still answers pings
            now[0] += 21
            pongs = client.stats.get("pongs", 0)
            assert wait_until(lambda: client.stats.get("pongs", 0) == pongs + 1)
        ex.last.push("instrument", "update", [{"symbol": "BTC_USD", "mark_price": "10000"}])
        assert wait_until(lambda: client.snapshot().instrument.mark_price == Decimal(10000))
        assert client.last_message_time == 1063.0 and client.connected and len(ex.sockets) == 1
        assert client.snapshot().last_update_ms == 1_000_000  # 63 s old: the manager's stale check fires
    finally:
        client.stop()
