"""``marketmaker record``: a short recording of the embedded simulator, replayed on an Exchange;
the tap's stream handling; truncated and foreign recordings."""
from __future__ import annotations

import gzip
import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from market_maker import commands
from market_maker.backtest.eventfile import EventReader
from market_maker.backtest.market import MarketError
from market_maker.backtest.record import StreamTap, main
from market_maker.backtest.replay import BookReplay, replay_market
from market_maker.sim.exchange import Exchange, ExchangeConfig


def test_record_the_simulator_then_replay_it(tmp_path):
    settings = tmp_path / "settings.py"
    settings.write_text("BASE_URL = None\nSIM_SPEED = 10\nSIM_TAKER_RATE = 5\n")
    out = tmp_path / "rec.jsonl.gz"
    assert commands.find(["record"]) is main
    assert main(["--out", str(out), "--duration", "3", "--settings", str(settings)]) == 0
    assert out.exists() and not Path(str(out) + ".part").exists()
    lines = [json.loads(x) for x in gzip.open(out, "rt")]
    assert lines[0]["format"] == "marketmaker-recording" and lines[0]["tick_size"] == "0.5"
    assert lines[1]["kind"] == "reset"
    assert lines[-1]["end"] is True and lines[-1]["events"] == len(lines) - 2
    kinds = {x.get("kind") for x in lines[1:-1]}
    assert kinds == {"reset", "book", "trade"}, kinds        # 10x speed, 5 takers/s: trades in 3 s
    # replayed: the shown book is the recorded one at the end
    market = replay_market(None, str(out))  # type: ignore[arg-type]
    ex = Exchange(ExchangeConfig())
    market.attach(ex, "BTC_USD", 0)
    while market.next_ms() is not None:
        market.step(market.next_ms())
        ex.drain_events()
    book: dict = {}
    for x in lines[1:-1]:
        if x["kind"] == "reset":
            book = {}
        elif x["kind"] == "book":
            key = (x["side"], D(x["price"]))
            book[key] = int(x["qty"])
            if not book[key]:
                del book[key]
    shown = ex.order_book("BTC_USD", 1000)
    # a level the recording shows crossing the other side (it stopped inside a sweep) is held back
    held = {("bid" if side == 1 else "ask", ticks * D("0.5")) for side, ticks in market._waiting}
    assert {("bid", D(p)): int(q) for p, q in shown["bids"]} | {("ask", D(p)): int(q) for p, q in shown["asks"]} \
        == {k: v for k, v in book.items() if k not in held}
    assert len(held) <= 1


def test_tap_snapshots_updates_deletes_trades_and_gaps():
    tap = StreamTap("BTC_USD")
    row = {"id": "1", "symbol": "BTC_USD", "side": "buy", "price": "100.5", "size": "3"}
    assert tap.feed(json.dumps({"table": "order_book", "action": "update", "seq": 1, "data": [row]}), 5) == []
    events = tap.feed(json.dumps({"table": "order_book", "action": "partial", "seq": 1, "data": [row]}), 10)
    assert events == [{"ts_ns": 10, "kind": "reset"},
                      {"ts_ns": 10, "kind": "book", "side": "bid", "price": "100.5", "qty": 3}]
    upd = {"table": "order_book", "action": "update", "seq": 2, "data": [{"id": "1", "size": "7"}]}
    assert tap.feed(json.dumps(upd), 9) == [{"ts_ns": 10, "kind": "book", "side": "bid", "price": "100.5",
                                             "qty": 7}]
    dele = {"table": "order_book", "action": "delete", "seq": 3, "data": [{"id": "1"}]}
    assert tap.feed(json.dumps(dele), 11)[0]["qty"] == 0
    gap = {"table": "order_book", "action": "update", "seq": 9, "data": [row]}
    assert tap.feed(json.dumps(gap), 12) == [] and tap.gaps == 1
    assert tap.feed(json.dumps({**gap, "seq": 10}), 13) == []           # stale until the next partial
    tr = {"table": "trade", "action": "partial", "seq": 1, "data": [{"side": "buy", "price": "1", "qty": "1"}]}
    assert tap.feed(json.dumps(tr), 14) == []
    tr = {"table": "trade", "action": "insert", "seq": 2,
          "data": [{"symbol": "BTC_USD", "side": "sell", "price": "100", "qty": "2"},
                   {"symbol": "ETH_USD", "side": "sell", "price": "1", "qty": "2"}]}
    assert tap.feed(json.dumps(tr), 15) == [{"ts_ns": 15, "kind": "trade", "side": "sell", "price": "100",
                                             "qty": 2}]
    assert tap.feed("not json", 16) == [] and tap.feed('{"op":"pong"}', 16) == []


def _recording(path: Path, lines: list, end: bool = True, cut: int = 0) -> str:
    body = [{"format": "marketmaker-recording", "version": 1, "tick_size": "0.5"}] + lines
    if end:
        body.append({"end": True, "events": len(lines)})
    data = gzip.compress(("\n".join(json.dumps(x) for x in body) + "\n").encode())
    path.write_bytes(data[:len(data) - cut] if cut else data)
    return str(path)


EV = [{"ts_ns": 1, "kind": "reset"}, {"ts_ns": 1, "kind": "book", "side": "bid", "price": "99.5", "qty": 1}]


def test_bad_recordings(tmp_path):
    assert BookReplay(_recording(tmp_path / "ok.gz", EV), recording=True).events_total == 2
    with pytest.raises(MarketError, match=r"a.gz: truncated recording: no end line"):
        replay_market(None, _recording(tmp_path / "a.gz", EV, end=False))  # type: ignore[arg-type]
    with pytest.raises(MarketError, match=r"b.gz: truncated or corrupt compressed file"):
        replay_market(None, _recording(tmp_path / "b.gz", EV, cut=12))  # type: ignore[arg-type]
    with pytest.raises(MarketError, match=r"c.gz: no book or trade events"):
        replay_market(None, _recording(tmp_path / "c.gz", []))  # type: ignore[arg-type]
    plain = tmp_path / "d.jsonl"
    plain.write_text(json.dumps(EV[1]) + "\n")
    with pytest.raises(MarketError, match=r"d.jsonl, line 1: not a recording"):
        replay_market(None, str(plain))  # type: ignore[arg-type]
    other = tmp_path / "e.jsonl"
    other.write_text(json.dumps({"format": "other", "version": 1}) + "\n")
    with pytest.raises(MarketError, match=r"e.jsonl, line 1: unknown format 'other'"):
        replay_market(None, str(other))  # type: ignore[arg-type]
    newer = tmp_path / "f.jsonl"
    newer.write_text(json.dumps({"format": "marketmaker-recording", "version": 2}) + "\n")
    with pytest.raises(MarketError, match=r"f.jsonl, line 1: recording version 2 is not supported"):
        replay_market(None, str(newer))  # type: ignore[arg-type]
    after = _recording(tmp_path / "g.gz", EV)
    with gzip.open(after, "at") as fh:
        fh.write(json.dumps(EV[1]) + "\n")
    with pytest.raises(MarketError, match=r"g.gz, line 5: data after the recording's end line"):
        list(EventReader(after, recording=True))


def test_record_refuses_bad_arguments(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "no" / "x.gz"), "--duration", "1"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x.gz"), "--duration", "-1"]) == 2
    bad = tmp_path / "s.py"
    bad.write_text("ORDER_PAIRS = 'many'\n")
    assert main(["--out", str(tmp_path / "x.gz"), "--settings", str(bad)]) == 2
    assert "bad settings" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.gz*"))


def test_a_new_snapshot_keeps_our_queue_place_and_drops_what_it_does_not_repeat(tmp_path):
    def lv(ms: int, side: str, price: str, qty: int) -> dict:
        return {"ts_ns": ms * 1_000_000, "kind": "book", "side": side, "price": price, "qty": qty}
    lines = [{"ts_ns": 0, "kind": "reset"}, lv(0, "bid", "99.5", 30), lv(0, "bid", "99", 5), lv(0, "ask", "100", 9),
             {"ts_ns": 50_000_000, "kind": "reset"}, lv(50, "bid", "99.5", 40), lv(50, "ask", "100", 9),
             {"ts_ns": 60_000_000, "kind": "trade", "side": "sell", "price": "99.5", "qty": 31}]
    market = replay_market(None, _recording(tmp_path / "r.gz", lines))  # type: ignore[arg-type]
    ex = Exchange(ExchangeConfig())
    bot = ex.open_account("bot", D(10))
    market.attach(ex, "BTC_USD", 0)
    market.step(0)
    row = ex.place_order(bot, "BTC_USD", 1, 0, D("99.5"), 4, None, 1)
    market.step(50)
    assert ex.order_book("BTC_USD", 5)["bids"] == [["99.5", "44"]]      # 99 was not repeated: gone
    assert market.queue.orders[int(row["order_id"])].ahead == 30         # the 10 new ones are behind us
    ex.drain_events()
    market.step(60)
    fills = [e.row for e in ex.drain_events() if e.kind == "execution" and e.account_id == bot]
    assert [(f["last_price"], f["last_qty"]) for f in fills] == [("99.5", "1")]
