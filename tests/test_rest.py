"""GteRest against requests-mock: signing on the wire, retries, lost answers, DRY_RUN, secrets."""
import hashlib
import hmac
import json
import logging
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from market_maker.gte import errors
from market_maker.gte.ratelimit import RateLimiter
from market_maker.gte.rest import SETTLE_GRACE_MS, GteRest
from market_maker.gte.signing import Credentials, params_string
from market_maker.models import BUY, SELL, Book, Instrument, Margin, Order

BASE = "http://gte.test"
KEY = "key-0123456789"
SECRET = "SECRET-must-never-leak-9f8e7d6c5b4a"
CREATE = BASE + "/v1/api/pc/order/create"
CANCEL = BASE + "/v1/api/pc/order/cancel"
BATCH = BASE + "/v1/api/pc/order/cancel_batch"
QUERY = BASE + "/v1/api/pc/order/query"
BOOK = BASE + "/v1/api/pc/order/book/query"
INSTRUMENT = BASE + "/v1/api/pc/instrument/query"


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0
        self.sleeps = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def envelope(data=None, code=0, error=None, msg=None):
    return {"code": code, "data": data, "input": None, "traceId": "", "cost": 0,
            "error": error, "msg": msg, "time": 1}


def order_row(order_id="123000001", client_oid="mmabc", status="2", **over):
    row = {"order_id": order_id, "client_oid": client_oid, "status": status, "side": "1",
           "close_flag": "0", "price": "8889.5", "qty": "3", "filled_qty": "0", "avg_price": "0",
           "fee": "0", "leverage": "10", "order_margin": "0.0001", "order_type": "1",
           "ctime": "1580000000000", "asset": "BTC", "symbol": "BTC_USD"}
    row.update(over)
    return row


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def client(clock):
    return make_client(clock)


def make_client(clock, **kw):
    kw.setdefault("credentials", Credentials(KEY, SECRET))
    return GteRest(BASE, kw.pop("credentials"), sleep=clock.sleep, clock=clock,
                   rate_limiter=RateLimiter(clock=clock, sleep=clock.sleep), **kw)


def received_params(request):
    """What the server receives: the query for GET, the JSON body for POST."""
    if request.method == "GET":
        return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query, keep_blank_values=True).items()}
    return request.json()


def server_signature(request):
    """The signature the server recomputes from what it received (documented formula, done here)."""
    params = received_params(request)
    items = sorted((k, v) for k, v in params.items() if v not in (None, ""))
    canonical = "{" + ",".join(f'"{k}":"{v}"' for k, v in items) + "}"
    message = request.headers["api-key"] + request.headers["api-expires"] + canonical
    return hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest(), canonical


def posts(m, url=CREATE):
    return [r for r in m.request_history if r.method == "POST" and r.url == url]


# --------------------------------------------------------------------------- signing on the wire

def test_signed_get_sends_query_and_valid_signature(client, requests_mock):
    requests_mock.get(QUERY, json=envelope({"rows": [order_row()]}))
    orders = client.query_orders(statuses=[1, 2], count=20, lt_order_id="999")
    assert orders == [Order("123000001", "mmabc", BUY, 0, Decimal("8889.5"), 3, 0, 2,
                            Decimal(0), Decimal(0), 1580000000000)]
    req = requests_mock.last_request
    assert received_params(req) == {"asset": "BTC", "symbol": "BTC_USD", "filter": '{"status":["1","2"]}',
                                    "count": "20", "lt_order_id": "999"}
    assert req.body is None
    expected, canonical = server_signature(req)
    assert req.headers["api-signature"] == expected
    assert req.headers["api-key"] == KEY
    assert canonical == params_string(received_params(req))
    assert canonical == ('{"asset":"BTC","count":"20","filter":"{"status":["1","2"]}",'
                         '"lt_order_id":"999","symbol":"BTC_USD"}')


def test_signed_post_body_strings_and_valid_signature(client, requests_mock):
    requests_mock.post(CREATE, json=envelope({"order_id": "123000009"}))
    order = client.create_order(SELL, Decimal("8889.50"), 3, close_flag=1)
    req = requests_mock.last_request
    body = req.json()
    assert all(isinstance(v, str) for v in body.values())
    assert body == {"asset": "BTC", "symbol": "BTC_USD", "client_oid": order.client_oid, "side": "0",
                    "close_flag": "1", "price": "8889.50", "qty": "3", "order_type": "1"}
    assert req.headers["Content-Type"] == "application/json"
    expected, canonical = server_signature(req)
    assert req.headers["api-signature"] == expected
    assert canonical == params_string(body)
    assert order == Order("123000009", order.client_oid, SELL, 1, Decimal("8889.50"), 3, 0, 1)
    assert order.client_oid.startswith("mm") and len(order.client_oid) <= 40
    assert req.timeout == 7


def test_price_plain_notation_and_no_floats(client, requests_mock):
    requests_mock.post(CREATE, json=envelope({"order_id": "1"}))
    client.create_order(BUY, Decimal("1E+4"), 1)
    assert requests_mock.last_request.json()["price"] == "10000"
    with pytest.raises(TypeError):
        client.create_order(BUY, 10000.5, 1)
    with pytest.raises(ValueError):
        client.create_order(BUY, Decimal("1"), 0)
    with pytest.raises(ValueError):
        client.create_order("1", Decimal("1"), 1)
    assert requests_mock.call_count == 1


def test_public_get_is_unsigned_and_book_parsed(client, requests_mock):
    requests_mock.get(BOOK, json=envelope({"bids": [["99.5", "3"], ["100", "2"]], "asks": [["101", "7"]]}))
    book = client.order_book(size=2)
    assert book == Book(bids=((Decimal("100"), 2), (Decimal("99.5"), 3)), asks=((Decimal("101"), 7),))
    req = requests_mock.last_request
    assert "api-signature" not in req.headers and "api-key" not in req.headers
    assert received_params(req) == {"asset": "BTC", "symbol": "BTC_USD", "size": "2"}


def test_cancel_batch_sends_one_signed_call_of_at_most_50_ids(client, clock, requests_mock):
    requests_mock.post(BATCH, json=envelope(None))
    ids = [str(1000 + i) for i in range(50)]
    client.cancel_batch(ids)
    sent = posts(requests_mock, BATCH)
    assert len(sent) == 1
    assert sent[0].json()["filter"] == json.dumps({"order_id": ids}, separators=(",", ":"))
    assert sent[0].headers["api-signature"] == server_signature(sent[0])[0]
    client.cancel_batch([])
    with pytest.raises(ValueError, match="at most 50"):
        client.cancel_batch(ids + ["1050"])  # a second call would sleep 10 s: the caller decides
    assert len(posts(requests_mock, BATCH)) == 1 and clock.sleeps == []


@pytest.mark.parametrize("failure", [{"json": envelope(None, code=-10053)},
                                     {"exc": requests.exceptions.ReadTimeout},
                                     {"status_code": 502, "text": "x"}])
def test_cancel_batch_never_resent(client, clock, requests_mock, failure):
    requests_mock.post(BATCH, [failure, {"json": envelope(None)}])
    with pytest.raises((errors.RateLimited, errors.RequestTimeout, errors.ServerError)):
        client.cancel_batch(["1", "2"])
    assert requests_mock.call_count == 1 and clock.sleeps == []
    assert client.rate_limiter.time_until_available("cancel_batch") > 9


def test_leverage_change_body(client, requests_mock):
    url = BASE + "/v1/api/pc/leverage/change"
    requests_mock.post(url, json=envelope(None))
    client.change_leverage(Decimal("10.5"), 1)
    req = requests_mock.last_request
    assert req.json() == {"asset": "BTC", "symbol": "BTC_USD", "mode": "1", "leverage": "10.5"}
    assert req.headers["api-signature"] == server_signature(req)[0]
    with pytest.raises(ValueError):
        client.change_leverage(Decimal("10.555"), 1)


# --------------------------------------------------------------------------- parsing of reads

def test_reads_return_domain_values(client, requests_mock):
    requests_mock.get(INSTRUMENT, json=envelope({"rows": [
        {"asset": "BTC", "symbol": "BTC_USD", "price_precision": "1", "tick_size": "0.5", "symbol_id": "1",
         "face_value": "1", "last_price": "8889.5", "mark_price": "8890", "index_price": "8891",
         "funding_rate": "0.0001"}]}))
    requests_mock.get(BASE + "/v1/api/account/pc/query", json=envelope({"rows": [
        {"asset": "BTC", "available": "1.5", "total": "2", "order_margin": "0.25", "pos_margin": "0.25"}]}))
    requests_mock.get(BASE + "/v1/api/account/fund/query", json=envelope({"rows": [
        {"asset": "BTC", "available": "1", "lock": "0.5", "total": "1.5"}]}))
    requests_mock.get(BASE + "/v1/api/pc/setting/query", json=envelope(
        {"cross_max_leverage": "100", "bid_leverage": "10", "ask_leverage": "10", "cross_leverage": "10.5",
         "bid_max_leverage": "100", "ask_max_leverage": "100", "margin_mode": "1"}))
    requests_mock.get(BASE + "/v1/api/pc/trade/query", json=envelope({"rows": [
        {"trade_id": "7", "price": "8889.5", "qty": "4", "asset": "BTC", "symbol": "BTC_USD",
         "trade_time": "1580000000000"}]}))
    requests_mock.get(BASE + "/v1/api/pc/contract/query", json=envelope({"rows": [
        {"symbol": "BTC_USD", "price_precision": "1"}]}))

    inst = client.instrument()
    assert isinstance(inst, Instrument)
    assert (inst.tick_size, inst.symbol_id, inst.last_price) == (Decimal("0.5"), 1, Decimal("8889.5"))
    margin = Margin("BTC", Decimal(2), Decimal("1.5"), Decimal("0.25"), Decimal("0.25"))
    assert client.pc_accounts() == [margin]
    assert client.fund_accounts() == {"BTC": {"available": Decimal(1), "lock": Decimal("0.5"),
                                              "total": Decimal("1.5")}}
    setting = client.setting()
    assert setting["cross_leverage"] == Decimal("10.5") and setting["margin_mode"] == 1
    trade = client.trades(count=1)[0]
    assert (trade.price, trade.qty, trade.time, trade.side) == (Decimal("8889.5"), 4, 1580000000000, "")
    assert client.contracts() == {"BTC_USD": 1}
    with pytest.raises(errors.GteError, match="ETH_USD"):
        client.instrument("ETH_USD")


def test_open_orders_pages_with_lt_order_id(client, requests_mock):
    first = [order_row(str(2000 - i), f"mm{i}") for i in range(100)]
    second = [order_row(str(1900 - i), f"mmx{i}") for i in range(30)]
    requests_mock.get(QUERY, [{"json": envelope({"rows": first})}, {"json": envelope({"rows": second})}])
    orders = client.open_orders()
    assert len(orders) == 130
    calls = [received_params(r) for r in requests_mock.request_history]
    assert len(calls) == 2
    assert all(c["filter"] == '{"status":["1","2","4","16"]}' and c["count"] == "100" for c in calls)
    assert "lt_order_id" not in calls[0]
    assert calls[1]["lt_order_id"] == "1901"


def test_find_order_by_client_oid_queries_all_statuses_bounded(client, requests_mock):
    def page(request, context):
        top = int(received_params(request).get("lt_order_id", "5001")) - 1
        return envelope({"rows": [order_row(str(top - i), f"other{i}") for i in range(100)]})

    requests_mock.get(QUERY, json=page)
    assert client.find_order_by_client_oid("mmmissing", max_pages=2) is None
    assert requests_mock.call_count == 2
    assert received_params(requests_mock.last_request)["filter"] == '{"status":["1","2","4","8","16","32"]}'
    requests_mock.get(QUERY, json=envelope({"rows": [order_row("9", "mmfound", status="32")]}))
    calls = requests_mock.call_count
    found = client.find_order_by_client_oid("mmfound")
    assert found.order_id == "9" and found.status == 32
    assert requests_mock.call_count == calls + 1


def test_paging_that_does_not_advance_is_an_error(client, requests_mock):
    requests_mock.get(QUERY, json=envelope({"rows": [order_row(str(5000 - i)) for i in range(100)]}))
    with pytest.raises(errors.ServerError, match="paging"):
        client.open_orders()
    assert requests_mock.call_count == 2


# --------------------------------------------------------------------------- errors and retries

@pytest.mark.parametrize("code,cls", [
    (-10011, errors.BadParameter), (-10012, errors.BadParameter), (-10013, errors.BadParameter),
    (-10051, errors.AuthenticationError), (-10054, errors.AuthenticationError),
    (-10055, errors.AuthenticationError), (-20001, errors.InsufficientMargin),
    (-20002, errors.OrderNotFound), (-20003, errors.PositionExceeded), (-12345, errors.GteError),
])
def test_error_codes_mapped_and_not_retried(client, clock, requests_mock, code, cls):
    requests_mock.post(CREATE, json=envelope(
        None, code=code, msg="nope", error={"patternName": "SOME_PATTERN", "data": {"paramName": "qty"}}))
    with pytest.raises(cls) as info:
        client.create_order(BUY, Decimal("100"), 1)
    assert type(info.value) is cls
    assert info.value.code == code and info.value.param == "qty" and info.value.pattern == "SOME_PATTERN"
    text = str(info.value)
    assert str(code) in text and "qty" in text and text.endswith(".")
    assert requests_mock.call_count == 1  # no retry, no lookup
    assert clock.sleeps == []


def test_error_from_code_mapping():
    assert isinstance(errors.error_from_code(-10052, None, None), errors.RequestExpired)
    assert isinstance(errors.error_from_code("-10053", None, None), errors.RateLimited)
    err = errors.error_from_code(-10012, None, {"patternName": "VALIDATE_PARAM_TYPE_ERROR",
                                                "data": {"paramName": "size"}})
    assert isinstance(err, errors.BadParameter)
    assert str(err) == ("GTE rejected a request parameter: parameter of wrong type "
                        "(code -10012, VALIDATE_PARAM_TYPE_ERROR, parameter 'size').")
    assert type(errors.error_from_code(None, "odd", None)) is errors.GteError


def test_get_5xx_retried_with_bounded_backoff(client, clock, requests_mock):
    requests_mock.get(BOOK, [{"status_code": 502, "text": "bad gateway"},
                             {"status_code": 503, "json": envelope(None, code=-1)},
                             {"json": envelope({"bids": [], "asks": []})}])
    assert client.order_book() == Book()
    assert requests_mock.call_count == 3
    assert clock.sleeps == [0.25, 0.5]
    assert client.stats.retries == 2 and client.stats.errors["ServerError"] == 2


def test_get_5xx_gives_up_after_max_retries(clock, requests_mock):
    client = make_client(clock, max_retries=2)
    requests_mock.get(BOOK, status_code=500, text="oops")
    with pytest.raises(errors.ServerError) as info:
        client.order_book()
    assert info.value.http_status == 500
    assert requests_mock.call_count == 3
    assert clock.sleeps == [0.25, 0.5]


def test_get_timeout_and_invalid_envelope_retried(client, clock, requests_mock):
    requests_mock.get(BOOK, [{"exc": requests.exceptions.ReadTimeout},
                             {"exc": requests.exceptions.ConnectionError},
                             {"text": "<html>not json</html>"},
                             {"json": envelope({"bids": [["1", "1"]], "asks": []})}])
    assert client.order_book().best_bid == Decimal(1)
    assert requests_mock.call_count == 4
    assert clock.sleeps == [0.25, 0.5, 1.0]


def test_auth_error_not_retried(client, requests_mock):
    requests_mock.get(QUERY, json=envelope(None, code=-10051, msg="bad signature"))
    with pytest.raises(errors.AuthenticationError):
        client.open_orders()
    assert requests_mock.call_count == 1


def test_rate_limited_answer_waits_and_retries(client, clock, requests_mock):
    requests_mock.post(CANCEL, [{"json": envelope(None, code=-10053)}, {"json": envelope({"order_id": "5"})}])
    assert client.cancel_order("5") == "5"
    assert requests_mock.call_count == 2 and clock.sleeps == [0.25]
    # create: a rate-limit refusal is resent directly (no lookup needed)
    requests_mock.post(CREATE, [{"json": envelope(None, code=-10053)}, {"json": envelope({"order_id": "6"})}])
    order = client.create_order(BUY, Decimal("100"), 1)
    sent = posts(requests_mock)
    assert order.order_id == "6" and len(sent) == 2
    assert sent[0].json()["client_oid"] == sent[1].json()["client_oid"]
    assert not [r for r in requests_mock.request_history if r.method == "GET"]


def test_request_expired_resent_with_fresh_signature(client, requests_mock):
    requests_mock.post(CREATE, [{"json": envelope(None, code=-10052)}, {"json": envelope({"order_id": "8"})}])
    assert client.create_order(BUY, Decimal("100"), 1).order_id == "8"
    assert len(posts(requests_mock)) == 2
    assert all(r.headers["api-signature"] == server_signature(r)[0] for r in requests_mock.request_history)


def test_cancel_transport_failure_retried_then_not_found(client, requests_mock):
    requests_mock.post(CANCEL, [{"exc": requests.exceptions.ConnectionError},
                                {"json": envelope(None, code=-20002)}])
    with pytest.raises(errors.OrderNotFound):
        client.cancel_order("77")
    assert requests_mock.call_count == 2
    assert all(r.json()["id"] == "77" for r in requests_mock.request_history)


def test_non_idempotent_write_not_resent_on_unknown_outcome(client, requests_mock):
    url = BASE + "/v1/api/pc/margin/increase"
    requests_mock.post(url, exc=requests.exceptions.ReadTimeout)
    with pytest.raises(errors.RequestTimeout):
        client.increase_margin(1, 1, Decimal("0.01"))
    assert requests_mock.call_count == 1


# --------------------------------------------------------------------------- lost order/create answers

@pytest.mark.parametrize("failure", [{"exc": requests.exceptions.ConnectTimeout},
                                     {"exc": requests.exceptions.ConnectionError},
                                     {"exc": requests.exceptions.ReadTimeout},
                                     {"status_code": 503, "text": "unavailable"}])
def test_lost_create_found_by_client_oid(client, requests_mock, failure):
    requests_mock.post(CREATE, [failure, {"json": envelope({"order_id": "SHOULD-NOT-BE-SENT"})}])

    def lookup(request, context):
        oid = posts(requests_mock)[-1].json()["client_oid"]
        return envelope({"rows": [order_row("1", "mmsomeone"), order_row("123000042", oid, status="16",
                                                                          filled_qty="1")]})

    requests_mock.get(QUERY, json=lookup)
    order = client.create_order(BUY, Decimal("8889.5"), 3)
    assert len(posts(requests_mock)) == 1  # exactly one create
    assert order.order_id == "123000042" and order.filled_qty == 1 and order.status == 16
    assert client.stats.lost_responses_resolved == 1


@pytest.mark.parametrize("failure", [{"exc": requests.exceptions.ReadTimeout},
                                     {"exc": requests.exceptions.ConnectionError},
                                     {"status_code": 502, "text": "bad gateway"},
                                     {"json": envelope(None)}])  # executed, answer without order_id
def test_lost_create_not_found_is_in_doubt_until_it_expires_never_resent(client, clock, requests_mock, failure):
    """A slow create may still execute after we gave up: it is in doubt until its api-expires
    (plus a grace for processing and clock skew) has passed; never sent twice meanwhile."""
    requests_mock.post(CREATE, [failure, {"json": envelope({"order_id": "SHOULD-NOT-BE-SENT"})}])
    requests_mock.get(QUERY, json=envelope({"rows": []}))
    with pytest.raises(errors.OrderInDoubt) as info:
        client.create_order(BUY, Decimal("8889.5"), 3, client_oid="mmslow1")
    sent = posts(requests_mock)
    assert len(sent) == 1
    expires = int(sent[0].headers["api-expires"])
    assert info.value.client_oid == "mmslow1" and info.value.outcome_unknown
    if "json" in failure:  # executed, yet the answer is unusable: the latest moment it could carry
        assert info.value.settles_at_ms >= expires + SETTLE_GRACE_MS
    else:
        assert info.value.settles_at_ms == expires + SETTLE_GRACE_MS
    assert [r.method for r in requests_mock.request_history] == ["POST", "GET"]
    assert clock.sleeps == []  # the caller keeps quoting: nothing waits in here


def test_lost_create_lookup_fails_is_in_doubt_without_resend(clock, requests_mock):
    client = make_client(clock, max_retries=1)
    requests_mock.post(CREATE, exc=requests.exceptions.ReadTimeout)
    requests_mock.get(QUERY, status_code=500)
    with pytest.raises(errors.OrderInDoubt) as info:
        client.create_order(BUY, Decimal("100"), 1, client_oid="mmunknown")
    assert info.value.outcome_unknown and info.value.client_oid == "mmunknown"
    assert len(posts(requests_mock)) == 1


# --------------------------------------------------------------------------- DRY_RUN and credentials

def test_dry_run_refuses_writes_before_sending(clock, requests_mock):
    client = make_client(clock, credentials=None, read_only=True)
    writes = [
        lambda: client.create_order(BUY, Decimal("100"), 1),
        lambda: client.cancel_order("1"),
        lambda: client.cancel_batch(["1", "2"]),
        lambda: client.change_leverage(Decimal("10"), 1),
        lambda: client.increase_margin(1, 1, Decimal("0.1")),
        lambda: client.transfer(1, 2, Decimal("0.1")),
    ]
    for write in writes:
        with pytest.raises(errors.DryRunRefused):
            write()
    assert requests_mock.call_count == 0
    with pytest.raises(errors.AuthenticationError, match="no API credentials loaded"):
        client.open_orders()
    assert requests_mock.call_count == 0
    requests_mock.get(BOOK, json=envelope({"bids": [], "asks": []}))
    assert client.order_book() == Book()  # public reads still work


# --------------------------------------------------------------------------- client_oid helpers

def test_client_oid_helpers(clock):
    client = make_client(clock, order_id_prefix="bot_A-1234567")
    oids = {client.new_client_oid() for _ in range(1000)}
    assert len(oids) == 1000
    assert all(o.startswith("bot_A-1234567") and len(o) <= 40 for o in oids)
    mine = Order("1", client.new_client_oid(), BUY, 0, Decimal(1), 1, 0, 2)
    theirs = Order("2", "web123", BUY, 0, Decimal(1), 1, 0, 2)
    assert client.is_own(mine) and not client.is_own(theirs)
    assert not client.is_own(Order("3", "", BUY, 0, Decimal(1), 1, 0, 2))
    for bad in ("", "x" * 14, "has space", "dot.dot"):
        with pytest.raises(ValueError):
            make_client(clock, order_id_prefix=bad)


# --------------------------------------------------------------------------- secrets

def test_secret_never_in_logs_reprs_or_errors(client, requests_mock, caplog):
    caplog.set_level(logging.DEBUG)
    requests_mock.post(CREATE, exc=requests.exceptions.ConnectTimeout)
    requests_mock.get(QUERY, json=envelope({"rows": []}))
    requests_mock.post(CANCEL, json=envelope(None, code=-10051, msg="bad signature"))
    with pytest.raises(errors.OrderInDoubt) as doubt:
        client.create_order(BUY, Decimal("100"), 1)
    with pytest.raises(errors.AuthenticationError) as info:
        client.cancel_order("1")
    # every signature sent (two requests with the same parameters in one millisecond would share
    # one: compare against the list of what was sent, not a count of distinct values)
    signatures = [r.headers["api-signature"] for r in requests_mock.request_history]
    assert len(signatures) == 3  # create, lookup, cancel
    texts = [caplog.text, repr(client), str(client), repr(client.credentials), str(info.value),
             repr(info.value), str(doubt.value), repr(doubt.value), repr(client.stats)]
    for text in texts:
        assert SECRET not in text
        for sig in signatures:
            assert sig not in text
    assert "pc/order/create" in caplog.text  # the DEBUG lines are there
    assert client.stats.requests["pc/order/create"] == 1
    assert client.stats.errors["AuthenticationError"] == 1


def test_post_copies_its_template_like_requests_copy(client):
    """The lean copy of a POST template has every attribute requests' own copy() sets, equal values."""
    from market_maker.gte.rest import _copy_template

    template = client._post_template("POST", "/v1/api/pc/order/create")
    lean, full = _copy_template(template), template.copy()
    assert vars(lean).keys() == vars(full).keys()
    for name, value in vars(full).items():
        if name == "_cookies":
            assert lean._cookies is template._cookies and len(value) == 0 == len(lean._cookies)
        else:
            assert getattr(lean, name) == value, name
    assert lean.headers is not template.headers  # per-request headers never leak into the template
    lean.headers["api-key"] = "x"
    assert "api-key" not in template.headers
