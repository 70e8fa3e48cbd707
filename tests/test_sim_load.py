"""The simulator under load: pushes reach only subscribers, caps refuse cleanly, 413 for big bodies."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from types import SimpleNamespace

import pytest
import requests
import websocket

from market_maker.sim import SimConfig, run_simulator
from market_maker.sim.fanout import net_book
from market_maker.sim.ws import WsSession

from .sim_helpers import Ws, new_account

QUIET = dict(port=0, flow=False, rate_limits=False)


def refused_status(url: str) -> tuple[int, dict]:
    """The HTTP status and JSON body of a refused WebSocket handshake (the server closes the connection)."""
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        websocket.create_connection(url, timeout=5)
    assert exc.value.resp_headers.get("connection", "").lower() == "close"
    return exc.value.status_code, json.loads(exc.value.resp_body)


def alive(conn: Ws) -> bool:
    conn.send({"op": "ping"})
    return conn.until(lambda m: m.get("op") == "pong") == {"op": "pong"}


def warnings_of(caplog, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage())


class Untouchable:
    """A stand-in connection that records every attribute read: pushes must never look at it."""

    def __init__(self) -> None:
        object.__setattr__(self, "reads", [])

    def __getattribute__(self, name: str):
        if name not in ("reads", "__class__", "__dict__"):
            object.__getattribute__(self, "reads").append(name)
        return object.__getattribute__(self, name)

    __hash__ = object.__hash__


def test_pushes_visit_only_subscribers():
    cfg = SimConfig(**QUIET, instrument_push_s="0.2", position_push_s="0.2")
    with run_simulator(cfg) as sim:
        acct = new_account(sim)
        listener, idle = Ws(sim.ws_url), Ws(sim.ws_url)
        assert listener.sub("order_book")["status"] == "0" and listener.sub("instrument")["status"] == "0"
        sends: dict[int, int] = {}

        def count_sends(_):
            for session in sim.hub.sessions:
                real = session.send_bytes
                sends[id(session)] = 0

                def counted(payload, real=real, key=id(session)):
                    sends[key] += 1
                    real(payload)
                session.send_bytes = counted
        sim.call(count_sends)
        ghost = Untouchable()
        sim.call(lambda _: sim.hub.add(ghost))
        try:
            acct.order(1, "9000.0", 3)
            listener.table("order_book", "insert", pred=lambda m: m["data"][0]["price"] == "9000.0")
            listener.table("instrument", "update")  # a periodic push went out as well
            assert alive(listener)
            # the idle socket got nothing before its pong (the pong is the first thing it reads)
            idle.send({"op": "ping"})
            assert idle.recv() == {"op": "pong"}
            idle_session = sim.call(lambda _: [s for s in sim.hub.sessions if s is not ghost and not s.subs])
            assert [sends[id(s)] for s in idle_session] == [1]  # the pong, nothing else
            assert ghost.reads == []
        finally:
            sim.call(lambda _: sim.hub.sessions.discard(ghost))
            listener.close()
            idle.close()


def test_book_deltas_of_one_batch_are_netted_and_rebuild_the_exchange_book():
    with run_simulator(SimConfig(**QUIET)) as sim:
        acct = new_account(sim)
        ws = Ws(sim.ws_url)
        assert ws.sub("order_book")["status"] == "0"
        book = {row["id"]: row for row in ws.table("order_book", "partial")["data"]}
        ids = [acct.order(1, "9000.0", 1)["data"]["order_id"]]
        ws.table("order_book", "insert")
        account = sim.call(lambda ex: ex.account_ids()[-1])

        def churn(ex):  # one call = one batch of events: levels come, go, come back
            ex.cancel_order(account, "BTC_USD", ids[0], 1)
            for price in ("9000.0", "9001.0", "9002.0", "9000.0"):
                ids.append(ex.place_order(account, "BTC_USD", 1, 0, Decimal(price), 2, None, 2)["order_id"])
            ex.cancel_order(account, "BTC_USD", ids[2], 3)
            return ex.book_levels("BTC_USD")
        expected = sim.call(churn)
        messages = []
        while len(messages) < 2:
            messages.append(ws.table("order_book"))
            if messages[-1]["action"] == "insert":
                break
        for msg in messages:
            for row in msg["data"]:
                if msg["action"] == "delete":
                    del book[row["id"]]
                else:
                    book[row["id"]] = row
        assert [m["action"] for m in messages] == ["update", "insert"]  # 9000 changed, 9002 new; 9001 never seen
        assert sorted(book) == sorted(r["id"] for r in expected)
        assert {i: r["size"] for i, r in book.items()} == {r["id"]: r["size"] for r in expected}
        ws.close()


def test_net_book_unit():
    def ev(action, level, size="1", side="buy"):
        row = {"id": level, "side": side} if action == "delete" else {"id": level, "size": size, "side": side}
        return SimpleNamespace(action=action, row=row)
    assert net_book([ev("insert", "a"), ev("delete", "a")]) == []
    assert net_book([ev("delete", "a"), ev("insert", "a", "5")]) == [("update", [{"id": "a", "size": "5", "side": "buy"}])]
    assert net_book([ev("update", "b", "2"), ev("delete", "b"), ev("insert", "c", "3"), ev("update", "c", "4")]) == \
        [("delete", [{"id": "b", "side": "buy"}]), ("insert", [{"id": "c", "size": "4", "side": "buy"}])]
    # a bid and an ask at one price share the level id: a bid that goes and an ask that comes there
    # within one batch is a delete and an insert, never an update that would leave the bid in place
    assert net_book([ev("delete", "p"), ev("insert", "p", "7", side="sell")]) == \
        [("delete", [{"id": "p", "side": "buy"}]), ("insert", [{"id": "p", "size": "7", "side": "sell"}])]


def test_oversized_body_gets_413_envelope_and_others_are_unaffected(caplog):
    caplog.set_level(logging.WARNING)
    with run_simulator(SimConfig(**QUIET, max_body_bytes=2048)) as sim:
        acct = new_account(sim)
        url = sim.base_url + "/v1/api/pc/order/create"
        for _ in range(2):
            r = requests.post(url, data=b"x" * 5000, headers=acct.headers({}), timeout=5)
            assert r.status_code == 413
            body = r.json()
            assert body["code"] == -10013 and body["error"] == {"patternName": "REQUEST_TOO_LARGE",
                                                               "data": {"paramName": "body"}}
            assert "2048" in body["msg"]
        chunked = requests.post(url, data=iter([b"y" * 1500] * 4), headers=acct.headers({}), timeout=5)
        assert chunked.status_code == 413 and chunked.json()["error"]["patternName"] == "REQUEST_TOO_LARGE"
        assert acct.order(1, "9000.0", 1)["code"] == 0  # the same client, a normal call: served
    assert warnings_of(caplog, "body of") == 1  # once per client, not per attempt
    assert not [r for r in caplog.records if r.exc_info]


def test_connections_per_address_are_capped(caplog):
    caplog.set_level(logging.WARNING)
    with run_simulator(SimConfig(**QUIET, ws_max_per_address=2)) as sim:
        first, second = Ws(sim.ws_url), Ws(sim.ws_url)
        for _ in range(3):
            status, body = refused_status(sim.ws_url)
            assert status == 429 and body["code"] == -10053
            assert body["error"]["patternName"] == "TOO_MANY_CONNECTIONS"
        assert alive(first) and alive(second)
        assert requests.get(sim.base_url + "/v1/api/pc/asset/query", timeout=5).json()["code"] == 0
        assert warnings_of(caplog, "connections open from it") == 1
        first.close()
        deadline = time.monotonic() + 10
        while sim.stats()["connections"] > 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        third = Ws(sim.ws_url)  # a slot freed: accepted again
        assert alive(third) and sim.stats()["refused"]["ws_per_address"] == 3
        third.close()
        second.close()


def test_connections_in_total_are_capped():
    with run_simulator(SimConfig(**QUIET, ws_max_connections=2)) as sim:
        conns = [Ws(sim.ws_url), Ws(sim.ws_url)]
        status, body = refused_status(sim.ws_url)
        assert status == 503 and body["error"]["patternName"] == "TOO_MANY_CONNECTIONS"
        assert all(alive(c) for c in conns)
        for c in conns:
            c.close()


def test_subscriptions_per_socket_are_capped(monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    monkeypatch.setattr("market_maker.sim.ws.time", SimpleNamespace(monotonic=lambda: 1000.0))  # one window
    with run_simulator(SimConfig(**QUIET, ws_max_subs_per_s=3)) as sim:
        greedy, other = Ws(sim.ws_url), Ws(sim.ws_url)
        statuses = [greedy.sub(table)["status"] for table in ("order_book", "trade", "instrument", "order_book",
                                                              "trade")]
        assert statuses == ["0", "0", "0", "-10053", "-10053"]
        greedy.send({"op": "sub", "args": {"instrument_type": "pc", "table": "trade", "settle_currency": "BTC",
                                           "symbol": "BTC_USD"}})
        ack = greedy.until(lambda m: "status" in m)
        assert ack["error"]["patternName"] == "TOO_MANY_SUBSCRIPTIONS"
        assert alive(greedy) and other.sub("order_book")["status"] == "0"  # another socket has its own budget
        assert warnings_of(caplog, "refusing subscriptions") == 1
        greedy.close()
        other.close()


def test_oversized_websocket_message_closes_only_that_socket(caplog):
    caplog.set_level(logging.WARNING)
    with run_simulator(SimConfig(**QUIET, ws_max_msg_bytes=1024)) as sim:
        big, other = Ws(sim.ws_url), Ws(sim.ws_url)
        big.send('{"op":"ping","pad":"' + "x" * 2000 + '"}')
        assert big.wait_closed(5)
        assert alive(other)
        assert warnings_of(caplog, "a message over 1024 bytes") == 1
        other.close()


def test_stalled_consumer_is_dropped_once_its_unsent_bytes_pass_the_cap():
    class Transport:
        def __init__(self) -> None:
            self.written, self.backlog, self.aborted = [], 0, False

        def get_write_buffer_size(self) -> int:
            return self.backlog

        def is_closing(self) -> bool:
            return self.aborted

        def write(self, data: bytes) -> None:
            self.written.append(data)

        def abort(self) -> None:
            self.aborted = True

    async def scenario() -> Transport:
        transport = Transport()
        session = WsSession(SimpleNamespace(closed=False), "127.0.0.1", transport, max_buffer=1000)
        session.send({"op": "pong"})
        session.send({"op": "pong"})
        await asyncio.sleep(0)
        assert transport.written == [b'\x81\x0d{"op":"pong"}' * 2]  # one write per loop turn
        transport.backlog = 990  # the peer stopped reading
        session.send({"op": "pong"})
        assert transport.aborted and session.closed
        await asyncio.gather(session.writer, return_exceptions=True)
        return transport
    assert len(asyncio.run(scenario()).written) == 1
