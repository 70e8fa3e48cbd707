"""Signing (§2 Signing, §3 auth) and rate limits of the simulator, over real loopback sockets."""
from __future__ import annotations

import json
import time

import pytest
import requests

from market_maker.sim import SimConfig, run_simulator
from market_maker.sim.auth import params_string
from market_maker.sim.ratelimit import RateLimiter

from .sim_helpers import Rest, Ws, canonical, error_param, expires_ms, new_account, sign

ACCOUNT = "/v1/api/account/pc/query"
ORDERS = "/v1/api/pc/order/query"


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(port=0, flow=False, api_key="main-key", api_secret="main-secret")) as s:
        yield s


@pytest.fixture
def acct(sim) -> Rest:
    return new_account(sim)


def test_params_string_matches_documented_example():
    params = {"symbol": "BTC_USD", "count": "20", "filter": '{"status":["1"],"order_id":"123000001"}',
              "gt_order_id": "", "lt_order_id": None}
    expected = '{"count":"20","filter":"{"status":["1"],"order_id":"123000001"}","symbol":"BTC_USD"}'
    assert params_string(params) == expected == canonical(params)
    assert params_string({}) == "{}"
    assert params_string({"b": "1", "B": "2", "a": "3"}) == '{"B":"2","a":"3","b":"1"}'


def test_valid_signature_on_get_and_post(sim):
    rest = Rest(sim.base_url, "main-key", "main-secret")
    assert rest.get(ACCOUNT, {"asset": "BTC"})["code"] == 0
    assert rest.get(ACCOUNT)["code"] == 0  # no params: params_string "{}"
    assert rest.order(1, "9000.0", 1)["code"] == 0


def test_wrong_secret(acct):
    reply = acct.get(ACCOUNT, {"asset": "BTC"}, headers=acct.headers({"asset": "BTC"}, secret="nope"))
    assert error_param(reply) == (-10051, "api-signature")


def test_expired(acct):
    headers = acct.headers({"asset": "BTC"}, expires=expires_ms(-2000))
    assert error_param(acct.get(ACCOUNT, {"asset": "BTC"}, headers=headers)) == (-10052, "api-expires")


def test_unknown_key(acct):
    headers = acct.headers({"asset": "BTC"}, key="who-is-this")
    assert error_param(acct.get(ACCOUNT, {"asset": "BTC"}, headers=headers)) == (-10054, "api-key")


@pytest.mark.parametrize("missing", ["api-key", "api-expires", "api-signature"])
def test_missing_header(acct, missing):
    headers = acct.headers({"asset": "BTC"})
    del headers[missing]
    assert error_param(acct.get(ACCOUNT, {"asset": "BTC"}, headers=headers)) == (-10011, missing)


def test_tampered_params_get_and_post(acct):
    headers = acct.headers({"asset": "BTC"})
    assert acct.get(ACCOUNT, {"asset": "ETH"}, headers=headers)["code"] == -10051
    body = {"asset": "BTC", "symbol": "BTC_USD", "side": "1", "close_flag": "0", "price": "9000.0", "qty": "1"}
    headers = acct.headers(body)
    reply = acct.post("/v1/api/pc/order/create", {**body, "qty": "2"}, headers=headers)
    assert reply["code"] == -10051
    assert acct.orders() == []  # nothing was executed


def test_empty_params_are_dropped_from_the_signature(acct):
    body = {"asset": "BTC", "symbol": "BTC_USD", "side": "1", "close_flag": "0", "price": "9000.0",
            "qty": "1", "client_oid": ""}
    headers = acct.headers({k: v for k, v in body.items() if v})
    assert acct.post("/v1/api/pc/order/create", body, headers=headers)["code"] == 0


def test_filter_is_signed_raw(acct):
    order_id = acct.order(1, "9000.0", 1)["data"]["order_id"]
    flt = json.dumps({"status": ["2"], "order_id": order_id}, separators=(",", ":"))
    params = {"asset": "BTC", "filter": flt}
    raw_sig = Rest.headers(acct, params)
    reply = acct.get(ORDERS, params, headers=raw_sig)
    assert reply["code"] == 0 and [r["order_id"] for r in reply["data"]["rows"]] == [order_id]
    # a client that JSON-escapes the filter inside params_string gets -10051
    expires = expires_ms()
    escaped = '{"asset":"BTC","filter":' + json.dumps(flt) + "}"
    bad = {"api-key": acct.key, "api-expires": expires,
           "api-signature": sign(acct.secret, acct.key + expires + escaped)}
    assert acct.get(ORDERS, params, headers=bad)["code"] == -10051


def test_non_hex_and_garbage_headers_are_rejected(acct):
    headers = acct.headers({})
    headers["api-signature"] = "zz" * 32
    assert acct.get(ACCOUNT, headers=headers)["code"] == -10051
    headers = acct.headers({})
    headers["api-expires"] = "soon"
    assert error_param(acct.get(ACCOUNT, headers=headers)) == (-10012, "api-expires")


def test_rate_limit_per_key_per_endpoint(acct, sim):
    codes = [acct.get(ACCOUNT)["code"] for _ in range(11)]
    assert codes[:10] == [0] * 10 and codes[10] == -10053
    reply = acct.get(ACCOUNT)
    assert reply["code"] == -10053 and reply["error"]["patternName"] == "TOO_MANY_REQUESTS"
    assert acct.get("/v1/api/account/fund/query")["code"] == 0  # other endpoint: own bucket
    assert new_account(sim).get(ACCOUNT)["code"] == 0            # other key: own bucket
    time.sleep(1.05)
    assert acct.get(ACCOUNT)["code"] == 0


def test_cancel_batch_once_per_10s(acct):
    ids = [acct.order(1, "9000.0", 1)["data"]["order_id"] for _ in range(2)]
    body = {"asset": "BTC", "symbol": "BTC_USD", "filter": json.dumps({"order_id": ids[:1]})}
    assert acct.post("/v1/api/pc/order/cancel_batch", body)["code"] == 0
    body["filter"] = json.dumps({"order_id": ids[1:]})
    assert acct.post("/v1/api/pc/order/cancel_batch", body)["code"] == -10053
    open_ids = [r["order_id"] for r in acct.orders(filter='{"status":["1","2","4","16"]}')]
    assert open_ids == [ids[1]]


def test_public_endpoints_limited_per_ip(sim):
    rest = Rest(sim.base_url)
    codes = [rest.get("/v1/api/pc/candle/query", {"asset": "BTC", "symbol": "BTC_USD"}, signed=False)["code"]
             for _ in range(3)]
    assert codes == [0, 0, -10053]


def test_sliding_window_limiter_unit():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert [limiter.allow("k", 2, 1) for _ in range(3)] == [True, True, False]
    now[0] = 0.999
    assert not limiter.allow("k", 2, 1)
    now[0] = 1.0
    assert limiter.allow("k", 2, 1)
    assert limiter.allow("other", 2, 1)


def test_ws_signature_ok_and_bad(sim):
    ws = Ws(sim.ws_url)
    try:
        assert ws.auth("main-key", "wrong")["status"] == "-10051"
        assert ws.auth("nobody", "main-secret")["status"] == "-10054"
        assert ws.auth("main-key", "main-secret", expires=expires_ms(-5000))["status"] == "-10052"
        ack = ws.auth("main-key", "main-secret")
        assert ack["status"] == "0" and json.loads(ack["request"])["op"] == "auth_key_expires"
    finally:
        ws.close()


def test_secret_never_in_reprs(sim):
    assert "main-secret" not in repr(sim) and "main-secret" not in repr(sim.config)
    assert "main-secret" not in repr(sim.keys)
    assert "main-secret" not in json.dumps(requests.get(sim.base_url + "/sim/stats", timeout=5).json())


def test_non_ascii_digits_in_expires_are_a_type_error(sim):
    ws = Ws(sim.ws_url)
    try:  # "²³".isdigit() is True but int() refuses it: this used to be an internal error
        ack = ws.request("auth_key_expires", api_key="main-key", expires="²³", signature="0" * 64)
        assert ack["status"] == "-10012"
    finally:
        ws.close()
