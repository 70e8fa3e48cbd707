"""Signing against vectors computed here from the documented formula (gte-api.md §2, §3)."""
import hashlib
import hmac
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker.gte.signing import (Credentials, params_string, rest_signature, wire_params,
                                      ws_signature)

SECRET = "s3cr3t-DO-NOT-LEAK-0123456789abcdef"
KEY = "key-abcdef"


def documented_hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_params_string_doc_example_filter_inserted_raw():
    params = {"symbol": "BTC_USD", "filter": '{"status":["1"],"order_id":"123000001"}', "count": "20"}
    assert params_string(params) == (
        '{"count":"20","filter":"{"status":["1"],"order_id":"123000001"}","symbol":"BTC_USD"}')


def test_params_string_empty_is_braces():
    assert params_string({}) == "{}"
    assert params_string({"a": None, "b": ""}) == "{}"


def test_params_string_drops_none_and_empty_and_sorts_ascii():
    params = {"b": "2", "a": "1", "Z": "upper", "_x": "u", "none": None, "empty": "", "a_b": "3"}
    # ASCII: uppercase < underscore < lowercase
    assert params_string(params) == '{"Z":"upper","_x":"u","a":"1","a_b":"3","b":"2"}'


def test_params_string_value_types():
    assert params_string({"price": Decimal("8889.50"), "qty": 7, "big": Decimal("1E+3")}) == \
        '{"big":"1000","price":"8889.50","qty":"7"}'
    assert wire_params({"zero": 0, "x": None}) == {"zero": "0"}
    with pytest.raises(TypeError):
        params_string({"price": 1.5})
    with pytest.raises(TypeError):
        params_string({"flag": True})


def test_rest_signature_matches_documented_formula():
    params = {"symbol": "BTC_USD", "filter": '{"status":["1"],"order_id":"123000001"}', "count": "20",
              "asset": "BTC", "lt_order_id": None}
    expires = "1580000005000"
    message = (KEY + expires + '{"asset":"BTC","count":"20","filter":"{"status":["1"],'
               '"order_id":"123000001"}","symbol":"BTC_USD"}')
    assert rest_signature(SECRET, KEY, expires, params) == documented_hmac(SECRET, message)
    assert rest_signature(SECRET, KEY, 1580000005000, params) == documented_hmac(SECRET, message)


def test_rest_signature_empty_params():
    assert rest_signature(SECRET, KEY, "1", {}) == documented_hmac(SECRET, KEY + "1{}")


def test_ws_signature():
    assert ws_signature(SECRET, "1580000005000") == documented_hmac(SECRET, "GET/ws1580000005000")


def test_signed_headers():
    creds = Credentials(KEY, SECRET)
    params = {"asset": "BTC", "symbol": "BTC_USD"}
    headers = creds.signed_headers(params, now_ms=1_000_000)
    assert headers == {
        "api-key": KEY,
        "api-expires": "1005000",
        "api-signature": documented_hmac(SECRET, KEY + "1005000" + '{"asset":"BTC","symbol":"BTC_USD"}'),
    }
    assert creds.signed_headers({}, expires_in_ms=3000, now_ms=10)["api-expires"] == "3010"
    ws = creds.ws_auth_args(now_ms=1000)
    assert ws == {"api_key": KEY, "expires": "6000", "signature": documented_hmac(SECRET, "GET/ws6000")}


def test_signed_headers_default_expiry_is_in_the_future():
    import time
    headers = Credentials(KEY, SECRET).signed_headers({})
    now = time.time() * 1000
    assert now + 3000 < int(headers["api-expires"]) <= now + 6000


def test_credentials_repr_masks_secret():
    creds = Credentials(KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert SECRET not in text
        assert "hidden" in text
        assert KEY not in text  # key only partially shown
    with pytest.raises(Exception):
        creds.api_secret = "other"  # frozen
    with pytest.raises(ValueError):
        Credentials(KEY, "")


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCXYZ_0123456789", min_size=1, max_size=8)
values = st.one_of(st.none(), st.just(""), st.text(alphabet="abcXYZ019._-", min_size=1, max_size=8))


@given(st.dictionaries(names, values, max_size=8))
def test_params_string_property(params):
    kept = sorted((k, v) for k, v in params.items() if v)
    expected = "{" + ",".join('"%s":"%s"' % kv for kv in kept) + "}"
    assert params_string(params) == expected
