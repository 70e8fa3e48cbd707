"""WebSocket protocol of the simulator (§3) with a raw websocket-client connection."""
from __future__ import annotations

import json
import time

import pytest
import websocket

from market_maker.sim import SimConfig, run_simulator

from .sim_helpers import Rest, Ws, new_account

BOOK_ID_BASE = 100_000_000


@pytest.fixture(scope="module")
def sim():
    cfg = SimConfig(port=0, flow=False, rate_limits=False, position_push_s="0.3", instrument_push_s="0.3",
                    ws_idle_timeout_s="1.5")
    with run_simulator(cfg) as s:
        yield s


@pytest.fixture
def ws(sim):
    conn = Ws(sim.ws_url)
    yield conn
    conn.close()


def authed(sim, rest: Rest) -> Ws:
    conn = Ws(sim.ws_url)
    assert conn.auth(rest.key, rest.secret)["status"] == "0"
    return conn


def test_ping_pong(ws):
    ws.send('{"op":"ping"}')
    assert ws.recv() == {"op": "pong"}


@pytest.mark.parametrize("request_, status", [
    ({"op": "sub", "args": {"instrument_type": "pc", "table": "order", "settle_currency": "BTC"}}, "-10055"),
    ({"op": "sub", "args": {"instrument_type": "pc", "table": "nope", "settle_currency": "BTC", "symbol": "BTC_USD"}},
     "-10013"),
    ({"op": "sub", "args": {"instrument_type": "pc", "table": "order_book", "settle_currency": "BTC"}}, "-10011"),
    ({"op": "sub", "args": {"instrument_type": "pc", "table": "order_book", "settle_currency": "BTC",
                            "symbol": "ETH_USD"}}, "-10013"),
    ({"op": "dance", "args": {}}, "-10013"),
    ({"args": {}}, "-10011"),
    ({"op": "auth_key_expires", "args": {"api_key": "x"}}, "-10011"),
    ([1, 2, 3], "-10012"),
])
def test_bad_requests_get_negative_ack_and_connection_stays(ws, request_, status):
    ws.send(request_)
    ack = ws.until(lambda m: "status" in m)
    assert ack["status"] == status and ack["request"] == json.dumps(request_)  # the text as sent
    ws.send({"op": "ping"})
    assert ws.until(lambda m: m.get("op") == "pong")


def test_malformed_json_keeps_connection_open(ws):
    ws.send("{this is not json")
    ack = ws.recv()
    assert ack["status"].startswith("-") and ack["request"] == "{this is not json"
    ws.send({"op": "ping"})
    assert ws.recv() == {"op": "pong"}


def test_ack_request_is_the_text_as_received(ws):
    """§3: "request" is the request as received, as a string (spacing and key order kept)."""
    text = '{ "args" : {"symbol":"BTC_USD", "table":"order_book","settle_currency":"BTC","instrument_type":"pc"},"op":"sub"}'
    ws.send(text)
    assert ws.recv() == {"status": "0", "request": text}
    bad = '{"op": "sub", "args": {"table": "nope"}}'
    ws.send(bad)
    ack = ws.until(lambda m: "status" in m)
    assert ack["status"] == "-10011" and ack["request"] == bad


def test_sub_ack_echoes_request_then_partial_with_seq_1(ws, sim):
    maker = new_account(sim)
    maker.order(1, "9500.0", 4)
    req = {"op": "sub", "args": {"instrument_type": "pc", "table": "order_book", "settle_currency": "BTC",
                                 "symbol": "BTC_USD"}}
    ws.send(req)
    assert ws.recv() == {"status": "0", "request": json.dumps(req)}
    partial = ws.recv()
    assert partial["table"] == "order_book" and partial["action"] == "partial" and partial["seq"] == 1
    assert partial["keys"] == ["id"] and isinstance(partial["time"], str)
    level = next(r for r in partial["data"] if r["price"] == "9500.0")
    assert int(level["id"]) == BOOK_ID_BASE * 1 - 19000 and level["side"] == "buy"
    assert int(level["size"]) >= 4
    maker.order(1, "9400.5", 2)
    maker.order(1, "9500.0", 1)
    m2 = ws.table("order_book")
    m3 = ws.table("order_book")
    assert (m2["seq"], m3["seq"]) == (2, 3)
    assert m2["action"] == "insert" and m2["data"][0]["price"] == "9400.5" and m2["data"][0]["size"] == "2"
    assert m3["action"] == "update" and m3["data"][0]["id"] == level["id"]
    assert int(m3["data"][0]["size"]) == int(level["size"]) + 1


def test_public_tables_partials(ws):
    assert ws.sub("instrument")["status"] == "0"
    inst = ws.table("instrument", "partial")
    assert inst["seq"] == 1 and inst["keys"] == ["symbol"] and inst["data"][0]["symbol"] == "BTC_USD"
    assert ws.table("instrument", "update", timeout=3)["seq"] == 2  # periodic update
    assert ws.sub("trade")["status"] == "0"
    trade = ws.table("trade", "partial")
    assert trade["seq"] == 1 and trade["keys"] == [] and isinstance(trade["data"], list)


def test_rest_order_pushes_order_execution_position_margin(sim):
    maker, taker = new_account(sim), new_account(sim)
    maker.order(0, "10100.0", 5)
    conn = authed(sim, taker)
    try:
        for table in ("order", "execution", "position", "margin"):
            assert conn.sub(table, symbol=None)["status"] == "0"
            part = conn.table(table, "partial")
            assert part["seq"] == 1
        taker.order(1, "10100.0", 3, client_oid="t-1")
        order = conn.table("order", pred=lambda m: m["action"] in ("insert", "update"))
        assert order["keys"] == ["order_id"] and order["seq"] >= 2
        assert order["data"][-1]["client_oid"] == "t-1"
        execution = conn.table("execution", "insert", pred=lambda m: m["data"][-1]["exec_type"] == "4")
        row = execution["data"][-1]
        assert execution["keys"] == ["exec_id"] and row["last_qty"] == "3" and row["maker_flag"] == "0"
        assert row["last_price"] == "10100.0" and "fee" in row
        position = conn.table("position", "update", pred=lambda m: any(r["qty"] == "3" for r in m["data"]))
        assert position["keys"] == ["symbol", "side"]
        long_row = next(r for r in position["data"] if r["qty"] == "3")
        assert long_row["side"] == "1" and long_row["entry_price"] == "10100"
        margin = conn.table("margin", "update")
        assert margin["keys"] == ["settle_currency"] and margin["data"][0]["settle_currency"] == "BTC"
    finally:
        conn.close()


def test_crossing_order_pushes_trade_and_book(sim, ws):
    maker, taker = new_account(sim), new_account(sim)
    maker.order(0, "10050.0", 5)  # below every other ask of this module
    ws.sub("trade")
    ws.table("trade", "partial")
    ws.sub("order_book")
    ws.table("order_book", "partial")
    taker.order(1, "10050.0", 2)
    trade = ws.table("trade", "insert")
    assert trade["data"][0]["side"] == "buy" and trade["data"][0]["price"] == "10050.0"
    assert trade["data"][0]["qty"] == "2" and trade["seq"] == 2
    book = ws.table("order_book", pred=lambda m: any(r["price"] == "10050.0" for r in m["data"]))
    assert book["action"] in ("update", "delete") and book["seq"] >= 2


def test_private_pushes_only_to_owner_and_unsub_stops(sim):
    alice, bob = new_account(sim), new_account(sim)
    a_conn, b_conn = authed(sim, alice), authed(sim, bob)
    try:
        for conn in (a_conn, b_conn):
            conn.sub("order", symbol=None)
            assert conn.table("order", "partial")["data"] == []
        alice.order(1, "9000.0", 1)
        assert a_conn.table("order", "insert")["seq"] == 2
        with pytest.raises((TimeoutError, websocket.WebSocketTimeoutException)):
            b_conn.table("order", timeout=0.5)
        assert a_conn.request("unsub", instrument_type="pc", table="order", settle_currency="BTC")["status"] == "0"
        alice.order(1, "9000.0", 1)
        with pytest.raises((TimeoutError, websocket.WebSocketTimeoutException)):
            a_conn.table("order", timeout=0.5)
    finally:
        a_conn.close()
        b_conn.close()


def test_partial_of_open_orders_and_resubscribe_resets_seq(sim):
    acct = new_account(sim)
    ids = [acct.order(1, "9000.0", 1)["data"]["order_id"] for _ in range(2)]
    conn = authed(sim, acct)
    try:
        conn.sub("order", symbol=None)
        part = conn.table("order", "partial")
        assert sorted(r["order_id"] for r in part["data"]) == sorted(ids)
        acct.order(1, "9000.0", 1)
        assert conn.table("order", "insert")["seq"] == 2
        conn.sub("order", symbol=None)
        assert conn.table("order", "partial")["seq"] == 1
    finally:
        conn.close()


def test_periodic_position_and_margin(sim):
    acct = new_account(sim)
    conn = authed(sim, acct)
    try:
        conn.sub("position", symbol=None)
        part = conn.table("position", "partial")
        assert sorted(r["side"] for r in part["data"]) == ["0", "1"]
        nxt = conn.table("position", "update", timeout=3)
        assert nxt["seq"] == 2 and sorted(r["side"] for r in nxt["data"]) == ["0", "1"]
        conn.sub("margin", symbol=None)
        conn.table("margin", "partial")
        assert conn.table("margin", "update", timeout=3)["seq"] == 2
    finally:
        conn.close()


def test_idle_connection_is_closed_but_pinging_one_is_not(sim):
    idle, busy = Ws(sim.ws_url), Ws(sim.ws_url)
    try:
        end = time.monotonic() + 2.2
        while time.monotonic() < end:
            busy.send({"op": "ping"})
            assert busy.until(lambda m: m.get("op") == "pong")
            time.sleep(0.3)
        assert idle.wait_closed(2)
        busy.send({"op": "ping"})
        assert busy.until(lambda m: m.get("op") == "pong")
    finally:
        idle.close()
        busy.close()


def test_push_is_prompt_after_rest_call():
    """With the periodic task slowed to a crawl, pushes must come from the REST call itself."""
    with run_simulator(SimConfig(port=0, flow=False, tick_interval_ms=60_000)) as sim:
        acct = new_account(sim)
        conn = authed(sim, acct)
        try:
            conn.sub("order", symbol=None)
            conn.table("order", "partial")
            start = time.monotonic()
            acct.order(1, "9000.0", 1)
            conn.table("order", "insert", timeout=2)
            assert time.monotonic() - start < 0.5
        finally:
            conn.close()


def test_flow_moves_the_public_book():
    with run_simulator(SimConfig(port=0, seed=3, speed="5")) as sim:
        conn = Ws(sim.ws_url)
        try:
            conn.sub("order_book")
            part = conn.table("order_book", "partial")
            assert part["data"], "flow should quote a book"
            nxt = conn.table("order_book", pred=lambda m: m["action"] != "partial", timeout=5)
            assert nxt["seq"] == 2
        finally:
            conn.close()
        assert json.loads(json.dumps(sim.stats()))["connections"] >= 0


@pytest.mark.parametrize("frame", ["[" * 60_000,  # deep nesting, under the 64 KiB message cap
                                   '{"op":"sub","args":"x"}', '{"op":7}', "null", '"ping"',
                                   '{"op":"sub","args":{"instrument_type":1,"table":"order_book"}}'])
def test_garbage_frames_get_error_acks(ws, frame):
    ws.send(frame)
    assert ws.until(lambda m: "status" in m)["status"].startswith("-")
    ws.conn.send_binary(b"\x00\xff")
    assert ws.until(lambda m: "status" in m)["status"].startswith("-")
    ws.send({"op": "ping"})
    assert ws.until(lambda m: m.get("op") == "pong")
