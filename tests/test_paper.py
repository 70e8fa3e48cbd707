"""DRY_RUN paper fills (market_maker/paper.py): the queue model against snapshots of the live book
and trades, an exact inverse-contract ledger, and a dry run beside a real run on the simulator."""
from __future__ import annotations

import threading
from decimal import Decimal as D

from market_maker.cli import build_runner
from market_maker.events import CallbackSink, EventBus
from market_maker.models import BUY, SELL, Book, Order, Trade
from market_maker.paper import UNIT, PaperLedger, new_trades
from market_maker.runner import EXIT_OK
from market_maker.settings import load_settings
from market_maker.sim import SimConfig, run_simulator
from tests.waiting import wait_until


def order(oid: str, side: str, price: str, qty: int, close: int = 0) -> Order:
    return Order(order_id=oid, client_oid="mm" + oid, side=side, close_flag=close, price=D(price), qty=qty,
                 filled_qty=0, status=2)


def t(side: str, price: str, qty: int, time: int) -> Trade:
    return Trade(side, D(price), qty, time)


BOOK = Book(bids=((D("99.5"), 30), (D("99"), 50)), asks=((D("100.5"), 20), (D("101"), 40)))


def test_new_trades_aligns_the_kept_tail():
    a, b, c, d = t(BUY, "1", 1, 1), t(SELL, "1", 1, 2), t(BUY, "2", 1, 3), t(BUY, "2", 1, 4)
    assert new_trades((), (a, b)) == []
    assert new_trades((a, b), (a, b, c)) == [c]
    assert new_trades((a, b, c), (b, c, d)) == [d]          # the client dropped the oldest
    assert new_trades((a, b), (a, b)) == []
    assert new_trades((a, b), (c, d)) == []                   # rebuilt after a resync: no overlap


def test_paper_orders_fill_through_the_queue_and_book_exact_pnl():
    seen = []
    bus = EventBus()
    bus.subscribe(CallbackSink(seen.append))
    ledger = PaperLedger(bus)
    trades: tuple = (t(BUY, "100", 1, 0),)
    ledger.observe(BOOK, trades, 0)
    ledger.add(order("1", BUY, "99.5", 10))
    assert ledger.queue.orders["1"].ahead == 30
    trades += (t(SELL, "99.5", 35, 1),)
    assert ledger.observe(Book(bids=((D("99"), 50),), asks=BOOK.asks), trades, 1) == 1
    assert ledger.orders["1"].filled_qty == 5
    trades += (t(SELL, "99", 100, 2),)                        # through our bid: the other 5
    ledger.observe(Book(bids=(), asks=BOOK.asks), trades, 2)
    assert "1" not in ledger.orders
    assert ledger.fill_count == 2 and ledger.contracts == 10
    assert [e.fields["qty"] for e in seen if e.kind == "execution"] == [5, 5]
    assert {e.fields["source"] for e in seen} == {"paper"}
    # close the long at 100.5: realised = 10/99.5 - 10/100.5 BTC, less fees (maker rebates)
    ledger.add(order("2", SELL, "100.5", 10, close=1))
    assert ledger.positions(None).long.avail_qty == 0
    trades += (t(BUY, "101", 10, 3),)
    ledger.observe(BOOK, trades, 3)
    pos = ledger.positions(D(100))
    assert pos.long.qty == 0 and pos.short.qty == 0
    cost_in = 2 * round(D(5) / D("99.5") / UNIT)
    cost_out = round(D(10) / D("100.5") / UNIT)
    fees = 2 * round(round(D(5) / D("99.5") / UNIT) * D("-0.00025")) + round(cost_out * D("-0.00025"))
    assert pos.long.realised_pnl == (cost_in - cost_out - fees) * UNIT
    assert ledger.fees * UNIT == fees * UNIT


def test_unrealised_pnl_and_the_view(tmp_path):
    ledger = PaperLedger()
    ledger.observe(BOOK, (t(BUY, "100", 1, 0),), 0)
    ledger.add(order("1", SELL, "100", 4))
    ledger.observe(BOOK, (t(BUY, "100", 1, 0), t(BUY, "100", 4, 1)), 1)
    pos = ledger.positions(D(80))
    assert pos.short.qty == 4 and pos.short.entry_price == D(100)
    assert pos.short.unrealised_pnl == (round(D(4) / D(80) / UNIT) - round(D(4) / D(100) / UNIT)) * UNIT


def test_a_cancelled_paper_order_never_fills():
    ledger = PaperLedger()
    ledger.observe(BOOK, (t(BUY, "100", 1, 0),), 0)
    ledger.add(order("1", BUY, "99.5", 10))
    ledger.remove("1")
    assert ledger.observe(BOOK, (t(BUY, "100", 1, 0), t(SELL, "90", 500, 1)), 1) == 0


LIVELY = dict(volatility=D("0.001"), taker_rate=D("4"), taker_mean_qty=D("200"), depth_levels=30,
              level_step_ticks=2, speed=D("4"))
TIGHT = {"ORDER_PAIRS": 4, "ORDER_START_SIZE": 50, "ORDER_STEP_SIZE": 50, "INTERVAL": D("0.001"),
         "MIN_SPREAD": D("0.0005"), "RELIST_INTERVAL": D("0.001"), "LOOP_INTERVAL": 1, "API_REST_INTERVAL": 0.1}


def test_a_dry_run_beside_a_real_run_sees_comparable_fills(tmp_path):
    """The same settings, one real and one paper, on one simulated market until the real bot has 40 fills.

    Bound: the paper contracts within a factor of 4 of the real ones. Why loose: the paper orders
    queue behind the real bot's orders at the same prices (the real ones are in the public book), they
    take no liquidity, and the two bots requote at slightly different moments; why not looser: both
    face the same takers at the same prices, so a paper ledger that missed trades through its prices,
    or filled before its queue, would be off by far more (no fills, or every trade)."""
    with run_simulator(SimConfig(port=0, seed=11, **LIVELY)) as sim:
        common = {"BASE_URL": sim.base_url, "WS_URL": sim.ws_url, "API_KEY": sim.api_key, **TIGHT}
        real_settings = load_settings(overrides={**common, "API_SECRET": sim.api_secret}, environ={}, cwd=tmp_path)
        dry_settings = load_settings(overrides={**common, "DRY_RUN": True}, environ={}, cwd=tmp_path)
        real = build_runner(real_settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=120)
        dry = build_runner(dry_settings, sim.base_url, sim.ws_url, sim.api_key, None, duration=120)
        paper_events = []
        dry.exchange.events.subscribe(CallbackSink(paper_events.append))
        results = {}
        threads = [threading.Thread(target=lambda r=r, n=n: results.setdefault(n, r.run()))
                   for r, n in ((real, "real"), (dry, "dry"))]
        for th in threads:
            th.start()
        try:
            assert wait_until(lambda: real.exchange.ws.snapshot(1).fill_count >= 40, timeout=90)
        finally:
            real.stop()
            dry.stop()
            for th in threads:
                th.join(60)
    assert results == {"real": EXIT_OK, "dry": EXIT_OK}
    real_qty = real.exchange.ws.snapshot(1).contracts_traded
    paper = dry.exchange.paper
    assert paper.fill_count > 0
    assert real_qty / 4 <= paper.contracts <= real_qty * 4, (real_qty, paper.contracts)
    executions = [e for e in paper_events if e.kind == "execution"]
    assert len(executions) == paper.fill_count and {e.fields["source"] for e in executions} == {"paper"}
    assert sum(e.fields["qty"] for e in executions) == paper.contracts
    # the ledger balances: its position is what its fills opened less what they closed
    long, short = paper.legs["long"], paper.legs["short"]
    bought = sum(e.fields["qty"] for e in executions if e.fields["side"] == BUY)
    assert long.qty - short.qty == bought - (paper.contracts - bought)
