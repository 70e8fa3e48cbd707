"""The backtest queue model (market_maker/backtest/queue.py): rules, and properties against an
explicit first-in-first-out queue of contracts."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from market_maker.backtest.queue import ASK, BID, BUY, SELL, QueueModel


def test_joins_behind_the_recorded_level_and_fills_after_it():
    q = QueueModel()
    q.set_level(BID, 100, 30)
    q.join("a", BID, 100, 10)
    assert q.orders["a"].ahead == 30
    assert q.trade(SELL, 100, 25) == []
    assert q.orders["a"].ahead == 5
    assert q.trade(SELL, 100, 8) == [("a", 3, 100)]
    assert q.trade(SELL, 100, 100) == [("a", 7, 100)]
    assert "a" not in q.orders


def test_inside_the_spread_nothing_is_ahead():
    q = QueueModel()
    q.set_level(ASK, 105, 50)
    q.join("a", ASK, 104, 10)
    assert q.orders["a"].ahead == 0
    assert q.trade(BUY, 104, 4) == [("a", 4, 104)]


def test_trade_through_fills_up_to_its_size_at_our_price():
    q = QueueModel()
    q.set_level(BID, 100, 1000)
    q.join("a", BID, 100, 10)
    q.join("b", BID, 99, 10)
    # a taker sell at 98 went through both our bids: 12 contracts, best price first
    assert q.trade(SELL, 98, 12) == [("a", 10, 100), ("b", 2, 99)]
    # a taker buy never touches our bids
    assert q.trade(BUY, 98, 50) == []


def test_cancels_come_from_the_back():
    q = QueueModel()
    q.set_level(ASK, 110, 40)
    q.join("a", ASK, 110, 5)
    q.set_level(ASK, 110, 60)       # joins behind us
    assert q.orders["a"].ahead == 40
    q.set_level(ASK, 110, 45)       # the 15 behind us... and 0 of those ahead
    assert q.orders["a"].ahead == 40
    q.set_level(ASK, 110, 25)       # everything behind us is gone: 15 of ours ahead left
    assert q.orders["a"].ahead == 25
    q.set_level(ASK, 110, 0)
    assert q.orders["a"].ahead == 0
    assert q.trade(BUY, 110, 3) == [("a", 3, 110)]


def test_trade_then_its_book_update_is_not_counted_twice():
    q = QueueModel()
    q.set_level(BID, 100, 30)
    q.join("a", BID, 100, 10)
    assert q.trade(SELL, 100, 20) == []
    q.set_level(BID, 100, 10)       # the exchange reports the level the trade left
    assert q.orders["a"].ahead == 10
    assert q.trade(SELL, 100, 10) == []
    assert q.trade(SELL, 100, 1) == [("a", 1, 100)]


def test_our_orders_at_one_price_queue_in_arrival_order():
    q = QueueModel()
    q.set_level(ASK, 120, 5)
    q.join("a", ASK, 120, 4)
    q.set_level(ASK, 120, 9)
    q.join("b", ASK, 120, 4)
    assert q.orders["b"].ahead == 9
    # 5 recorded, a's 4, 4 recorded, then b
    assert q.trade(BUY, 120, 12) == [("a", 4, 120)]
    assert q.orders["b"].ahead == 1
    assert q.trade(BUY, 120, 2) == [("b", 1, 120)]


def test_leave_and_bad_arguments():
    q = QueueModel()
    q.join("a", BID, 1, 1)
    with pytest.raises(ValueError):
        q.join("a", BID, 1, 1)
    with pytest.raises(ValueError):
        q.join("b", "buy", 1, 1)
    with pytest.raises(ValueError):
        q.join("b", BID, 1, 0)
    with pytest.raises(ValueError):
        q.trade(BID, 1, 1)
    q.leave("a")
    q.leave("a")
    assert q.trade(SELL, 1, 5) == []


# ---------------------------------------------------------------------- properties

class FifoQueue:
    """The reference: one level as an explicit list of chunks, front first.

    ("rec", n) recorded contracts, ("us", key, n) ours. Trades eat the front; a shrink removes
    recorded contracts from the back; growth appends recorded contracts at the back."""

    def __init__(self) -> None:
        self.chunks: list[list] = []

    def recorded(self) -> int:
        return sum(c[1] for c in self.chunks if c[0] == "rec")

    def set_level(self, qty: int) -> None:
        diff = qty - self.recorded()
        if diff > 0:
            self.chunks.append(["rec", diff])
        for c in reversed(self.chunks):
            if diff >= 0:
                break
            if c[0] == "rec":
                cut = min(c[1], -diff)
                c[1] -= cut
                diff += cut
        self.chunks = [c for c in self.chunks if c[-1] > 0]

    def join(self, key: str, qty: int) -> None:
        self.chunks.append(["us", key, qty])

    def trade(self, qty: int) -> dict[str, int]:
        fills: dict[str, int] = {}
        for c in self.chunks:
            if not qty:
                break
            take = min(qty, c[-1])
            c[-1] -= take
            qty -= take
            if c[0] == "us":
                fills[c[1]] = fills.get(c[1], 0) + take
        self.chunks = [c for c in self.chunks if c[-1] > 0]
        return fills


level_ops = st.lists(st.one_of(
    st.tuples(st.just("level"), st.integers(0, 60)),
    st.tuples(st.just("join"), st.integers(1, 20)),
    st.tuples(st.just("trade"), st.integers(1, 40)),
), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ops=level_ops, side=st.sampled_from([BID, ASK]))
def test_one_level_matches_an_explicit_fifo_queue(ops, side):
    model, ref = QueueModel(), FifoQueue()
    taker = SELL if side == BID else BUY
    n = 0
    for op, x in ops:
        if op == "level":
            model.set_level(side, 50, x)
            ref.set_level(x)
        elif op == "join":
            n += 1
            model.join(f"o{n}", side, 50, x)
            ref.join(f"o{n}", x)
        else:
            got: dict[str, int] = {}
            for key, qty, ticks in model.trade(taker, 50, x):
                assert ticks == 50
                got[key] = got.get(key, 0) + qty
            assert got == ref.trade(x)
        assert model.level(side, 50) == ref.recorded()


book_ops = st.lists(st.one_of(
    st.tuples(st.just("level"), st.sampled_from([BID, ASK]), st.integers(90, 110), st.integers(0, 50)),
    st.tuples(st.just("join"), st.sampled_from([BID, ASK]), st.integers(90, 110), st.integers(1, 20)),
    st.tuples(st.just("trade"), st.sampled_from([BUY, SELL]), st.integers(90, 110), st.integers(1, 60)),
    st.tuples(st.just("leave"), st.just(""), st.integers(0, 30), st.just(0)),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=book_ops)
def test_fills_never_exceed_orders_nor_trades(ops):
    model = QueueModel()
    sizes: dict[str, int] = {}
    filled: dict[str, int] = {}
    n = 0
    for op, side, ticks, x in ops:
        if op == "level":
            model.set_level(side, ticks, x)
        elif op == "join":
            n += 1
            sizes[f"o{n}"] = x
            model.join(f"o{n}", side, ticks, x)
        elif op == "leave":
            model.leave(f"o{ticks}")
        else:
            before = {k: (q.side, q.ticks, q.ahead) for k, q in model.orders.items()}
            fills = model.trade(side, ticks, x)
            assert sum(f for _, f, _ in fills) <= x                       # conservation
            for key, f, px in fills:
                assert f > 0
                o_side, o_ticks, ahead = before[key]
                assert px == o_ticks
                assert o_side == (ASK if side == BUY else BID)
                # never through the wrong way; at the trade's price only past the qty ahead
                assert (o_ticks <= ticks) if o_side == ASK else (o_ticks >= ticks)
                if o_ticks == ticks:
                    assert f <= x - ahead
                filled[key] = filled.get(key, 0) + f
        for key, q in model.orders.items():
            assert 0 <= q.ahead <= model.level(q.side, q.ticks)
            assert q.remaining == sizes[key] - filled.get(key, 0) > 0
    for key, f in filled.items():
        assert f <= sizes[key]
