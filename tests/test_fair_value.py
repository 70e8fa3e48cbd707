"""Fair value: mid and microprice, and the external book-ticker source against a fake venue on loopback."""
import asyncio
import json
import logging
import socket
import threading
from decimal import Decimal

import pytest
from aiohttp import web

from market_maker.models import Book
from market_maker.settings import SettingsError
from market_maker.strategies import external, fairvalue
from market_maker.strategies.glft import GLFT
from tests.test_strategy_managers import make
from tests.waiting import wait_until

BINANCE = {"u": 1, "s": "BTCUSDT", "b": "10000.10", "B": "1.5", "a": "10000.30", "A": "2"}


def gate(bid, ask, symbol="BTC_USDT"):
    return {"time": 1, "time_ms": 1000, "channel": "spot.book_ticker", "event": "update",
            "result": {"t": 1000, "u": 7, "s": symbol, "b": bid, "B": "0.1", "a": ask, "A": "0.2"}}


class FakeVenue:
    """A book-ticker server on loopback: each connection plays the next script.

    A script is a list of ("send", message), ("expect",) to receive one message, ("close",),
    or ("hold",) to keep the connection open until the test ends."""

    def __init__(self):
        self.scripts = []
        self.received = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.done = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    def _serve(self):
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/ws", self._handler)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.done = asyncio.Event()
        self.ready.set()
        self.loop.run_until_complete(self.done.wait())
        self.loop.run_until_complete(runner.cleanup())

    async def _handler(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        script = self.scripts.pop(0) if self.scripts else [("hold",)]
        for step in script:
            if step[0] == "send":
                text = step[1] if isinstance(step[1], str) else json.dumps(step[1])
                await ws.send_str(text)
            elif step[0] == "expect":
                msg = await ws.receive()
                self.received.append(msg.data)
            elif step[0] == "close":
                await ws.close()
                return ws
            elif step[0] == "hold":
                await self.done.wait()
        await ws.close()
        return ws

    def close(self):
        self.loop.call_soon_threadsafe(self.done.set)
        self.thread.join(10)


@pytest.fixture
def venue():
    server = FakeVenue()
    yield server
    server.close()


def source_for(venue_name, symbol, url, **kw):
    return external.BookTickerSource(venue_name, symbol, url, backoff=(0.05, 0.2), **kw)


def test_mid_and_microprice():
    book = Book(bids=((Decimal("100"), 3),), asks=((Decimal("102"), 1),))
    assert fairvalue.mid(book) == Decimal("101")
    assert fairvalue.microprice(book) == Decimal("101.5")  # 3 bid vs 1 ask: leans to the ask
    assert fairvalue.microprice(Book(bids=book.bids)) is None and fairvalue.mid(Book(asks=book.asks)) is None


def test_check_external_says_why():
    assert "no price" in fairvalue.check_external(None, None, Decimal(100), 5, Decimal("0.01"))
    assert "old" in fairvalue.check_external(Decimal(100), 6.0, Decimal(100), 5, Decimal("0.01"))
    assert "from the GTE mid" in fairvalue.check_external(Decimal(102), 1.0, Decimal(100), 5, Decimal("0.01"))
    assert fairvalue.check_external(Decimal("100.5"), 1.0, Decimal(100), 5, Decimal("0.01")) is None


def test_parsers_both_formats_and_junk():
    assert external.parse_binance(BINANCE, "BTCUSDT") == Decimal("10000.20")
    assert external.parse_binance({"stream": "btcusdt@bookTicker", "data": BINANCE}, "BTCUSDT") == Decimal("10000.20")
    assert external.parse_gateio(gate("99", "101"), "BTC_USDT") == Decimal(100)
    assert external.parse_gateio({"event": "subscribe", "result": {"status": "success"}}, "BTC_USDT") is None
    for junk in ({**BINANCE, "s": "ETHUSDT"}, {**BINANCE, "b": "x"}, {**BINANCE, "b": "10001"}, [1], {"s": "BTCUSDT"}):
        with pytest.raises(external.Malformed):
            external.parse_binance(junk, "BTCUSDT")
    with pytest.raises(external.Malformed):
        external.parse_gateio({**gate("1", "2"), "channel": "spot.trades"}, "BTC_USDT")


def test_binance_source_reads_skips_junk_and_reconnects(venue):
    venue.scripts = [[("send", "not json"), ("send", BINANCE), ("close",)],
                     [("send", {**BINANCE, "b": "10010.00", "a": "10010.00"}), ("hold",)]]
    source = source_for("binance", "BTCUSDT", venue.url)
    source.start()
    try:
        assert source.wait_first(10)
        assert wait_until(lambda: source.latest()[0] == Decimal("10010.00"))
        assert source.malformed == 1 and source.connects == 2
    finally:
        source.stop()


def test_gateio_source_subscribes(venue):
    venue.scripts = [[("expect",), ("send", {"event": "subscribe", "channel": "spot.book_ticker",
                                              "result": {"status": "success"}}),
                      ("send", gate("20000", "20002")), ("hold",)]]
    source = source_for("gateio", "BTC_USDT", venue.url)
    source.start()
    try:
        assert source.wait_first(10)
        assert source.latest()[0] == Decimal(20001)
        request = json.loads(venue.received[0])
        assert request["channel"] == "spot.book_ticker" and request["payload"] == ["BTC_USDT"]
        assert request["event"] == "subscribe"
    finally:
        source.stop()


def strategy(tmp_path, url, extra=""):
    return make(tmp_path, GLFT, f'FAIR_VALUE = "binance:BTCUSDT"\nFAIR_VALUE_URL = "{url}"\n'
                                f"FAIR_VALUE_CONNECT_TIMEOUT_S = 10\nFAIR_VALUE_STALE_S = 5\n{extra}")


def test_strategy_quotes_around_the_external_price_and_pulls_when_stale(tmp_path, venue, caplog):
    venue.scripts = [[("send", {**BINANCE, "b": "10003.00", "a": "10003.00"}), ("hold",)]]
    settings, rest, ws, clock, manager = strategy(tmp_path, venue.url)
    try:
        manager.step()
        assert manager.fair == Decimal("10003.00") and rest.orders
        caplog.set_level(logging.WARNING, logger="market_maker.manager")
        clock.t += 6  # no ticker for 6 s of the strategy's clock
        manager.step()
        manager.step()
        assert not rest.orders and manager.quote is None
        pulls = [r for r in caplog.records if r.getMessage().startswith("Pulling quotes")]
        assert len(pulls) == 1 and "old" in pulls[0].getMessage()
    finally:
        manager.exit()


def test_strategy_pulls_when_the_external_price_is_too_far(tmp_path, venue):
    venue.scripts = [[("send", {**BINANCE, "b": "10500.00", "a": "10500.00"}), ("hold",)]]
    settings, rest, ws, clock, manager = strategy(tmp_path, venue.url)
    try:
        manager.step()
        assert not rest.orders and "from the GTE mid" in manager.pulled
    finally:
        manager.exit()


def test_a_source_that_never_connects_stops_the_start_naming_the_setting(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SettingsError, match="FAIR_VALUE"):
        make(tmp_path, GLFT, f'FAIR_VALUE = "gateio:BTC_USDT"\nFAIR_VALUE_URL = "ws://127.0.0.1:{port}/ws"\n'
                             "FAIR_VALUE_CONNECT_TIMEOUT_S = 0.5\n")


def test_the_fair_value_leaves_our_own_orders_out():
    from market_maker.models import BUY, SELL, Order
    book = Book(bids=((Decimal("101"), 5), (Decimal("100"), 7)), asks=((Decimal("103"), 4), (Decimal("104"), 9)))
    ours = [Order("1", "mm_1", BUY, 0, Decimal("101"), 5, 0, 2),  # alone at the best bid
            Order("2", "mm_2", SELL, 0, Decimal("104"), 6, 2, 2),  # 4 left of 9
            Order("3", "mm_3", SELL, 0, Decimal("103"), 4, 0, 8)]  # already final: not in the book
    others = fairvalue.others_book(book, ours)
    assert others.bids == ((Decimal("100"), 7),)
    assert others.asks == ((Decimal("103"), 4), (Decimal("104"), 5))
    assert fairvalue.mid(others) == Decimal("101.5")
    assert fairvalue.others_book(book, []) is book
