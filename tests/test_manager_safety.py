"""OrderManager and Runner safety: the kill switch on drawdown, pauses on stale data, a dead socket or a
crossed book, the cancel-all on exit, and refusals at start."""
import logging
import threading
from decimal import Decimal

import pytest

from market_maker.market_maker import KillSwitch, OrderManager
from market_maker.runner import EXIT_KILL_SWITCH, Runner
from tests.manager_helpers import make, open_orders_refused, started


def test_pause_and_cancel_when_data_is_stale(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\nSTALE_DATA_SECONDS = 5\n")
    manager.step()
    assert rest.orders
    ws.last_update_ms = 1  # ancient
    manager.step()
    assert not rest.orders and manager.paused
    ws.last_update_ms = None
    manager.step()
    assert rest.orders and manager.paused is None


def test_socket_down_cancels_all_via_rest(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    ws.connected = False
    manager.step()
    assert not rest.orders
    assert "WebSocket down" in manager.paused


def test_kill_switch_on_drawdown(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\nMAX_DRAWDOWN = 0.5\n")
    ws.set_position("long", 100_000, "10000")  # 10 BTC of contracts
    manager = OrderManager(settings, exchange)
    manager.start()
    manager.step()
    assert manager.equity() == ws.margin.total == Decimal(10)
    ws.set_mark("9600")  # unrealised 100000 x (1/10000 - 1/9600) = -0.41666.. BTC
    manager.step()  # within the limit: equity is the exchange's total, the loss counted once
    assert manager.equity() == ws.margin.total
    assert Decimal("-0.42") < manager.equity() - 10 < Decimal("-0.41")
    ws.set_mark("9500")  # -0.526 BTC
    with pytest.raises(KillSwitch, match="MAX_DRAWDOWN"):
        manager.step()


def test_kill_switch_counts_a_profitable_position_once(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\nMAX_DRAWDOWN = 0.5\n")
    ws.set_position("short", 100_000, "10000")
    ws.set_mark("9000")  # the short is 1.11 BTC up when the bot starts
    manager = OrderManager(settings, exchange)
    manager.start()
    ws.set_mark("9300")  # gives back 0.358 BTC of it: within the limit
    manager.step()
    assert manager.equity() == ws.margin.total
    ws.set_mark("9500")  # gives back 0.585 BTC of it: a drawdown of 0.585 from the start
    with pytest.raises(KillSwitch, match="MAX_DRAWDOWN"):
        manager.step()


def test_runner_exits_3_on_kill_switch_and_cancels_everything(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\nMAX_DRAWDOWN = 0.5\nLOOP_INTERVAL = 0.05\n"
                                                  "REQUOTE_DEBOUNCE_MS = 0\n")
    runner = Runner(settings, exchange, OrderManager, duration=5)
    ws.set_position("long", 100_000, "10000")

    def crash_later():
        ws.set_mark("9000")  # -1.1 BTC
        exchange.wake()
    threading.Timer(0.3, crash_later).start()
    assert runner.run() == EXIT_KILL_SWITCH
    assert not rest.orders


def test_exit_keeps_cancelling_through_a_rate_limit_burst(tmp_path):
    # soak finding: a -10053 burst (seconds long) outlasted the REST retries and exit left 20 orders open
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    assert len(rest.orders) == 2 * settings.ORDER_PAIRS
    refusals = open_orders_refused(rest, 3)
    manager.exit_retry_wait = 0
    manager.exit()
    assert rest.orders == {} and refusals == []


def test_exit_gives_up_after_its_timeout(tmp_path, caplog):
    import time
    from market_maker.gte.errors import ServerError
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    tries = []

    def failing():
        tries.append(time.monotonic())
        raise ServerError(None, "HTTP 503")
    rest.open_orders = failing
    manager.exit_cancel_timeout, manager.exit_retry_wait = 0.3, 0.01
    exit_started = time.monotonic()
    manager.exit()  # retries until its timeout, then returns (logged) instead of looping forever
    assert len(tries) >= 2  # it did retry
    assert tries[-1] - exit_started >= 0.3  # ... until the timeout had passed
    assert tries[-2] - exit_started < 0.3  # and not one attempt past it
    assert "Could not cancel all orders on exit" in caplog.text


def test_cancel_all_owed_while_paused_is_retried_until_it_goes_through(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    assert rest.orders
    open_orders_refused(rest, 2)
    ws.connected = False
    manager.step()  # first try fails
    manager.step()  # second try fails
    assert rest.orders
    manager.step()  # third goes through
    assert not rest.orders


def test_authentication_refused_on_reconnect_stops_the_bot(tmp_path):
    from market_maker.gte.errors import AuthenticationError
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    ws.connected = False
    ws.fatal_error = AuthenticationError(-10054, "API key does not exist")
    with pytest.raises(AuthenticationError):
        manager.step()


def test_crossed_book_cancels_our_orders_once_and_logs_once(tmp_path, caplog):
    # hostile-input finding: a crossed book paused quoting but left our orders resting through the sweep,
    # and logged "Pausing" once per message (the reason carried the prices): 225 lines in 16 s
    from market_maker.models import Book
    caplog.set_level(logging.INFO, logger="market_maker")
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    assert rest.orders
    open_orders_refused(rest, 1)
    rest.calls.clear()
    for bid in ("10001", "10002", "10003", "10004"):  # a sweep moving through the book
        ws.book = Book(bids=((Decimal(bid), 5),), asks=((Decimal("10000.5"), 5),))
        manager.step()
    assert not rest.orders  # the first cancel-all failed, the second went through
    assert rest.count("open_orders") == 1 and rest.count("create") == 0
    assert caplog.text.count("Pausing") == 1 and "crossed (10001 >= 10000.5)" in caplog.text
    ws.book = Book(bids=((Decimal("9999.5"), 5),), asks=((Decimal("10000.5"), 5),))
    manager.step()
    assert manager.paused is None and rest.orders and "Resuming: the order book is crossed is over" in caplog.text


def test_book_with_an_empty_side_cancels_our_orders(tmp_path, caplog):
    from market_maker.models import Book
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.step()
    assert rest.orders
    ws.book = Book(bids=((Decimal("9999.5"), 5),), asks=())
    manager.step()
    manager.step()
    assert not rest.orders and rest.count("create") == 2 * settings.ORDER_PAIRS
    assert manager.paused == "the order book has an empty side" and caplog.text.count("Pausing") == 1


def test_stale_data_pause_logs_once_while_the_data_ages(tmp_path, caplog):
    import time
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\nSTALE_DATA_SECONDS = 5\n")
    manager.step()
    rest.calls.clear()
    for age in (40, 50, 60):
        ws.last_update_ms = int((time.time() - age) * 1000)
        manager.step()
    assert not rest.orders and rest.count("open_orders") == 1
    assert caplog.text.count("Pausing") == 1 and "Pausing: market data is stale (no book or trade update for 40s)" \
        in caplog.text


def test_a_refusal_at_start_is_exit_1_with_one_line_and_no_order(tmp_path, caplog):
    from market_maker.gte.errors import BadParameter
    from market_maker.runner import EXIT_ERROR
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\n")

    def refuse(leverage, mode, long_flag=None):
        raise BadParameter(-10013, "leverage out of range", param="leverage")
    rest.change_leverage = refuse
    runner = Runner(settings, exchange, OrderManager, duration=5)
    assert runner.run() == EXIT_ERROR
    assert rest.count("create") == 0
    errors_logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors_logged == ["The exchange refused to start: GTE rejected a request parameter: leverage out of "
                             "range (code -10013, parameter 'leverage')."]


def test_a_bug_at_start_is_not_mistaken_for_an_exchange_fault(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\n")

    class Broken(OrderManager):
        def start(self, fresh=True):
            raise KeyError("a bug")
    runner = Runner(settings, exchange, Broken, duration=5)
    with pytest.raises(KeyError):
        runner.run()
