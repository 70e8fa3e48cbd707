"""OrderManager converge rounds: the ladder it places, the calls it spends, what it checks before each send."""
from decimal import Decimal

import pytest

from market_maker.market_maker import AnotherInstance, OrderManager
from market_maker.models import BUY, SELL, DesiredOrder
from tests.manager_helpers import make, started


def test_first_cycle_creates_the_full_ladder_and_second_changes_nothing(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    manager.step()
    creates = [c for c in rest.calls if c[0] == "create"]
    assert len(creates) == 6
    assert {c[1] for c in creates} == {BUY, SELL}
    before = len(rest.calls)
    manager.step()
    assert rest.calls[before:] == []


def test_start_cancels_only_prefixed_leftovers_and_sets_leverage(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\n")
    own = rest.create_order(BUY, Decimal("9000"), 10, client_oid="mm_old1")
    own2 = rest.create_order(BUY, Decimal("8990"), 10, client_oid="mm_old2")
    foreign = rest.create_order(BUY, Decimal("8000"), 10, client_oid="manual_order")
    rest.calls.clear()
    OrderManager(settings, exchange).start()
    assert foreign.order_id in rest.orders
    assert own.order_id not in rest.orders and own2.order_id not in rest.orders
    assert ("cancel_batch", (own.order_id, own2.order_id)) in rest.calls
    assert any(c[0] == "leverage" for c in rest.calls)


def test_cancels_go_single_when_batch_window_is_closed(tmp_path):
    settings, rest, ws, exchange = make(tmp_path)
    a = rest.create_order(BUY, Decimal("9000"), 10)
    b = rest.create_order(BUY, Decimal("8990"), 10)
    rest.rate_limiter.batch_wait = 3.0
    rest.calls.clear()
    exchange.cancel_orders([a, b])
    assert [c[0] for c in rest.calls] == ["cancel", "cancel"]


def test_market_move_replaces_with_few_calls(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 4\nAPI_REST_INTERVAL = 0\n"
                                                              "RELIST_INTERVAL = 0.0001\nMIN_SPREAD = 0\n"
                                                              "MAINTAIN_SPREADS = False\n")
    manager.step()
    from decimal import Decimal as D
    from market_maker.models import Book
    ws.book = Book(bids=((D("10049.5"), 10),), asks=((D("10050.5"), 10),))
    rest.calls.clear()
    manager.step()
    # a 0.5 % move shifts the ladder by about one INTERVAL: most levels stay, only edges change
    creates = sum(1 for c in rest.calls if c[0] == "create")
    assert 1 <= creates <= 8
    assert len(rest.orders) == 8


def test_dry_run_sends_no_order_and_holds_no_secret(tmp_path):
    settings, rest, ws, exchange = make(tmp_path, "API_REST_INTERVAL = 0\n", DRY_RUN=True)
    assert settings.API_SECRET is None
    manager = OrderManager(settings, exchange)
    manager.start()
    manager.step()
    assert not any(c[0] in ("create", "cancel", "cancel_batch", "leverage") for c in rest.calls)
    assert len(exchange.own_open_orders(manager.snap)) == 2 * settings.ORDER_PAIRS
    manager.exit()
    assert exchange.own_open_orders(manager.snap) == []


def test_converge_refuses_self_crossing_quotes(tmp_path):
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    manager.converge_orders([DesiredOrder(BUY, Decimal("10000"), 1)], [DesiredOrder(SELL, Decimal("10000"), 1)])
    assert not rest.orders


def test_resync_of_another_table_does_not_forget_orders_awaiting_their_echo(tmp_path):
    # soak finding: 21 open orders (limit 20). A "synced" event (any table: an order_book gap, 2 % of pushes
    # dropped) made the tracker forget the orders whose REST answer had arrived but whose WebSocket echo had
    # not; the next cycle saw the level missing and created it again.
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    ws.lagging = True  # a socket lagging its echoes
    manager.step()
    assert len(rest.orders) == 6
    exchange._on_event("synced")  # e.g. the order_book table was rebuilt after a gap
    exchange.wait_for_events(0)
    manager.step()
    assert len(rest.orders) == 6 and rest.count("create") == 6


def test_an_echo_arriving_during_a_cycle_cannot_hide_an_order(tmp_path):
    # review finding: the cycle's open orders came from its snapshot, but whether an order had been
    # echoed was read live; an echo arriving in between made the order vanish and be created again.
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    ws.lagging = True
    manager.step()
    assert rest.count("create") == 6
    real_snapshot = exchange.snapshot

    def snapshot_then_echo(depth=50):
        snap = real_snapshot(depth)
        ws.echo()  # the echoes land just after the cycle took its snapshot
        return snap
    exchange.snapshot = snapshot_then_echo
    manager.step()
    assert rest.count("create") == 6 and len(rest.orders) == 6
    exchange.snapshot = real_snapshot
    manager.step()
    assert rest.count("create") == 6 and len(rest.orders) == 6


def test_converge_refuses_orders_it_cannot_honour_without_raising(tmp_path, caplog):
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    twice = [DesiredOrder(BUY, Decimal("9000"), 1), DesiredOrder(BUY, Decimal("9000"), 2)]
    manager.converge_orders(twice, [DesiredOrder(SELL, Decimal("11000"), 1)])
    assert not rest.orders and "Refusing to quote" in caplog.text


def _market_moves_after_the_cycle_snapshot(ws, moved):
    """The book changes right after the cycle has read it: every later read sees ``moved``."""
    snapshot = ws.snapshot

    def snapshot_then_move(depth=50, watch=()):
        snap = snapshot(depth, watch)
        ws.book = moved
        return snap
    ws.snapshot = snapshot_then_move


def test_each_create_is_checked_against_the_book_as_it_is_sent(tmp_path, caplog):
    from market_maker.models import Book
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    # planned from 9999.5 / 10000.5: buys 9950, 9900, 9851; by the time they go out the asks fell to 9925
    _market_moves_after_the_cycle_snapshot(ws, Book(bids=((Decimal("9924.5"), 10),), asks=((Decimal("9925"), 10),)))
    with caplog.at_level("INFO", logger="market_maker.manager"):
        manager.step()
    buys = [c[2] for c in rest.calls if c[0] == "create" and c[1] == BUY]
    sells = [c[2] for c in rest.calls if c[0] == "create" and c[1] == SELL]
    assert buys == [Decimal("9900"), Decimal("9851")] and len(sells) == 3
    assert exchange.counters["post_only_skips"] == 1
    assert "Not sending buy order 100 @ 9950.0: it would take the best ask 9925 (post-only)" in caplog.text


def test_no_create_against_an_empty_opposite_side_at_send_time(tmp_path):
    from market_maker.models import Book
    manager, settings, rest, ws, exchange = started(tmp_path, "ORDER_PAIRS = 3\nAPI_REST_INTERVAL = 0\n")
    _market_moves_after_the_cycle_snapshot(ws, Book(bids=((Decimal("9999.5"), 10),), asks=()))
    manager.step()
    assert {c[1] for c in rest.calls if c[0] == "create"} == {SELL}
    assert exchange.counters["post_only_skips"] == 3


def test_summary_reports_the_maker_share(tmp_path, caplog):
    import dataclasses
    manager, settings, rest, ws, exchange = started(tmp_path, "API_REST_INTERVAL = 0\n")
    snapshot = ws.snapshot
    ws.snapshot = lambda depth=50, watch=(): dataclasses.replace(snapshot(depth, watch), fill_count=8, maker_fill_count=7)
    with caplog.at_level("INFO", logger="market_maker.manager"):
        manager.print_summary()
    assert "8 fills (87 % maker)" in caplog.text


def test_an_order_table_read_again_gives_the_same_own_orders_and_another_runs_tag_is_checked_every_time(tmp_path):
    # own_open_orders remembers the last table it read (a backtest hands the same table over while no
    # order changes); a table holding our prefix with another run's tag must still be judged on each read
    settings, rest, ws, exchange = make(tmp_path)
    exchange.cancel_leftovers()
    ours = rest.create_order(BUY, Decimal("9000"), 10, client_oid=exchange.new_client_oid())
    snap = exchange.snapshot()
    assert exchange.own_open_orders(snap) == [ours] and exchange.own_open_orders(snap) == [ours]
    rest.create_order(SELL, Decimal("11000"), 10, client_oid=settings.ORDERID_PREFIX + "another-run")
    snap = exchange.snapshot()
    exchange._run_started -= 3600  # long after the start: no earlier run's create can still turn up
    for _ in range(2):
        with pytest.raises(AnotherInstance):
            exchange.own_open_orders(snap)
