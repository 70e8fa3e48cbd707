"""The in-process fast paths of the simulated exchange: ``place_quote``/``cancel_quote`` and ``silence``.

Each must leave the state and every event anyone can read exactly as the general path does."""
from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from market_maker.sim.exchange import Exchange, ExchangeConfig, SimError
from market_maker.sim.flow import FlowConfig, MarketFlow

SYM = "BTC_USD"
TICK = D("0.5")


def _stream(events: list[Any]) -> list[tuple]:
    return [(e.kind, e.account_id, e.symbol, e.action, list(e.row.items())) for e in events]


def _state(ex: Exchange) -> tuple:
    return (ex.order_book(SYM, 100), ex.trades(SYM, None, None, 1000),
            [(ex.position_rows(a), ex.margin_rows(a), ex.open_orders_of(a),
              ex.query_orders(a, None, None, None, None, None, 1000)) for a in ex.account_ids()])


def _two_accounts(ex: Exchange) -> tuple[int, int]:
    return ex.open_account("maker", D(10)), ex.open_account("taker", D(10))


def test_quotes_queue_and_change_what_place_order_and_cancel_order_do() -> None:
    general, fast = Exchange(ExchangeConfig()), Exchange(ExchangeConfig())
    maker, taker = _two_accounts(general)
    assert _two_accounts(fast) == (maker, taker)
    placed: list[tuple[str | None, int | None]] = []

    def place(account: int, side: int, close: int, ticks: int, qty: int) -> None:
        row = general.place_order(account, SYM, side, close, ticks * TICK, qty, None, 0)
        oid = fast.place_quote(account, SYM, side, close, ticks, qty, 0)
        placed.append((row["order_id"] if row["status"] in ("2", "16") else None, oid))
        assert _stream(general.drain_events()) == _stream(fast.drain_events())

    def cancel(account: int, index: int) -> None:
        general.cancel_order(account, SYM, placed[index][0], 0)   # type: ignore[arg-type]
        fast.cancel_quote(account, SYM, placed[index][1], 0)      # type: ignore[arg-type]
        assert _stream(general.drain_events()) == _stream(fast.drain_events())

    for ticks in (19_990, 19_992, 19_994):
        place(maker, 1, 0, ticks, 50)                 # bids
        place(maker, 0, 0, ticks + 20, 50)            # asks
    place(taker, 0, 0, 19_991, 120)                   # sells into two bids, rests the rest
    place(maker, 1, 0, 19_991, 10)                    # a quote that crosses: filled at once
    place(maker, 0, 1, 20_030, 40)                    # closes part of the maker's long
    cancel(maker, 0)
    cancel(maker, 3)
    cancel(maker, 8)                                  # the close order
    cancel(taker, 6)                                  # the taker's partly filled rest
    assert [str(oid) if oid is not None else None for _, oid in placed] == [row for row, _ in placed]
    assert placed[7] == (None, None)
    assert _state(general) == _state(fast)
    assert set(map(str, fast.open_quote_ids(maker))) == general.open_order_ids(maker)


def test_quotes_refuse_what_place_order_and_cancel_order_refuse() -> None:
    ex = Exchange(ExchangeConfig())
    maker, _ = _two_accounts(ex)
    for args, param in (((maker, SYM, 2, 0, 20_000, 1), "side"), ((maker, SYM, 1, 0, 0, 1), "price"),
                        ((maker, SYM, 1, 0, 20_000, 0), "qty"), ((maker, "ETH_USD", 1, 0, 20_000, 1), "symbol"),
                        ((maker, SYM, 1, 1, 20_000, 1), "qty"), ((maker, SYM, 1, 0, 20_000, 10 ** 9), "qty")):
        with pytest.raises(SimError) as refused:
            ex.place_quote(*args, 0)
        assert refused.value.param == param
    with pytest.raises(SimError) as refused:
        ex.cancel_quote(maker, SYM, 1, 0)
    assert refused.value.code == -20002
    assert ex.drain_events() == []


def _market_with_bot(silent: bool, steps: int = 400,
                     counted: bool = False) -> tuple[Exchange, int, list[Any], list[dict]]:
    """A flow on the exchange and a bot quoting near the touch (so the takers fill it), the bot's
    own operations' answers, every event."""
    ex = Exchange(ExchangeConfig())
    flow = MarketFlow(ex, FlowConfig(), 5)
    bot = ex.open_account("bot", D(10))
    if silent:
        ex.silence(a for a in ex.account_ids() if a != bot)
    if counted:
        ex.book_as_count()
    events: list[Any] = []
    answers: list[dict] = []
    for i in range(steps):
        flow.step(i * 200)
        events += ex.drain_events()
        if i % 10 == 5:
            bid, ask = ex.best_prices(SYM)
            for oid in sorted(ex.open_order_ids(bot)):
                answers.append(ex.cancel_order(bot, SYM, oid, i * 200))
            for side, price in ((1, bid), (0, ask)):
                try:
                    answers.append(ex.place_order(bot, SYM, side, 0, price, 200, None, i * 200))
                except SimError as exc:
                    answers.append({"refused": exc.code})
            events += ex.drain_events()
        if i % 50 == 25:   # the flow's own accounts answer alike, silenced or not
            lp = flow.lps[0]
            oid = sorted(ex.open_order_ids(lp))[0]
            answers.append(ex.cancel_order(lp, SYM, oid, i * 200))
            answers.append(ex.place_order(lp, SYM, 1, 0, D(9000), 3, "x", i * 200))
            answers += ex.cancel_batch(lp, SYM, [answers[-1]["order_id"]], i * 200)
            events += ex.drain_events()
    return ex, bot, events, answers


def test_silenced_accounts_queue_no_private_event_and_change_nothing_else() -> None:
    loud, bot, loud_events, loud_answers = _market_with_bot(False)
    quiet, _, quiet_events, quiet_answers = _market_with_bot(True)
    read = [e for e in loud_events if e.account_id in (None, bot)]
    assert len(read) < len(loud_events) / 2, "the market's own accounts had most of the events"
    assert any(e.kind == "execution" for e in read), "the bot was filled"
    assert _stream(quiet_events) == _stream(read)
    assert quiet_answers == loud_answers
    assert _state(quiet) == _state(loud)


def test_counted_book_changes_replace_the_single_order_book_events_and_change_nothing_else() -> None:
    """``book_as_count`` (the backtest's mode): the book change of a resting order or of one cancel is
    counted instead of queued; everything else -- other events, answers, state -- stays as it was."""
    quiet, _, quiet_events, quiet_answers = _market_with_bot(True)
    counted, _, counted_events, counted_answers = _market_with_bot(True, counted=True)
    assert _stream([e for e in counted_events if e.kind != "order_book"]) == \
        _stream([e for e in quiet_events if e.kind != "order_book"])
    book_quiet = _stream([e for e in quiet_events if e.kind == "order_book"])
    book_counted = _stream([e for e in counted_events if e.kind == "order_book"])
    assert book_counted, "matching operations still queue their book events"
    assert all(e in book_quiet for e in book_counted)
    assert counted.book_changes == len(book_quiet) - len(book_counted) > 0
    assert quiet.book_changes == 0
    assert counted_answers == quiet_answers
    assert _state(counted) == _state(quiet)
