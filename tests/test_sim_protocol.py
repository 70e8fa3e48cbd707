"""REST protocol of the simulator (§2): envelope, every endpoint, validation codes, isolation."""
from __future__ import annotations

import json

import pytest
import requests

from market_maker.sim import SimConfig, run_simulator

from .sim_helpers import Rest, error_param, new_account

V = "/v1/api"
ENVELOPE_KEYS = {"code", "data", "input", "traceId", "cost", "error", "msg", "time"}
BTC = {"asset": "BTC", "symbol": "BTC_USD"}


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(port=0, flow=False, rate_limits=False)) as s:
        yield s


@pytest.fixture
def acct(sim) -> Rest:
    return new_account(sim)


@pytest.fixture
def public(sim) -> Rest:
    return Rest(sim.base_url)


def order_body(**kw: str) -> dict:
    return {**BTC, "side": "1", "close_flag": "0", "price": "9000.0", "qty": "1", "order_type": "1", **kw}


def test_success_envelope(public):
    reply = public.get(f"{V}/pc/asset/query", signed=False)
    assert set(reply) == ENVELOPE_KEYS
    assert reply["code"] == 0 and reply["input"] is None and reply["traceId"] == "" and reply["cost"] == 0
    assert reply["error"] is None and reply["msg"] is None and isinstance(reply["time"], int)
    assert reply["data"] == {"rows": [{"asset": "BTC"}]}


def test_error_envelope(acct):
    reply = acct.post(f"{V}/pc/order/create", order_body(qty="abc"))
    assert set(reply) == ENVELOPE_KEYS
    assert reply["code"] == -10012 and reply["data"] is None and isinstance(reply["msg"], str)
    assert reply["error"] == {"patternName": "VALIDATE_PARAM_TYPE_ERROR", "data": {"paramName": "qty"}}


def test_unknown_path_and_wrong_method(sim):
    r = requests.get(sim.base_url + "/v1/api/pc/nothing", timeout=5)
    assert r.status_code == 404 and set(r.json()) == ENVELOPE_KEYS and r.json()["code"] < 0
    r = requests.get(sim.base_url + "/elsewhere", timeout=5)
    assert r.status_code == 404 and r.json()["code"] < 0
    r = requests.get(sim.base_url + f"{V}/pc/order/create", timeout=5)
    assert r.status_code == 405 and r.json()["code"] < 0


@pytest.mark.parametrize("body, expected", [
    (order_body(qty=""), (-10011, "qty")),
    ({k: v for k, v in order_body().items() if k != "symbol"}, (-10011, "symbol")),
    ({k: v for k, v in order_body().items() if k != "price"}, (-10011, "price")),
    ({k: v for k, v in order_body().items() if k != "side"}, (-10011, "side")),
    (order_body(qty="abc"), (-10012, "qty")),
    (order_body(qty="1.5"), (-10012, "qty")),
    (order_body(price="nine"), (-10012, "price")),
    (order_body(price="1e4"), (-10012, "price")),
    (order_body(side="buy"), (-10012, "side")),
    (order_body(price="9000.3"), (-10013, "price")),
    (order_body(price="9000.50"), (-10013, "price")),
    (order_body(price="0"), (-10013, "price")),
    (order_body(qty="0"), (-10013, "qty")),
    (order_body(qty="-3"), (-10013, "qty")),
    (order_body(side="2"), (-10013, "side")),
    (order_body(close_flag="5"), (-10013, "close_flag")),
    (order_body(order_type="2"), (-10013, "order_type")),
    (order_body(client_oid="x" * 41), (-10013, "client_oid")),
    (order_body(symbol="ETH_USD"), (-10013, "symbol")),
    (order_body(asset="XRP"), (-10013, "asset")),
])
def test_order_create_validation(acct, body, expected):
    assert error_param(acct.post(f"{V}/pc/order/create", body)) == expected
    assert acct.orders() == []


@pytest.mark.parametrize("value", [1, 9000.5, None, True, ["1"], {"a": "b"}])
def test_non_string_json_values_are_type_errors(acct, value):
    body = {**order_body(), "qty": value}
    if value is None:  # null counts as absent
        assert error_param(acct.post(f"{V}/pc/order/create", body)) == (-10011, "qty")
    else:
        assert error_param(acct.post(f"{V}/pc/order/create", body)) == (-10012, "qty")


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"text"', b"\xff\xfe",
                                 b"[" * 60_000])  # deep nesting, under the 64 KiB body cap
def test_body_must_be_a_json_object(acct, raw):
    r = acct.http.post(acct.base + f"{V}/pc/order/create", data=raw, headers=acct.headers({}), timeout=5)
    assert r.status_code == 200 and error_param(r.json()) == (-10012, "body")


def test_client_oid_of_40_chars_is_accepted(acct):
    oid = "c" * 40
    order_id = acct.order(1, "9000.0", 1, client_oid=oid)["data"]["order_id"]
    [row] = acct.orders()
    assert row["order_id"] == order_id and row["client_oid"] == oid


@pytest.mark.parametrize("path, params, expected", [
    ("/pc/order/book/query", {**BTC, "size": "51"}, (-10013, "size")),
    ("/pc/order/book/query", {**BTC, "size": "0"}, (-10013, "size")),
    ("/pc/order/book/query", {**BTC, "size": "ten"}, (-10012, "size")),
    ("/pc/order/book/query", {"asset": "BTC"}, (-10011, "symbol")),
    ("/pc/candle/query", {**BTC, "interval": "7"}, (-10013, "interval")),
    ("/pc/candle/query", {**BTC, "size": "1441"}, (-10013, "size")),
    ("/pc/candle/query", {**BTC, "start_time": "yesterday"}, (-10012, "start_time")),
    ("/pc/trade/query", {**BTC, "count": "101"}, (-10013, "count")),
    ("/pc/contract/query", {}, (-10011, "asset")),
    ("/pc/instrument/query", {"asset": "BTC", "symbol": "NOPE"}, (-10013, "symbol")),
])
def test_public_validation(public, path, params, expected):
    assert error_param(public.get(V + path, params, signed=False)) == expected


@pytest.mark.parametrize("params, expected", [
    ({"asset": "BTC", "count": "101"}, (-10013, "count")),
    ({"asset": "BTC", "count": "0"}, (-10013, "count")),
    ({"asset": "BTC", "count": "x"}, (-10012, "count")),
    ({"asset": "BTC", "filter": "{not json"}, (-10012, "filter")),
    ({"asset": "BTC", "filter": '{"status":["3"]}'}, (-10013, "filter")),
    ({"asset": "BTC", "filter": '{"status":"2"}'}, (-10012, "filter")),
    ({"asset": "BTC", "gt_order_id": "abc"}, (-10012, "gt_order_id")),
    ({}, (-10011, "asset")),
])
def test_order_query_validation(acct, params, expected):
    assert error_param(acct.get(f"{V}/pc/order/query", params)) == expected


@pytest.mark.parametrize("path, body, expected", [
    ("/pc/order/cancel", {**BTC}, (-10011, "id")),
    ("/pc/order/cancel_batch", {**BTC}, (-10011, "filter")),
    ("/pc/order/cancel_batch", {**BTC, "filter": json.dumps({"order_id": [str(i) for i in range(51)]})},
     (-10013, "filter")),
    ("/pc/order/cancel_batch", {**BTC, "filter": "[]"}, (-10012, "filter")),
    ("/pc/leverage/change", {**BTC, "mode": "3", "leverage": "10"}, (-10013, "mode")),
    ("/pc/leverage/change", {**BTC, "mode": "1", "leverage": "10.123"}, (-10013, "leverage")),
    ("/pc/leverage/change", {**BTC, "mode": "1"}, (-10011, "leverage")),
    ("/pc/margin/increase", {**BTC, "long_flag": "1", "increase_flag": "1", "margin": "-1"}, (-10013, "margin")),
    ("/pc/margin/auto", {**BTC, "long_flag": "1"}, (-10011, "open_flag")),
    ("/account/transfer", {"asset": "BTC", "from": "2", "to": "9", "volume": "1"}, (-10013, "to")),
    ("/account/transfer", {"asset": "BTC", "from": "2", "to": "1", "volume": "x"}, (-10012, "volume")),
])
def test_post_validation(acct, path, body, expected):
    assert error_param(acct.post(V + path, body)) == expected


def test_public_market_data(public, acct, sim):
    contracts = public.get(f"{V}/pc/contract/query", {"asset": "BTC"}, signed=False)["data"]["rows"]
    assert contracts[0]["symbol"] == "BTC_USD" and contracts[0]["price_precision"] == "1"
    [inst] = public.get(f"{V}/pc/instrument/query", {"asset": "BTC"}, signed=False)["data"]["rows"]
    for field in ("asset", "symbol", "price_precision", "last_price", "index_price", "mark_price", "volume_24h",
                  "volume_pos_hold", "change_rate_24h", "face_value", "quote_currency", "funding_rate",
                  "indicative_funding_rate", "funding_rate_time", "indicative_funding_rate_time",
                  "tick_size", "symbol_id"):
        assert isinstance(inst[field], str), field
    assert inst["tick_size"] == "0.5" and inst["symbol_id"] == "1"
    acct.order(1, "8123.5", 3)  # prices no other test of this module uses
    acct.order(0, "11234.0", 2)
    book = public.get(f"{V}/pc/order/book/query", {**BTC, "size": "50"}, signed=False)["data"]
    assert ["8123.5", "3"] in book["bids"] and ["11234.0", "2"] in book["asks"]
    assert len(public.get(f"{V}/pc/order/book/query", {**BTC, "size": "1"}, signed=False)["data"]["bids"]) == 1
    candles = public.get(f"{V}/pc/candle/query", {**BTC, "interval": "1", "size": "10"}, signed=False)["data"]
    assert isinstance(candles["rows"], list)
    assert isinstance(public.get(f"{V}/pc/trade/query", BTC, signed=False)["data"]["rows"], list)


def test_trade_and_crossing(sim):
    maker, taker, public = new_account(sim), new_account(sim), Rest(sim.base_url)
    assert maker.order(0, "10050.0", 5)["code"] == 0
    assert taker.order(1, "10050.0", 2)["code"] == 0
    rows = public.get(f"{V}/pc/trade/query", {**BTC, "count": "1"}, signed=False)["data"]["rows"]
    assert rows[0]["price"] == "10050.0" and rows[0]["qty"] == "2"
    assert {"trade_id", "price", "qty", "asset", "symbol", "trade_time"} <= set(rows[0])
    [row] = maker.orders()
    assert row["status"] == "16" and row["filled_qty"] == "2"
    [taker_row] = taker.orders(filter='{"status":["32"]}')
    assert taker_row["status"] == "32"


def test_order_lifecycle_query_and_cancel(acct):
    ids = [acct.order(1, f"{9000 + i}.0", 1, client_oid=f"oid-{i}")["data"]["order_id"] for i in range(4)]
    rows = acct.orders()
    assert [r["order_id"] for r in rows] == ids[::-1]  # newest first
    for field in ("order_id", "client_oid", "status", "side", "close_flag", "price", "qty", "filled_qty",
                  "avg_price", "fee", "leverage", "order_margin", "order_type", "ctime", "symbol"):
        assert field in rows[0], field
    assert [r["order_id"] for r in acct.orders(count="2")] == ids[:1:-1]
    assert [r["order_id"] for r in acct.orders(filter=json.dumps({"order_id": ids[1]}))] == [ids[1]]
    reply = acct.post(f"{V}/pc/order/cancel", {**BTC, "id": ids[0]})
    assert reply["code"] == 0 and reply["data"]["order_id"] == ids[0]
    assert acct.post(f"{V}/pc/order/cancel", {**BTC, "id": ids[0]})["code"] == -20002
    cancelled = acct.orders(filter='{"status":["8"]}')
    assert [r["order_id"] for r in cancelled] == [ids[0]]
    batch = acct.post(f"{V}/pc/order/cancel_batch", {**BTC, "filter": json.dumps({"order_id": ids[1:3]})})
    assert batch["code"] == 0 and isinstance(batch["data"]["rows"], list)
    assert [r["order_id"] for r in acct.orders(filter='{"status":["1","2","4","16"]}')] == [ids[3]]
    assert [r["order_id"] for r in acct.orders(gt_order_id=ids[2])] == [ids[3]]


def test_accounts_transfer_settings_leverage_margin(acct):
    [pc] = acct.get(f"{V}/account/pc/query", {"asset": "BTC"})["data"]["rows"]
    assert pc["asset"] == "BTC" and pc["total"] == "10"
    assert {"available", "order_margin", "pos_margin"} <= set(pc)
    assert acct.post(f"{V}/account/transfer", {"asset": "BTC", "from": "2", "to": "1", "volume": "1.5"})["code"] == 0
    [fund] = acct.get(f"{V}/account/fund/query", {"asset": "BTC"})["data"]["rows"]
    assert fund["total"] == "1.5" and {"available", "lock"} <= set(fund)
    [pc] = acct.get(f"{V}/account/pc/query")["data"]["rows"]
    assert pc["total"] == "8.5"
    settings = acct.get(f"{V}/pc/setting/query", BTC)["data"]
    assert {"cross_max_leverage", "bid_max_leverage", "ask_max_leverage", "bid_leverage", "ask_leverage",
            "cross_leverage", "margin_mode"} <= set(settings)
    assert acct.post(f"{V}/pc/leverage/change", {**BTC, "mode": "2", "long_flag": "1", "leverage": "20"})["code"] == 0
    assert acct.get(f"{V}/pc/setting/query", BTC)["data"]["bid_leverage"] == "20"
    # open a long position against another resting order, then move margin
    acct.order(1, "9000.0", 1)
    assert acct.post(f"{V}/pc/margin/auto", {**BTC, "long_flag": "1", "open_flag": "1"})["code"] == 0


def test_accounts_are_isolated(sim):
    alice, bob = new_account(sim), new_account(sim)
    order_id = alice.order(1, "9000.0", 1)["data"]["order_id"]
    assert bob.post(f"{V}/pc/order/cancel", {**BTC, "id": order_id})["code"] == -20002
    assert bob.orders() == []
    assert [r["status"] for r in alice.orders()] == ["2"]
    batch = {**BTC, "filter": json.dumps({"order_id": [order_id]})}
    assert bob.post(f"{V}/pc/order/cancel_batch", batch)["code"] in (0, -20002)
    assert [r["status"] for r in alice.orders()] == ["2"]


@pytest.mark.parametrize("body", [
    {**BTC, "side": "1", "close_flag": "0", "price": "9" * 30 + ".0", "qty": "1"},
    {**BTC, "side": "1", "close_flag": "0", "price": "9000.0", "qty": "9" * 28},
    {**BTC, "side": "1", "close_flag": "1", "price": "9000.0", "qty": "5"},
    {**BTC, "side": "\u0000", "close_flag": "0", "price": "9000.0", "qty": "1"},
    {**BTC, "side": "1", "close_flag": "0", "price": "9000.0", "qty": "1", "client_oid": "é\"'{}"},
])
def test_hostile_inputs_answer_errors_not_crashes(acct, sim, body):
    reply = acct.post(f"{V}/pc/order/create", body)
    assert set(reply) == ENVELOPE_KEYS
    assert reply["code"] < 0 or reply["data"]["order_id"]
    assert Rest(sim.base_url).get(f"{V}/pc/asset/query", signed=False)["code"] == 0


def test_stats_endpoint(sim):
    stats = requests.get(sim.base_url + "/sim/stats", timeout=5).json()
    assert {"faults", "accounts", "open_orders", "connections"} <= set(stats)
    assert stats == json.loads(json.dumps(sim.stats()))
