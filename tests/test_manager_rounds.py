"""The manager's rounds in time: pacing on its clock, the create rate limit, and what a round does when the
exchange changes under it while it waits."""
import logging
import time
from decimal import Decimal

from market_maker.models import BUY, Book
from tests.manager_helpers import one_of_ours_fills, started, started_on_clock

MOVED = Book(bids=((Decimal("10049.5"), 10),), asks=((Decimal("10050.5"), 10),))


def test_time_reaches_the_manager_through_its_clock(tmp_path):
    clock, rest, ws, _, manager = started_on_clock(tmp_path, "API_REST_INTERVAL = 30\nSTALE_DATA_SECONDS = 5\n")
    assert manager.clock is clock
    started = time.monotonic()
    manager.step()
    manager.book_depth = 10
    ws.book = MOVED
    ws.last_update_ms = int(clock.now * 1000)
    manager.step()  # a second round that sends: paced by API_REST_INTERVAL on the clock, not the wall
    assert time.monotonic() - started < 10 and clock.now - ws.last_update_ms / 1000 >= 30
    manager.step()  # the clock has moved 30 s past the last market data: stale
    assert manager.paused == "market data is stale" and not rest.orders


def test_a_cancel_that_finds_its_order_filled_ends_the_round(tmp_path, caplog):
    # backtest finding: the bot cancelled a close order the market had just filled and, in the same round, sent a
    # new close order counting on its quantity: refused (-20003, it would close more than the position holds)
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 4\nAPI_REST_INTERVAL = 0\n"
                                                              "RELIST_INTERVAL = 0.0001\nMIN_SPREAD = 0\n"
                                                              "MAINTAIN_SPREADS = False\n")
    manager.step()
    for order in list(rest.orders.values()):  # all filled at the exchange; the socket has not told yet
        ws.lost[order.order_id] = order
        ws.gone.add(order.order_id)
        del rest.orders[order.order_id]
    rest.rate_limiter.batch_wait = 3.0  # single cancels: each answers for its order
    ws.book = MOVED
    rest.calls.clear()
    with caplog.at_level(logging.INFO, logger="market_maker.manager"):
        manager.step()
    kinds = [c[0] for c in rest.calls]
    assert "cancel" in kinds and "create" not in kinds[kinds.index("cancel"):]
    assert "An order to cancel had already filled or gone" in caplog.text


def test_a_round_whose_orders_fill_while_it_waits_to_be_sent_plans_again(tmp_path, caplog):
    # backtest finding: a round planned, then waited out API_REST_INTERVAL; our close order filled meanwhile and the
    # round sent a new close order for the quantity it no longer had
    clock, rest, ws, _, manager = started_on_clock(tmp_path, "API_REST_INTERVAL = 5\nSTALE_DATA_SECONDS = 60\n")
    manager.step()
    ws.book = MOVED
    ws.last_update_ms = int(clock.now * 1000)
    clock.during_sleep.append(lambda: one_of_ours_fills(rest, ws))
    rest.calls.clear()
    with caplog.at_level(logging.INFO, logger="market_maker.manager"):
        manager.step()  # plans, waits for API_REST_INTERVAL: a fill meanwhile, so nothing of that plan is sent
    assert rest.calls == [] and "filled while this round waited" in caplog.text
    manager.step()  # the next round plans from the view after the fill, and sends
    assert any(c[0] == "create" for c in rest.calls)


class CreateLimitReached:
    """The real limiter's answer for creates when the limit is reached: the next create may go ``wait``
    seconds from now, by the manager's clock (cancels are free)."""

    def __init__(self, clock, wait):
        self.clock, self.free_at, self.batch_wait = clock, clock.monotonic() + wait, 0.0

    def time_until_available(self, endpoint):
        if endpoint.endswith("create"):
            return max(0.0, self.free_at - self.clock.monotonic())
        return self.batch_wait if "batch" in endpoint else 0.0


def test_a_create_waiting_for_the_rate_limit_is_checked_against_the_book_after_the_wait(tmp_path, caplog):
    # backtest finding: with fast requotes near 20 creates/s, the REST client's limiter held a checked order back
    # while the market moved, and it went out as a taker (the post-only check had seen the book before the wait)
    clock, rest, ws, exchange, manager = started_on_clock(
        tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\nSTALE_DATA_SECONDS = 60\n")
    rest.rate_limiter = CreateLimitReached(clock, 0.4)

    def the_asks_fall():  # planned from 9999.5 / 10000.5 (buys 9950, 9900, 9851); while the round waits
        ws.book = Book(bids=((Decimal("9924.5"), 10),), asks=((Decimal("9925"), 10),))
    clock.during_sleep.append(the_asks_fall)
    with caplog.at_level("INFO", logger="market_maker.manager"):
        manager.step()
    buys = [c[2] for c in rest.calls if c[0] == "create" and c[1] == BUY]
    assert buys == [Decimal("9900"), Decimal("9851")]
    assert exchange.counters["post_only_skips"] == 1
    assert "Not sending buy order 100 @ 9950.0: it would take the best ask 9925 (post-only)" in caplog.text


def test_a_round_whose_orders_fill_while_it_waits_for_the_create_limit_plans_again(tmp_path, caplog):
    clock, rest, ws, _, manager = started_on_clock(
        tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\nSTALE_DATA_SECONDS = 60\n")
    manager.step()  # the full ladder rests
    ws.book = MOVED
    ws.last_update_ms = int(clock.now * 1000)
    rest.rate_limiter = CreateLimitReached(clock, 0.4)
    clock.during_sleep.append(lambda: one_of_ours_fills(rest, ws))
    rest.calls.clear()
    with caplog.at_level(logging.INFO, logger="market_maker.manager"):
        manager.step()
    assert not any(c[0] == "create" for c in rest.calls)
    assert "filled while this round waited for the create rate limit" in caplog.text
