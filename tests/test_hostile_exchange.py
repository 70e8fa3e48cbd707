"""An exchange that sends what we did not expect: bad rows are exchange errors, and the exit still cancels."""
import json
import time
from decimal import Decimal

import pytest

from market_maker.gte import errors
from market_maker.gte.parse import MalformedRow
from market_maker.gte.rest import GteRest
from market_maker.gte.signing import Credentials
from market_maker.market_maker import ExchangeInterface, OrderManager
from market_maker.models import BUY
from market_maker.runner import Runner
from market_maker.settings import load_settings
from market_maker.sim import SimConfig, run_simulator
from tests.fakes import FakeRest, FakeWs
from tests.test_rest import BASE, QUERY, envelope, order_row


def make(tmp_path, text="ORDER_PAIRS = 6\nAPI_REST_INTERVAL = 0\n", rest=None):
    path = tmp_path / "settings.py"
    path.write_text(text)
    settings = load_settings(str(path), environ={})
    rest = rest or FakeRest(settings.ORDERID_PREFIX)
    ws = FakeWs(rest)
    exchange = ExchangeInterface(settings, "http://x", "ws://x", "key", "secret", rest=rest, ws=ws)
    return settings, rest, ws, exchange


def test_bad_data_is_an_exchange_error():
    assert issubclass(MalformedRow, errors.GteError) and issubclass(MalformedRow, ValueError)


def test_json_numbers_are_read_exactly_and_junk_rows_are_left_out(requests_mock):
    client = GteRest(BASE, Credentials("k", "s"))
    good = order_row("123000007", "mm_a", price=Decimal("8889.5"))  # a JSON number, not a string
    rows = [good, {"order_id": "123000008", "client_oid": "mm_b"}, "junk", order_row("123000009", "mm_c")]
    requests_mock.get(QUERY, text=json.dumps({**envelope(), "data": {"rows": rows}}, default=str)
                      .replace('"8889.5"', "8889.5", 1))
    orders = client.open_orders()
    assert [o.order_id for o in orders] == ["123000007", "123000009"]
    assert orders[0].price == Decimal("8889.5")
    assert client.stats.errors["MalformedRow"] == 1


def test_a_bad_answer_in_a_cycle_is_logged_and_the_bot_goes_on(tmp_path, caplog):
    settings, rest, ws, exchange = make(tmp_path, "ORDER_PAIRS = 2\nAPI_REST_INTERVAL = 0\nAPI_ERROR_INTERVAL = 0\n")
    runner = Runner(settings, exchange, OrderManager)
    runner.manager.start()
    real = rest.create_order
    rest.create_order = lambda *a, **k: (_ for _ in ()).throw(MalformedRow("missing field 'order_id'"))
    runner.cycle()  # not a traceback: an exchange error, logged, and the next cycle tries again
    assert "Exchange error" in caplog.text and "order_id" in caplog.text
    rest.create_order = real
    runner.cycle()
    assert len(rest.orders) == 4


def test_the_exit_cancels_our_orders_whatever_goes_wrong_in_it(tmp_path, caplog):
    settings, rest, ws, exchange = make(tmp_path)
    manager = OrderManager(settings, exchange)
    manager.start()
    manager.step()
    assert len(rest.orders) == 12
    real = rest.open_orders
    failures = [MalformedRow("junk row"), KeyError("data"), errors.ServerError(None, "HTTP 502")]

    def flaky():
        if failures:
            raise failures.pop(0)
        return real()
    rest.open_orders = flaky
    manager.exit_cancel_timeout, manager.exit_retry_wait = 10, 0.01
    manager.exit()
    assert rest.orders == {} and not failures
    assert "KeyError" in caplog.text  # a bug is named as one, not passed off as an exchange error


def test_the_whole_exit_is_bounded_however_slow_the_answers(tmp_path):
    with run_simulator(SimConfig(port=0, seed=5, flow=False)) as sim:
        settings = load_settings(overrides={"BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key,
                                            "API_SECRET": sim.api_secret, "TIMEOUT": 30},
                                 environ={}, cwd=tmp_path)
        exchange = ExchangeInterface(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
        for i in range(3):
            exchange.rest.create_order(BUY, Decimal(9000 + i), 1)
        manager = OrderManager(settings, exchange)
        manager.exit_cancel_timeout = 1.5
        sim.set_faults(latency_ms=(6000, 6000))  # every answer takes 6 s (TIMEOUT is 30 s)
        try:
            started = time.monotonic()
            manager.exit()
            took = time.monotonic() - started
        finally:
            sim.set_faults(latency_ms=(0, 0))
        exchange.rest.close()
    assert took < 1.5 + 3  # the deadline cuts the slow request short (before: 6 s a call, several calls)


@pytest.mark.parametrize("data", [None, {}, {"order_id": None}, {"order_id": 12.5}])
def test_a_create_answer_without_a_usable_order_id_is_resolved_by_lookup(requests_mock, data):
    client = GteRest(BASE, Credentials("k", "s"), sleep=lambda s: None)
    requests_mock.post(BASE + "/v1/api/pc/order/create", json=envelope(data))

    def lookup(request, context):
        oid = json.loads(requests_mock.request_history[0].body)["client_oid"]
        return envelope({"rows": [order_row("123000042", oid)]})
    requests_mock.get(QUERY, json=lookup)
    order = client.create_order(BUY, Decimal("8889.5"), 3)
    assert order.order_id == "123000042"


def test_orders_rest_through_a_quick_resync_but_are_cancelled_when_it_drags_on(tmp_path, caplog):
    import time as _time
    settings, rest, ws, exchange = make(tmp_path, "ORDER_PAIRS = 2\nAPI_REST_INTERVAL = 0\n")
    manager = OrderManager(settings, exchange)
    manager.start()
    manager.step()
    assert len(rest.orders) == 4
    ws.synced = False  # a table resyncs (a gap): a fraction of a second, as a rule
    manager.step()
    assert len(rest.orders) == 4 and "resync" in manager.paused
    ws.unsynced_since_ms = int(_time.time() * 1000) - 2500  # ... but this one drags on: its partial never comes
    manager.step()
    manager.step()
    assert rest.orders == {} and rest.count("open_orders") == 1 + 1  # start + one cancel-all, not one per cycle
    assert caplog.text.count("out of sync") == 1
    ws.synced = True
    manager.step()
    assert len(rest.orders) == 4 and manager.paused is None


# ------------------------------------------------------------------ a hostile exchange over loopback
class _Hostile:
    """A tiny HTTP exchange on loopback answering each path with a scripted list of (status, type, body)."""

    def __init__(self, script):
        import http.server
        import threading as _threading
        script = {path: list(answers) for path, answers in script.items()}
        self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(handler):
                path = handler.path.split("?", 1)[0]
                length = int(handler.headers.get("Content-Length") or 0)
                handler.rfile.read(length)
                self.seen.append(path)
                answers = script.get(path) or [(404, "text/html", "<html>no</html>")]
                status, ctype, body = answers.pop(0) if len(answers) > 1 else answers[0]
                data = body.encode()
                handler.send_response(status)
                handler.send_header("Content-Type", ctype)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
            do_GET = do_POST = _answer

            def log_message(handler, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = _threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _json(data):
    return (200, "application/json", json.dumps({**envelope(), "data": data}))


HTML_502 = (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>")
Q = "/v1/api/pc/order/query"
C = "/v1/api/pc/order/create"


def test_a_hostile_exchange_over_loopback_gives_exchange_errors_never_other_exceptions():
    row = dict(order_row("123000001", "mm_x"))
    float_row = json.dumps({**envelope(), "data": {"rows": [row]}}).replace('"8889.5"', "8889.5")
    fake = _Hostile({
        Q: [HTML_502, (200, "application/json", float_row),
            _json({"rows": ["junk", {"order_id": 5}, row]}), (200, "text/html", "<html>maintenance</html>")],
        C: [_json(None)],
    })
    try:
        client = GteRest(fake.url, Credentials("k", "s"), timeout=5, max_retries=0, sleep=lambda s: None)
        with pytest.raises(errors.ServerError):
            client.query_orders()  # an HTML 502 page
        assert client.query_orders()[0].price == Decimal("8889.5")  # a JSON number, read exactly
        assert [o.order_id for o in client.query_orders()] == ["123000001"]  # junk rows left out
        with pytest.raises(errors.GteError):
            client.query_orders()  # an HTML page with status 200
        with pytest.raises(errors.OrderInDoubt):  # data: null on a create, and the lookup fails
            client.create_order(BUY, Decimal("9000"), 1)
    finally:
        fake.close()
