"""Synthetic market flow: reproducibility, depth, fills, speed, replay."""
from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from market_maker.sim.exchange import Exchange, ExchangeConfig
from market_maker.sim.flow import FlowConfig, MarketFlow, load_price_csv

SYM = "BTC_USD"


def _run(seed: int, steps: int, dt_ms: int = 200, **cfg: object) -> tuple[Exchange, MarketFlow]:
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(**cfg), seed)   # type: ignore[arg-type]
    for i in range(steps):
        flow.step(i * dt_ms)
        ex.drain_events()
    return ex, flow


def _fingerprint(ex: Exchange, flow: MarketFlow) -> tuple:
    return (flow.reference_price, ex.order_book(SYM, 50), ex.trades(SYM, None, None, 100),
            [ex.position_rows(a) for a in ex.account_ids()])


def test_same_seed_same_run_other_seed_differs() -> None:
    a = _fingerprint(*_run(7, 300))
    b = _fingerprint(*_run(7, 300))
    c = _fingerprint(*_run(8, 300))
    assert a == b
    assert a != c
    assert a[2], "takers traded"


def test_depth_on_both_sides_around_reference() -> None:
    ex, flow = _run(1, 50, depth_levels=25)
    book = ex.order_book(SYM, 50)
    assert len(book["bids"]) >= 25 and len(book["asks"]) >= 25
    bid, ask = D(book["bids"][0][0]), D(book["asks"][0][0])
    assert bid < flow.reference_price < ask
    assert ex.mark_price(SYM) == flow.reference_price
    sizes = {int(q) for _, q in book["bids"] + book["asks"]}
    assert len(sizes) > 10, "random sizes"


def test_reference_moves_and_requotes() -> None:
    ex, flow = _run(3, 600, volatility=D("0.0005"))
    assert flow.reference_price != D(10000)
    best_bid = D(ex.order_book(SYM, 1)["bids"][0][0])
    assert abs(best_bid - flow.reference_price) <= D(1)


def test_takers_fill_a_resting_bot_order() -> None:
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(taker_rate=D(2)), 11)
    bot = ex.open_account("bot", D(1))
    flow.step(0)
    ref = flow.reference_price
    row = ex.place_order(bot, SYM, 1, 0, ref, 5, "bot-1", 0)     # inside the spread
    t = 0
    while ex.open_order_ids(bot) and t < 60_000:                 # within 60 simulated s
        t += 100
        flow.step(t)
    assert not ex.open_order_ids(bot), "bot order still open after 60 s"
    assert ex.query_orders(bot, SYM, None, row["order_id"], None, None, 1)[0]["status"] == "32"
    assert ex.position_rows(bot)[0]["qty"] == "5"


def test_speed_scales_taker_arrivals() -> None:
    slow, _ = _run(5, 100, dt_ms=100, taker_rate=D(5))
    fast, _ = _run(5, 100, dt_ms=100, taker_rate=D(5), speed=D(4))
    n_slow = len(slow.trades(SYM, None, None, 10_000))
    n_fast = len(fast.trades(SYM, None, None, 10_000))
    assert n_fast > 2 * n_slow > 0


def test_equity_conserved_under_flow() -> None:
    ex = Exchange(ExchangeConfig())
    total = ex.total_equity()
    flow = MarketFlow(ex, FlowConfig(taker_rate=D(5)), 2)
    total += 3 * FlowConfig().balance
    for i in range(200):
        flow.step(i * 250)
        ex.tick(i * 250)
    assert ex.total_equity() == total


def test_replay_follows_price_rows(tmp_path: Path) -> None:
    csv = tmp_path / "prices.csv"
    csv.write_text("timestamp_ms,price\n1000,20000\n3000,20010.5\n5000,19990\n")
    rows = load_price_csv(csv)
    assert rows == [(1000, D(20000)), (3000, D("20010.5")), (5000, D(19990))]
    ex = Exchange(ExchangeConfig(start_price=D(20000)))
    flow = MarketFlow(ex, FlowConfig(price_rows=tuple(rows)), 1)
    seen = []
    for t in (0, 1000, 2000, 2500, 4100, 9000):
        flow.step(t)
        seen.append(ex.mark_price(SYM))
    assert seen == [D(20000), D(20000), D("20010.5"), D("20010.5"), D(19990), D(19990)]
    assert D(ex.order_book(SYM, 1)["bids"][0][0]) < D(19990) < D(ex.order_book(SYM, 1)["asks"][0][0])
