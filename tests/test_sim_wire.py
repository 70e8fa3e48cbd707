"""Wire shapes of the simulator (gte-api.md §2, §3) and the bot's client reading them.

* POST parameters in the query string (how GTE's own BitMEX-derived sample client sent
  order/create, order/cancel and order/cancel_batch), a form body or a JSON body, all
  signed over the same sorted params_string;
* order rows carry ``client_oid: null`` when the order had none, over REST and WebSocket.
"""
from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from market_maker.gte import parse
from market_maker.gte.rest import GteRest
from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket
from market_maker.models import BUY
from market_maker.sim import SimConfig, run_simulator
from market_maker.sim.errors import ApiError
from market_maker.sim.validate import request_params

from .sim_helpers import Rest, Ws, error_param, new_account

API = "/v1/api/pc/order/"
MARKET = {"asset": "BTC", "symbol": "BTC_USD"}


@pytest.fixture(scope="module")
def sim():
    with run_simulator(SimConfig(port=0, flow=False, rate_limits=False)) as s:
        yield s


@pytest.fixture
def acct(sim) -> Rest:
    return new_account(sim)


def create_params(price: str = "9000.0", **extra: str) -> dict[str, str]:
    return {**MARKET, "side": "1", "close_flag": "0", "price": price, "qty": "1", "order_type": "1", **extra}


def open_ids(acct: Rest) -> list[str]:
    return [r["order_id"] for r in acct.orders(filter='{"status":["1","2","4","16"]}')]


# --- where POST parameters come from -------------------------------------------------------------------------------

def test_bitmex_sample_style_query_string_posts(acct):
    """requests.post(url, params=..., headers=signed) with an empty body: create, cancel, cancel_batch."""
    url = acct.base + API
    ids = []
    for price in ("9000.0", "9000.5", "9001.0"):
        params = create_params(price, client_oid=f"qs-{price}")
        reply = requests.post(url + "create", params=params, headers=acct.headers(params), timeout=5).json()
        assert reply["code"] == 0, reply
        ids.append(reply["data"]["order_id"])
    params = {**MARKET, "id": ids[0]}
    reply = requests.post(url + "cancel", params=params, headers=acct.headers(params), timeout=5).json()
    assert reply["code"] == 0 and reply["data"]["order_id"] == ids[0]
    params = {**MARKET, "filter": json.dumps({"order_id": ids[1:]}, separators=(",", ":"))}
    reply = requests.post(url + "cancel_batch", params=params, headers=acct.headers(params), timeout=5).json()
    assert reply["code"] == 0, reply
    assert open_ids(acct) == []
    assert {r["client_oid"] for r in acct.orders()} == {"qs-9000.0", "qs-9000.5", "qs-9001.0"}


def test_form_body_posts(acct):
    url = acct.base + API
    params = create_params(client_oid="form-1")
    r = requests.post(url + "create", data=params, headers=acct.headers(params), timeout=5)
    assert r.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    order_id = r.json()["data"]["order_id"]
    params = {**MARKET, "filter": json.dumps({"order_id": [order_id]})}  # spaces and quotes, form-encoded
    assert requests.post(url + "cancel_batch", data=params, headers=acct.headers(params), timeout=5).json()["code"] == 0
    assert open_ids(acct) == []


def test_json_body_and_split_parameters(acct):
    params = create_params(client_oid="json-1")
    assert acct.post(API + "create", params)["code"] == 0
    # split between the query string and a JSON body: one set, signed as one
    params = create_params("9100.0", client_oid="split-1")
    query = {"asset": "BTC", "symbol": "BTC_USD"}
    body = {k: v for k, v in params.items() if k not in query}
    r = requests.post(acct.base + API + "create", params=query, data=json.dumps(body),
                      headers={**acct.headers(params), "Content-Type": "application/json"}, timeout=5)
    assert r.json()["code"] == 0, r.text
    assert sorted(r["client_oid"] for r in acct.orders()) == ["json-1", "split-1"]


@pytest.mark.parametrize("shape", ["query", "form", "json"])
def test_wrong_signature_is_refused_whatever_the_shape(acct, shape):
    params = create_params(client_oid=f"bad-{shape}")
    headers = acct.headers({**params, "qty": "2"})  # signed over other parameters
    url = acct.base + API + "create"
    if shape == "query":
        r = requests.post(url, params=params, headers=headers, timeout=5)
    elif shape == "form":
        r = requests.post(url, data=params, headers=headers, timeout=5)
    else:
        r = requests.post(url, json=params, headers=headers, timeout=5)
    assert error_param(r.json()) == (-10051, "api-signature")
    assert acct.orders() == []


def test_a_parameter_given_twice_is_refused_naming_it(acct):
    url = acct.base + API + "create"
    params = create_params()
    both = requests.post(url, params={"qty": "1"}, data=params, headers=acct.headers(params), timeout=5)
    assert error_param(both.json()) == (-10013, "qty")
    repeated = requests.post(url + "?qty=1&" + "&".join(f"{k}={v}" for k, v in params.items()),
                             headers=acct.headers(params), timeout=5)
    assert error_param(repeated.json()) == (-10013, "qty")
    dup_json = requests.post(url, data='{"qty":"1",' + json.dumps(params)[1:], headers=acct.headers(params),
                             timeout=5)
    assert error_param(dup_json.json()) == (-10013, "qty")
    assert acct.orders() == []


def test_request_params_unit():
    assert request_params([("a", "1")], "application/json", b'{"b":"2"}') == {"a": "1", "b": "2"}
    assert request_params([], "application/x-www-form-urlencoded", b"b=%7B%22x%22%3A1%7D&c=") == \
        {"b": '{"x":1}', "c": ""}
    assert request_params([("a", "1")], "application/x-www-form-urlencoded", b"") == {"a": "1"}
    for query, ctype, body, code, name in (
            ([("a", "1"), ("a", "1")], "", b"", -10013, "a"),
            ([("a", "1")], "application/x-www-form-urlencoded", b"a=1", -10013, "a"),
            ([], "application/x-www-form-urlencoded", b"a=1&&b", -10012, "body"),
            ([], "application/json", b"[1]", -10012, "body"),
            ([], "application/json", b'{"qty":1}', -10012, "qty")):
        with pytest.raises(ApiError) as info:
            request_params(query, ctype, body)
        assert (info.value.code, info.value.param) == (code, name)


# --- client_oid: null ----------------------------------------------------------------------------------------------

def test_rest_rows_carry_null_client_oid(acct):
    plain = acct.order(1, "9000.0", 1)["data"]["order_id"]
    named = acct.order(1, "9000.5", 1, client_oid="named-1")["data"]["order_id"]
    r = acct.http.get(acct.base + API + "query", params={"asset": "BTC"},
                      headers=acct.headers({"asset": "BTC"}), timeout=5)
    assert f'"order_id":"{plain}","client_oid":null' in r.text  # JSON null, not ""
    rows = {row["order_id"]: row for row in r.json()["data"]["rows"]}
    assert rows[plain]["client_oid"] is None and rows[named]["client_oid"] == "named-1"
    cancelled = acct.post(API + "cancel", {**MARKET, "id": plain})
    assert cancelled["code"] == 0
    [row] = [r for r in acct.orders() if r["order_id"] == plain]
    assert row["client_oid"] is None and row["status"] == "8"


def wait_for(ws: Ws, pred: Any) -> dict:
    return ws.table("order", pred=lambda m: any(pred(r) for r in m["data"]))


def test_websocket_rows_carry_null_client_oid(sim, acct):
    resting = acct.order(1, "8000.0", 1)["data"]["order_id"]
    ws = Ws(sim.ws_url)
    try:
        assert ws.auth(acct.key, acct.secret)["status"] == "0"
        assert ws.sub("order", symbol=None)["status"] == "0"
        partial = ws.table("order", "partial")
        assert [r["client_oid"] for r in partial["data"] if r["order_id"] == resting] == [None]
        new = acct.order(1, "8000.5", 1)["data"]["order_id"]
        insert = wait_for(ws, lambda r: r["order_id"] == new)
        assert [r["client_oid"] for r in insert["data"] if r["order_id"] == new] == [None]
        assert acct.post(API + "cancel", {**MARKET, "id": new})["code"] == 0  # row from the order's template
        cancel = wait_for(ws, lambda r: r["order_id"] == new and r["status"] == "8")
        assert [r["client_oid"] for r in cancel["data"] if r["order_id"] == new and r["status"] == "8"] == [None]
    finally:
        ws.close()


def test_client_reads_null_client_oid_as_empty_string(sim, acct):
    """The bot's REST and WebSocket clients: an order without client_oid is nobody's (Order.client_oid "")."""
    assert parse.parse_order({"order_id": "1", "client_oid": None, "side": "1", "price": "1", "qty": "1",
                              "status": "2"}).client_oid == ""
    plain = acct.order(1, "7000.0", 1)["data"]["order_id"]
    creds = Credentials(acct.key, acct.secret)
    rest = GteRest(sim.base_url, creds, order_id_prefix="w_", timeout=5)
    mine = rest.create_order(BUY, Decimal("7000.5"), 1)
    orders = {o.order_id: o for o in rest.open_orders()}
    assert orders[plain].client_oid == "" and not rest.is_own(orders[plain])
    assert orders[mine.order_id].client_oid.startswith("w_")
    with GteWebSocket(sim.ws_url, "BTC_USD", "BTC", creds) as ws:
        snap = ws.snapshot(depth=1)
        assert {o.order_id: o.client_oid for o in snap.orders}[plain] == ""
        later = acct.order(1, "7001.0", 1)["data"]["order_id"]
        assert acct.post(API + "cancel", {**MARKET, "id": plain})["code"] == 0
        deadline = time.monotonic() + 10
        while True:
            ids = {o.order_id: o.client_oid for o in ws.snapshot(depth=1).orders}
            if later in ids and plain not in ids:
                break
            assert time.monotonic() < deadline, ids
            ws.wait_for_event(0.2)
        assert ids[later] == "" and ws.stats.get("malformed", 0) == 0 and ws.synced
