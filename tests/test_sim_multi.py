"""The simulator serving several instruments: per-symbol tick, start price and market flow; public
tables per symbol, private tables per account across symbols."""
from decimal import Decimal

import pytest

from market_maker.gte.rest import GteRest
from market_maker.gte.signing import Credentials
from market_maker.gte.ws import GteWebSocket
from market_maker.sim import SimConfig, run_simulator
from market_maker.sim.__main__ import build_parser, config_from_args

from .sim_helpers import Rest, Ws
from .waiting import wait_until

# no price walk: the ladders stay where they start, so a far order is far from every flow quote
TWO = {"BTC_USD": {"depth_levels": 20},
       "ETH_USD": {"tick_size": "0.05", "depth_levels": 8, "level_step_ticks": 2, "taker_rate": "4",
                   "lp_mean_qty": "40"}}


def test_per_symbol_values_are_resolved_with_the_config_as_default():
    cfg = SimConfig(port=0, volatility=0, symbols={**TWO, "SOL_USD": {"asset": "BTC", "start_price": "150",
                                                                       "symbol_id": 9}})
    btc, eth, sol = cfg.instruments()
    assert (btc.symbol, btc.asset, btc.symbol_id, btc.tick_size, btc.start_price) == \
        ("BTC_USD", "BTC", 1, Decimal("0.5"), Decimal("10000"))
    assert (eth.asset, eth.symbol_id, eth.tick_size, eth.price_precision) == ("ETH", 2, Decimal("0.05"), 2)
    assert (eth.flow.symbol, eth.flow.depth_levels, eth.flow.level_step_ticks, eth.flow.taker_rate) == \
        ("ETH_USD", 8, 2, Decimal("4"))
    assert btc.flow.depth_levels == 20 and btc.flow.taker_rate == Decimal("2")
    assert eth.flow.volatility == btc.flow.volatility == Decimal(0)
    assert (sol.asset, sol.symbol_id, sol.start_price) == ("BTC", 9, Decimal("150"))
    assert SimConfig().instruments()[0].symbol == "BTC_USD"  # no table: the one symbol of the config


@pytest.mark.parametrize("symbols, named", [
    ({"ETH_USD": {"tick": "0.05"}}, "unknown key 'tick'"),
    ({"ETH_USD": {"tick_size": "-1"}}, "tick_size and start_price must be > 0"),
    ({"ETH_USD": {"depth_levels": "many"}}, "symbols['ETH_USD']['depth_levels'] must be a whole number"),
    ({"ETHUSD": {}}, "'ETHUSD' is not a symbol"),
    ({"BTC_USD": {"symbol_id": 2}, "ETH_USD": {}}, "share a symbol_id"),
    (["BTC_USD"], "symbols must map each symbol"),
])
def test_a_bad_symbol_table_names_what_is_wrong(symbols, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        SimConfig(symbols=symbols)


def test_the_command_line_takes_instruments():
    args = build_parser().parse_args(["--instrument", "BTC_USD", "--instrument",
                                      "ETH_USD:tick_size=0.05,start_price=300"])
    eth = config_from_args(args).instruments()[1]
    assert (eth.symbol, eth.tick_size, eth.start_price, eth.asset) == ("ETH_USD", Decimal("0.05"),
                                                                       Decimal("300"), "ETH")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--instrument", "ETH_USD:tick_size"])
    twice = build_parser().parse_args(["--instrument", "ETH_USD", "--instrument", "ETH_USD:start_price=300"])
    with pytest.raises(ValueError, match="given twice"):
        config_from_args(twice)


def _client(sim, symbol, asset):
    creds = Credentials(sim.api_key, sim.api_secret)
    rest = GteRest(sim.base_url, creds, asset=asset, symbol=symbol, order_id_prefix="t")
    ws = GteWebSocket(sim.ws_url, symbol, asset, creds, rest=rest)
    ws.start()
    return rest, ws


def test_two_symbols_each_with_its_own_book_flow_and_orders():
    with run_simulator(SimConfig(port=0, seed=3, volatility=0, symbols=TWO)) as sim:
        btc_rest, btc_ws = _client(sim, "BTC_USD", "BTC")
        eth_rest, eth_ws = _client(sim, "ETH_USD", "ETH")
        try:
            assert wait_until(lambda: btc_ws.synced and eth_ws.synced, 20)
            # the paper account holds the balance in each settle currency
            assert {m.settle_currency: m.total for m in btc_rest.pc_accounts()} == \
                {"BTC": Decimal(10), "ETH": Decimal(10)}
            # each book is its own flow's ladder, on its own tick
            # (a taker may have swept a level the ladder has not yet put back: wait for a full one)
            def depth(rest):
                book = rest.order_book(50)
                return len(book.bids), len(book.asks)
            # (polled gently: public calls share the simulator's per-address rate limit)
            assert wait_until(lambda: depth(btc_rest) == (20, 20), 20, interval=0.25)
            assert wait_until(lambda: depth(eth_rest) == (8, 8), 20, interval=0.25)
            btc_book, eth_book = btc_rest.order_book(50), eth_rest.order_book(50)
            assert all(p % Decimal("0.5") == 0 for p, _ in btc_book.bids + btc_book.asks)
            assert any(p % Decimal("0.5") != 0 for p, _ in eth_book.bids + eth_book.asks)
            # each symbol has its own takers
            assert wait_until(lambda: btc_rest.trades(5) and eth_rest.trades(5), 20, interval=0.25)
            # one account, an order on each symbol, both far below every flow quote
            eth_order = eth_rest.create_order("buy", Decimal("9500.05"), 7, client_oid="teth1")
            btc_order = btc_rest.create_order("buy", Decimal("9400.5"), 5, client_oid="tbtc1")

            def seen(ws, order):
                return any(o.order_id == order.order_id for o in ws.snapshot().orders)
            assert wait_until(lambda: seen(eth_ws, eth_order) and seen(btc_ws, btc_order), 20)
            # each client's book and open orders hold its own symbol only
            # (each book message reaches its own client in its own time: wait for both)
            assert wait_until(lambda: (Decimal("9500.05"), 7) in eth_ws.snapshot().book.bids, 20)
            assert wait_until(lambda: (Decimal("9400.5"), 5) in btc_ws.snapshot().book.bids, 20)
            assert not seen(btc_ws, eth_order) and not seen(eth_ws, btc_order)
            assert all(p != Decimal("9500.05") for p, _ in btc_ws.snapshot().book.bids)
            assert all(p != Decimal("9400.5") for p, _ in eth_ws.snapshot().book.bids)
            # REST order queries are per symbol too
            assert [o.order_id for o in eth_rest.open_orders()] == [eth_order.order_id]
            assert [o.order_id for o in btc_rest.open_orders()] == [btc_order.order_id]
        finally:
            btc_ws.stop()
            eth_ws.stop()
            btc_rest.close()
            eth_rest.close()


def test_private_tables_cover_every_symbol_of_the_settle_currency_and_the_client_keeps_its_own():
    symbols = {"BTC_USD": {}, "BTC_EUR": {"asset": "BTC"}, "ETH_USD": {"tick_size": "0.05"}}
    with run_simulator(SimConfig(port=0, flow=False, symbols=symbols)) as sim:
        rest = Rest(sim.base_url, sim.api_key, sim.api_secret)
        for symbol, asset, price in (("BTC_USD", "BTC", "9000.5"), ("BTC_EUR", "BTC", "9001.0"),
                                     ("ETH_USD", "ETH", "9002.05")):
            reply = rest.post("/v1/api/pc/order/create", {
                "asset": asset, "symbol": symbol, "side": "1", "close_flag": "0", "price": price, "qty": "3",
                "order_type": "1", "client_oid": f"o-{symbol}"})
            assert reply["code"] == 0, reply
        raw = Ws(sim.ws_url)
        btc_rest, btc_ws = _client(sim, "BTC_USD", "BTC")
        try:
            assert raw.auth(sim.api_key, sim.api_secret)["status"] == "0"
            raw.sub("order", None)  # private: no symbol, one settle currency
            partial = raw.table("order", "partial")
            assert sorted(r["symbol"] for r in partial["data"]) == ["BTC_EUR", "BTC_USD"]
            assert wait_until(lambda: btc_ws.synced, 20)
            assert [o.client_oid for o in btc_ws.snapshot().orders] == ["o-BTC_USD"]
        finally:
            raw.close()
            btc_ws.stop()
            btc_rest.close()
