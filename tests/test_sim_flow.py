"""Synthetic market flow: reproducibility, depth, fills, speed, replay."""
from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

from market_maker.gte.book import OrderBook
from market_maker.sim.exchange import Exchange, ExchangeConfig
from market_maker.sim.faults import FaultConfig, FaultInjector
from market_maker.sim.fanout import MAX_BOOK_DELETES
from market_maker.sim.flow import FlowConfig, MarketFlow, load_price_csv
from market_maker.sim.ws import Sub, WsHub

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


# --- the book as a client sees it -------------------------------------------------------------

class _Recorder:
    """A WebSocket session subscribed to the order book: records each pushed message."""

    def __init__(self) -> None:
        self.subs = {"order_book": Sub("BTC", SYM)}
        self.closed = False
        self.account_id = None
        self.messages: list[tuple[str, list[dict]]] = []

    def push(self, faults: object, table: str, msg: object) -> None:
        self.messages.append((msg.action, msg.rows))   # type: ignore[attr-defined]


def _client_view(seed: int, seconds: int, **cfg: object) -> dict:
    """Run the flow on the simulator's 50 ms tick for ``seconds`` of simulated time; push its
    events through the real ``WsHub`` grouping and apply every message, in order, to the
    client's ``OrderBook``. Messages from the liquidity providers and from the takers' sweeps
    are told apart by dispatching the events queued before the takers act."""
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(**cfg), seed)   # type: ignore[arg-type]
    hub = WsHub(ex, None, FaultInjector(FaultConfig(), seed), lambda: None)
    session = _Recorder()
    hub.sessions.add(session)   # type: ignore[arg-type]
    hub._indexed(session, "order_book")   # type: ignore[arg-type]
    flow.step(0)
    ex.drain_events()
    book = OrderBook(D("0.5"), 1)
    book.apply_partial(ex.book_levels(SYM))
    seen = {"lp": 0, "taker": 0, "min_depth": min(book.depth), "messages": 0}

    def replay(source: str) -> None:
        hub.dispatch(ex.drain_events())
        for action, rows in session.messages:
            book.apply(rows, action)
            seen["messages"] += 1
            seen["min_depth"] = min(seen["min_depth"], *book.depth)
            if action == "delete":
                seen[source] = max(seen[source], len(rows))
        session.messages.clear()

    takers = flow._takers

    def takers_after_lp_messages(now_ms: int) -> None:
        replay("lp")
        takers(now_ms)
    flow._takers = takers_after_lp_messages   # type: ignore[method-assign]
    for t in range(50, seconds * 1000 + 1, 50):
        flow.step(t)
        ex.tick(t)
        replay("taker")
    seen["burst"] = flow.burst_until > 0
    return seen


def test_client_never_sees_an_empty_side_and_lp_messages_remove_a_few_levels() -> None:
    cfg = FlowConfig()
    band_ticks = int(D(20000) * cfg.taker_slippage) + 1          # a taker's reach from the reference
    sweep_bound = 2 + band_ticks // cfg.level_step_ticks          # touch + grid levels inside it
    runs = [_client_view(1, 90), _client_view(2, 90),
            _client_view(3, 40, burst_rate=D(1))]                # the whole run inside a burst
    assert runs[2]["burst"]
    for seen in runs:
        assert seen["messages"] > 1000  # the replay saw the market move (about 40 messages a second)
        assert seen["min_depth"] >= 1, "a side of the book was empty"
        # the hub nets one tick's book changes and sends its deletions a few levels a message
        assert 1 <= seen["lp"] <= MAX_BOOK_DELETES, "a liquidity-provider message removed more than a few levels"
        assert seen["taker"] <= sweep_bound


def test_a_one_tick_move_changes_at_most_two_levels_per_side() -> None:
    rows = tuple((i * 100, D(10000) + D("0.5") * (i % 2)) for i in range(40))  # up a tick, down a tick...
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(price_rows=rows, taker_rate=D(0), requote_prob=D(0)), 1)
    flow.step(0)
    ex.drain_events()
    for t in range(100, 4000, 100):
        flow.step(t)
        changes = {"buy": 0, "sell": 0}
        for e in ex.drain_events():
            if e.kind == "order_book" and e.action in ("insert", "delete"):
                changes[e.row["side"]] += 1
        assert 1 <= max(changes.values()) and all(n <= 4 for n in changes.values()), changes
        book = ex.order_book(SYM, 100)
        assert len(book["bids"]) == len(book["asks"]) == FlowConfig().depth_levels


def test_price_path_depends_on_seed_and_simulated_time_only() -> None:
    def path(step_ms: list[int], taker_rate: D) -> dict[int, D]:
        ex = Exchange(ExchangeConfig())
        flow = MarketFlow(ex, FlowConfig(taker_rate=taker_rate), 4)
        seen, t = {}, 0
        flow.step(0)
        for dt in step_ms:
            t += dt
            flow.step(t)
            seen[t] = flow.reference_price
        return seen
    regular = path([50] * 400, D(2))
    jittery = path([30, 70, 20, 80, 50, 40, 10, 100] * 50, D(2))    # the same 20 s, other call times
    other_flow = path([250] * 80, D(8))                              # and other takers
    common = sorted(regular.keys() & jittery.keys() & other_flow.keys())
    assert len(common) == 50   # every 400 ms
    assert [regular[t] for t in common] == [jittery[t] for t in common] == [other_flow[t] for t in common]
    assert len(set(regular.values())) > 10


def test_new_liquidity_sweeps_a_stale_order_of_another_trader() -> None:
    rows = ((0, D(10000)), (1000, D(10010)))   # the reference jumps 20 ticks up at 1 s
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(price_rows=rows, taker_rate=D(0)), 1)
    bot = ex.open_account("bot", D(1))
    flow.step(0)
    ex.place_order(bot, SYM, 0, 0, D(10003), 5, "stale-ask", 0)      # above the touch, then left behind
    ex.drain_events()
    flow.step(1000)
    (fill,) = [e.row for e in ex.drain_events() if e.kind == "execution" and e.account_id == bot]
    assert (fill["last_price"], fill["last_qty"], fill["maker_flag"]) == ("10003.0", "5", "1")


class _Draws:
    """A ``random.Random`` stand-in whose ``gauss`` returns the given values in turn."""

    def __init__(self, values: list[float]) -> None:
        self.values = iter(values)

    def gauss(self, mu: float, sigma: float) -> float:
        return next(self.values)


def test_sizes_are_the_decimal_exp_rounded_even_near_ties() -> None:
    import math
    import random
    flow = MarketFlow(Exchange(ExchangeConfig()), FlowConfig(), 1)
    rng = random.Random(3)
    for mu, sigma in ((flow._lp_mu, D("0.8")), (flow._mu, FlowConfig().taker_qty_sigma)):
        zs = [rng.gauss(0, 1) for _ in range(3000)] + [40.0, -40.0]
        # draws whose size lands within float error of a tie n + 1/2
        for n in range(1, 3000, 7):
            z = (math.log(n + 0.5) - float(mu)) / float(sigma)
            zs += [z, math.nextafter(z, math.inf), math.nextafter(z, -math.inf)]
        draws = _Draws(zs)
        sizes = [flow._size(mu, sigma, draws) for _ in zs]   # type: ignore[arg-type]
        exact = [max(1, int((mu + sigma * D(z)).exp().to_integral_value())) for z in zs]
        assert sizes == exact
