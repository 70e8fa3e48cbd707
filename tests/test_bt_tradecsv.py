"""``trades-csv``: BitMEX dumps and plain 4-column files drive the reference price and the takers
of the simulator's liquidity model."""
from __future__ import annotations

import gzip
from decimal import Decimal as D

import pytest

from market_maker.backtest.market import MarketError, build
from market_maker.backtest.tradecsv import TradeCsvReader, parse_time_ms, trades_csv_market
from market_maker.sim.exchange import Exchange, ExchangeConfig

BITMEX = """timestamp,symbol,side,size,price,tickDirection,trdMatchID,grossValue,homeNotional,foreignNotional
2019-10-01D00:00:04.095439000,XBTUSD,Sell,150,10000,ZeroMinusTick,0a,1,0.01,150
2019-10-01D00:00:04.095439000,ETHUSD,Buy,9,180.05,PlusTick,0b,1,1,1
2019-10-01D00:00:05.500000000,XBTUSD,Buy,40,10002.5,PlusTick,0c,1,1,40
2019-10-01D00:00:09.000000000,XBTUSD,Buy,75,10010,PlusTick,0d,1,1,75
"""


def test_time_formats():
    assert parse_time_ms("2019-10-01D00:00:04.095439000") == 1569888004095
    assert parse_time_ms("2019-10-01T00:00:04Z") == 1569888004000
    assert parse_time_ms("2019-10-01 00:00:04.5+01:00") == 1569888004500 - 3_600_000
    assert parse_time_ms("1569888004") == 1569888004000
    assert parse_time_ms("1569888004095") == 1569888004095
    assert parse_time_ms("1569888004095439") == 1569888004095
    assert parse_time_ms("1569888004095439000") == 1569888004095
    with pytest.raises(ValueError):
        parse_time_ms("yesterday")


def test_bitmex_dump_drives_price_and_takers(tmp_path):
    path = tmp_path / "trades.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(BITMEX)
    market = build("trades-csv", None, str(path))  # type: ignore[arg-type]
    assert (market.symbol_in_file, market.trades_total, market.start_price) == ("XBTUSD", 3, D(10000))
    ex = Exchange(ExchangeConfig())
    market.attach(ex, "BTC_USD", 5_000)
    taker = market.flow.taker
    steps, taken = [], []
    while market.next_ms() is not None:
        now = market.next_ms()
        steps.append(now)
        market.step(now)
        for e in ex.drain_events():
            if e.kind == "execution" and e.account_id == taker:
                taken.append((now, e.row["side"], int(e.row["last_qty"])))
        if now == 5_000:
            assert ex.mark_price("BTC_USD") == D(10000)
            bid, ask = ex.best_prices("BTC_USD")
            assert bid < D(10000) < ask
    # trades at +0, +1.405 s, +4.905 s; the LPs move at least every second in between
    assert steps == [5_000, 6_000, 6_405, 7_405, 8_405, 9_405, 9_905]
    assert ex.mark_price("BTC_USD") == D(10010)
    by_time: dict = {}
    for now, side, qty in taken:
        by_time.setdefault((now, side), 0)
        by_time[(now, side)] += qty
    assert by_time == {(5_000, "0"): 150, (6_405, "1"): 40, (9_905, "1"): 75}


def test_plain_layouts(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("1700000000000,buy,3,100.5\n1700000000500,SELL,2.4,100\n")
    reader = TradeCsvReader(str(path))
    assert [(t.ts_ms, t.side, t.qty, t.price) for t in reader] == [
        (1700000000000, 1, 3, D("100.5")), (1700000000500, 0, 2, D(100))]
    path.write_text("timestamp,side,size,price\n2023-11-14T22:13:20Z,Buy,1,100\n")
    assert [t.ts_ms for t in TradeCsvReader(str(path))] == [1700000000000]


@pytest.mark.parametrize("text,message", [
    ("", "no trades (empty file?)"),
    ("timestamp,side,size,price\n", "no trades"),
    ("a,b\n", "line 1: unknown layout"),
    ("1700000000000,buy,3,100\n1600000000000,buy,3,100\n", "line 2: not in time order"),
    ("1700000000000,buy,3,100\n1700000000001,hold,3,100\n", "line 2: side must be Buy or Sell"),
    ("1700000000000,buy,0,100\n", "line 1: size must be greater than 0"),
    ("1700000000000,buy,3,-1\n", "line 1: price must be greater than 0"),
    ("1700000000000,buy,x,1\n", "line 1: size and price must be numbers"),
    ("1700000000000,buy,3,100\n1700000000001,buy\n", "line 2: too few columns"),
    ("timestamp,side,size,price\nnoon,buy,1,1\n", "line 2: bad timestamp 'noon'"),
])
def test_bad_csv_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(MarketError) as err:
        trades_csv_market(None, str(path))  # type: ignore[arg-type]
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_truncated_gzip_csv(tmp_path):
    rows = "".join(f"{1700000000000 + i},buy,{i % 7 + 1},{100 + i % 3}\n" for i in range(3000))
    data = gzip.compress(rows.encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[:-30])
    with pytest.raises(MarketError, match="cut.csv.gz: truncated or corrupt compressed file"):
        trades_csv_market(None, str(path))  # type: ignore[arg-type]
