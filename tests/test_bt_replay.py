"""Recorded markets (events and replay) stepped on the simulator's Exchange: the bot sees the
recorded book merged with its own orders and is filled by the queue model, in the ledger."""
from __future__ import annotations

import gzip
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from market_maker.backtest.market import MarketError, build
from market_maker.backtest.replay import BookReplay, events_market
from market_maker.sim.exchange import Exchange, ExchangeConfig

SYM = "BTC_USD"
T0 = 1_700_000_000_000_000_000


def book(ms: int, side: str, price: object, qty: object) -> dict:
    return {"ts_ns": T0 + ms * 1_000_000, "kind": "book", "side": side, "price": price, "qty": qty}


def trade(ms: int, side: str, price: object, qty: object) -> dict:
    return {"ts_ns": T0 + ms * 1_000_000, "kind": "trade", "side": side, "price": price, "qty": qty}


def write_events(path: Path, rows: list, header: dict | None = None) -> str:
    lines = ([json.dumps(header)] if header else []) + [json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


BASE = [book(0, "bid", 9999.5, 30), book(0, "bid", 9999, 50), book(0, "ask", 10000.5, 20),
        book(0, "ask", 10001, 40)]


def setup(path: str, tick: D | None = D("0.5")) -> tuple[Exchange, BookReplay, int]:
    ex = Exchange(ExchangeConfig())
    market = BookReplay(path, tick=tick)
    bot = ex.open_account("bot", D(10))
    market.attach(ex, SYM, 0)
    return ex, market, bot


def run_until(ex: Exchange, market: BookReplay, ms: int) -> list:
    events = []
    while market.next_ms() is not None and market.next_ms() <= ms:
        market.step(market.next_ms())
        events += ex.drain_events()
    return events


def executions(events: list, account: int) -> list[tuple[str, int]]:
    return [(e.row["last_price"], int(e.row["last_qty"])) for e in events
            if e.kind == "execution" and e.account_id == account]


def test_the_public_book_is_the_recording_merged_with_the_bot(tmp_path):
    path = write_events(tmp_path / "e.jsonl", BASE + [book(100, "ask", 10000.5, 0), book(100, "ask", 10002, 7)])
    ex, market, bot = setup(path)
    assert market.next_ms() == 0
    run_until(ex, market, 0)
    assert ex.order_book(SYM, 5) == {"bids": [["9999.5", "30"], ["9999.0", "50"]],
                                     "asks": [["10000.5", "20"], ["10001.0", "40"]]}
    assert ex.mark_price(SYM) == D("10000")
    ex.place_order(bot, SYM, 1, 0, D("9999.5"), 5, None, 10)
    run_until(ex, market, 100)
    assert ex.order_book(SYM, 5) == {"bids": [["9999.5", "35"], ["9999.0", "50"]],
                                     "asks": [["10001.0", "40"], ["10002.0", "7"]]}
    assert ex.mark_price(SYM) == D("10000.25")                  # the recorded mid
    assert market.next_ms() is None


def test_trades_fill_the_bot_after_the_queue_ahead_and_book_it(tmp_path):
    rows = BASE + [trade(50, "sell", 9999.5, 20), book(50, "bid", 9999.5, 10),
                   trade(60, "sell", 9999.5, 12), book(60, "bid", 9999.5, 0),
                   trade(70, "sell", 9999, 1)]
    path = write_events(tmp_path / "e.jsonl", rows)
    ex, market, bot = setup(path)
    total = ex.total_equity()
    run_until(ex, market, 0)
    ex.place_order(bot, SYM, 1, 0, D("9999.5"), 5, None, 10)
    ex.drain_events()
    events = run_until(ex, market, 50)
    assert executions(events, bot) == []                    # 30 ahead, 20 traded
    events = run_until(ex, market, 60)
    assert executions(events, bot) == [("9999.5", 2)]       # 10 ahead left, 12 traded
    events = run_until(ex, market, 70)
    assert executions(events, bot) == [("9999.5", 1)]       # through: 1 at our price
    assert ex.position_qty(bot, SYM, 1) == (3, 3)
    trades = [e.row for e in events if e.kind == "trade"]
    assert [(t["price"], t["qty"]) for t in trades] == [("9999.5", "1")]
    assert ex.total_equity() == total                        # the ledger is conserved
    # the bot's order still shows: 2 left at 9999.5, the recorded level is gone
    assert ex.order_book(SYM, 1)["bids"] == [["9999.5", "2"]]


def test_a_bot_order_crossing_the_shown_book_takes_it(tmp_path):
    path = write_events(tmp_path / "e.jsonl", BASE + [book(500, "ask", 10001, 45)])
    ex, market, bot = setup(path)
    run_until(ex, market, 0)
    row = ex.place_order(bot, SYM, 1, 0, D("10000.5"), 25, None, 10)
    assert row["filled_qty"] == "20"
    # 5 rest at 10000.5: nothing recorded is ahead of them on the bid side
    assert market.queue.orders == {}
    run_until(ex, market, 500)
    assert market.queue.orders[int(row["order_id"])].ahead == 0
    assert ex.order_book(SYM, 1) == {"bids": [["10000.5", "5"]], "asks": [["10001.0", "45"]]}


def test_a_level_reaching_our_order_fills_it(tmp_path):
    path = write_events(tmp_path / "e.jsonl", BASE + [book(100, "ask", 10000.5, 0), book(100, "ask", 10000, 8)])
    ex, market, bot = setup(path)
    run_until(ex, market, 0)
    ex.place_order(bot, SYM, 1, 0, D("10000"), 5, None, 10)
    events = run_until(ex, market, 100)
    assert executions(events, bot) == [("10000.0", 5)]
    assert ex.order_book(SYM, 1)["asks"] == [["10000.0", "3"]]


def test_crossed_moment_in_the_recording_never_trades_lp_with_itself(tmp_path):
    # the new bid at 10000.5 arrives a millisecond before the old ask there leaves
    rows = BASE + [book(100, "bid", 10000.5, 9), book(101, "ask", 10000.5, 0)]
    path = write_events(tmp_path / "e.jsonl", rows)
    ex, market, bot = setup(path)
    events = run_until(ex, market, 100)
    assert ex.order_book(SYM, 1) == {"bids": [["9999.5", "30"]], "asks": [["10000.5", "20"]]}
    events += run_until(ex, market, 101)
    assert not [e for e in events if e.kind == "trade"]
    assert ex.order_book(SYM, 1) == {"bids": [["10000.5", "9"]], "asks": [["10001.0", "40"]]}


def test_header_tick_gzip_and_the_registry(tmp_path):
    rows = [book(0, "bid", "99", 3), book(0, "ask", "101", 4), trade(5, "buy", "101", 1)]
    path = tmp_path / "e.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps({"tick_size": 1, "symbol": "X"}) + "\n")
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    market = build("events", None, str(path))  # type: ignore[arg-type]
    assert market.tick_size == D(1) and market.events_total == 3
    ex = Exchange(ExchangeConfig())
    market.attach(ex, SYM, 1_000)
    assert market.next_ms() == 1_000
    run_until(ex, market, 10_000)
    assert ex.order_book(SYM, 1) == {"bids": [["99.0", "3"]], "asks": [["101.0", "4"]]}


def test_fractional_sizes_round_to_contracts(tmp_path):
    path = write_events(tmp_path / "e.jsonl", [book(0, "bid", 100, 0.4), book(0, "ask", 101, 2.5)])
    ex, market, _ = setup(path, tick=D(1))
    run_until(ex, market, 0)
    assert ex.order_book(SYM, 1) == {"bids": [["100.0", "1"]], "asks": [["101.0", "3"]]}


@pytest.mark.parametrize("rows,tick,message", [
    ([], D("0.5"), "no book or trade events"),
    ([book(0, "bid", 100, 1), {**book(0, "bid", 100, 1), "ts_ns": -1}], D("0.5"), "line 2: ts_ns must be"),
    ([{**book(0, "bid", 100, 1), "ts_ns": 1.5}], D("0.5"), "line 1: ts_ns must be"),
    ([book(5, "bid", 100, 1), book(4, "bid", 100, 1)], D("0.5"), "line 2: not in time order"),
    ([book(0, "bid", 100.25, 1)], D("0.5"), "line 1: price 100.25 is not a multiple of the tick size 0.5"),
    ([book(0, "buy", 100, 1)], D("0.5"), "line 1: side of a book must be 'bid' or 'ask'"),
    ([trade(0, "bid", 100, 1)], D("0.5"), "line 1: side of a trade must be 'buy' or 'sell'"),
    ([trade(0, "buy", 100, 0)], D("0.5"), "line 1: qty of a trade must be > 0"),
    ([book(0, "bid", 100, -1)], D("0.5"), "line 1: qty of a book must be >= 0"),
    ([{"ts_ns": 1, "kind": "quote"}], D("0.5"), "line 1: kind must be"),
    ([book(0, "bid", "abc", 1)], D("0.5"), "line 1: price must be a number"),
    ([book(0, "bid", 100, 1)], None, "line 1: the file gives no tick size: pass --tick"),
    ([book(0, "bid", 100, 1), {"tick_size": 1}], D("0.5"), "line 2: missing \"kind\""),
])
def test_bad_event_files_name_the_file_and_line(tmp_path, rows, tick, message):
    path = write_events(tmp_path / "bad.jsonl", rows) if rows else str(tmp_path / "bad.jsonl")
    if not rows:
        Path(path).write_text("")
    with pytest.raises(MarketError) as err:
        events_market(None, path, tick=tick)  # type: ignore[arg-type]
    assert str(err.value).startswith(path)
    assert message in str(err.value)


def test_garbled_and_missing_files(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps(book(0, "bid", 100, 1)) + '\n{"ts_ns": 5, "kind": "bo')
    with pytest.raises(MarketError, match=r"g.jsonl, line 2: not a JSON object"):
        events_market(None, str(path), tick=D(1))  # type: ignore[arg-type]
    with pytest.raises(MarketError, match="nope.jsonl: cannot read"):
        events_market(None, str(tmp_path / "nope.jsonl"), tick=D(1))  # type: ignore[arg-type]
    with pytest.raises(MarketError, match="needs a FILE"):
        events_market(None, None)  # type: ignore[arg-type]
    with pytest.raises(MarketError, match="unknown market 'nope'"):
        build("nope", None, None)  # type: ignore[arg-type]


def test_a_tick_the_simulator_cannot_show_is_refused(tmp_path):
    path = write_events(tmp_path / "e.jsonl", [book(0, "bid", "100.2", 1)])
    market = BookReplay(path, tick=D("0.1"))
    with pytest.raises(MarketError, match="not a multiple of the simulated instrument's tick size 0.5"):
        market.attach(Exchange(ExchangeConfig()), SYM, 0)
