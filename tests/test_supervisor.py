"""The multi-symbol supervisor: pure parts, bad input at start, and two bot processes on the simulator (one
killed with SIGKILL and restarted; the account-level kill switch stopping both)."""
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_maker import cli
from market_maker.models import Margin
from market_maker.ops.supervisor import (Supervisor, account_breach, child_prefixes, exchange_listing,
                                         next_backoff, resolve_symbols)
from market_maker.gte.rest import GteRest
from market_maker.runner import EXIT_KILL_SWITCH, EXIT_SETTINGS
from market_maker.settings import SettingsError, load_settings
from market_maker.sim import SimConfig, run_simulator

from .waiting import wait_until

_CODE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ROOT = Path(__file__).resolve().parent.parent
SYMBOL = st.builds("{}_{}".format, st.text(_CODE, min_size=1, max_size=8), st.text(_CODE, min_size=1, max_size=6))


# ---------------------------------------------------------------------------------------------------- pure parts

@given(st.lists(SYMBOL, min_size=1, max_size=12, unique=True), st.sampled_from(["mm_", "m", "bot_a_"]))
def test_no_bot_prefix_is_a_prefix_of_another(symbols, prefix):
    prefixes = child_prefixes(prefix, symbols)
    assert set(prefixes) == set(symbols) and len(set(prefixes.values())) == len(symbols)
    for a in prefixes.values():
        assert a.startswith(prefix) and len(a) <= 13
        assert not any(b != a and b.startswith(a) for b in prefixes.values())


def test_symbol_letters_name_the_prefix_and_a_long_prefix_is_refused():
    assert child_prefixes("mm_", ["BTC_USD", "ETH_USD"]) == {"BTC_USD": "mm_BTCUSD-", "ETH_USD": "mm_ETHUSD-"}
    assert child_prefixes("mm_", ["BTC_USDTXYZ", "BTC_USDTXYW"]) == {"BTC_USDTXYZ": "mm_0-", "BTC_USDTXYW": "mm_1-"}
    with pytest.raises(SettingsError, match="ORDERID_PREFIX"):
        child_prefixes("thirteen_char", ["BTC_USD"])


def _margin(asset, total, order_margin="0", pos_margin="0"):
    return Margin(asset, Decimal(total), Decimal(0), Decimal(order_margin), Decimal(pos_margin))


def test_account_breach_drawdown_and_margin_usage():
    start = {"BTC": Decimal("10"), "ETH": Decimal("5")}
    ok = [_margin("BTC", "9.6", "1.9"), _margin("ETH", "5.2")]
    assert account_breach(start, ok, Decimal("0.5"), Decimal("0.2")) is None
    at_limit = [_margin("BTC", "9.51"), _margin("ETH", "4.5")]
    assert "ETH equity 4.5 is 0.5 below" in account_breach(start, at_limit, Decimal("0.5"), Decimal(0))
    assert account_breach(start, at_limit, Decimal(0), Decimal(0)) is None  # both checks off
    used = [_margin("BTC", "10", "1", "1.5")]
    assert "margin in use is 25.0 %" in account_breach(start, used, Decimal(0), Decimal("0.2"))
    assert account_breach(start, used, Decimal(0), Decimal("0.25")) is None
    assert "infinite" in account_breach(start, [_margin("BTC", "0", "1")], Decimal(0), Decimal("0.9"))
    assert account_breach(start, [_margin("SOL", "0", "1")], Decimal("1"), Decimal("0.9")) is None  # not ours


def test_restart_backoff_doubles_up_to_the_limit_and_resets_after_a_stable_run():
    waits, previous = [], 0.0
    for _ in range(8):
        previous = next_backoff(previous, 2.0, 30.0)
        waits.append(previous)
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert next_backoff(30.0, 61.0, 30.0) == 1


def test_symbols_resolve_to_their_settle_currency_and_an_unlisted_one_is_named():
    listing = {"BTC": ["BTC_USD", "ETH_USD"], "ETH": ["ETH_USD"]}
    assert resolve_symbols(listing, ["ETH_USD"], "ETH") == {"ETH_USD": "ETH"}
    assert resolve_symbols(listing, ["ETH_USD", "BTC_USD"], "BTC") == {"ETH_USD": "BTC", "BTC_USD": "BTC"}
    with pytest.raises(SettingsError, match=r"SYMBOLS: XRP_USD is not listed by the exchange \(it lists BTC_USD, "
                                            r"ETH_USD\)"):
        resolve_symbols(listing, ["BTC_USD", "XRP_USD"], "BTC")


# ---------------------------------------------------------------------------------------------------- bad input

def _settings_file(tmp_path, **values):
    lines = ["from decimal import Decimal"] + [f"{k} = {v!r}" for k, v in values.items()]
    path = tmp_path / "settings.py"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_symbol_the_exchange_does_not_list_stops_the_start_with_exit_2(tmp_path):
    path = _settings_file(tmp_path, SIM_SYMBOLS={"BTC_USD": {}, "ETH_USD": {"tick_size": "0.05"}},
                          SUPERVISOR_LOG_DIR=str(tmp_path / "logs"))
    proc = subprocess.run([sys.executable, str(ROOT / "marketmaker"), "--settings", path, "--symbols",
                           "BTC_USD,XRP_USD"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == EXIT_SETTINGS, proc.stdout + proc.stderr
    assert "SYMBOLS: XRP_USD is not listed by the exchange (it lists BTC_USD, ETH_USD)" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "logs").exists()  # no bot was started


@pytest.mark.parametrize("argv, named", [
    (["--symbols", "BTC_USD,BTC_USD"], "SYMBOLS"),
    (["--symbols", "btc"], "SYMBOLS"),
    (["--set", "NO_SUCH_SETTING=1"], "--set: unknown setting NO_SUCH_SETTING"),
    (["--set", "MAX_MARGIN_USAGE=2"], "MAX_MARGIN_USAGE"),
])
def test_bad_supervisor_input_names_the_setting(tmp_path, capsys, argv, named):
    with pytest.raises(SystemExit) as exit_:
        cli.run(["--settings", _settings_file(tmp_path)] + argv)
    assert exit_.value.code == EXIT_SETTINGS
    assert named in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- on the simulator

BOT = dict(ORDER_PAIRS=2, ORDER_START_SIZE=10, ORDER_STEP_SIZE=10, INTERVAL=Decimal("0.002"),
           MIN_SPREAD=Decimal("0.002"), LOOP_INTERVAL=1, MAX_MARGIN_USAGE=Decimal("0.3"))
MARKETS = {"BTC_USD": {}, "ETH_USD": {"tick_size": "0.05", "start_price": "300", "taker_rate": "1"}}


def _open_orders(sim):
    return sim.call(lambda ex: ex.open_orders_of(sim.account_id))


def _check_owned(orders, children):
    """Every open order belongs to the live bot of its symbol, and no two sit at one level (a level split
    into its close and open parts is two orders of one price: close_flag tells them apart)."""
    live = {c.symbol: c.prefix for c in children if c.alive}
    levels = [(o["symbol"], o["side"], o["price"], o["close_flag"]) for o in orders]
    assert len(levels) == len(set(levels)), orders
    for o in orders:
        assert o["symbol"] in live and o["client_oid"].startswith(live[o["symbol"]]), (o, live)


def test_two_bots_one_killed_and_restarted_then_the_account_kill_switch_stops_both(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="market_maker.supervisor")
    config = SimConfig(port=0, seed=11, volatility=Decimal("0.0002"), symbols=MARKETS)
    with run_simulator(config) as sim:
        path = _settings_file(tmp_path, SUPERVISOR_LOG_DIR=str(tmp_path / "logs"), **BOT)
        settings = load_settings(path, overrides={"BASE_URL": sim.base_url, "WS_URL": sim.ws_url,
                                                  "API_KEY": sim.api_key, "API_SECRET": sim.api_secret,
                                                  "SYMBOLS": "BTC_USD,ETH_USD"}, environ={})
        with GteRest(sim.base_url, None) as public:
            symbols = resolve_symbols(exchange_listing(public), settings.SYMBOLS, settings.SETTLECURRENCY)
        assert symbols == {"BTC_USD": "BTC", "ETH_USD": "ETH"}
        sup = Supervisor(settings, symbols, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret,
                         settings_path=path)
        result, violations, watching = {}, [], threading.Event()

        def monitor():  # all along, not only at the checkpoints: never two orders at a level, none unowned
            prefixes = tuple(c.prefix for c in sup.children)
            while not watching.wait(0.1):
                orders = _open_orders(sim)
                levels = [(o["symbol"], o["side"], o["price"], o["close_flag"]) for o in orders]
                if len(levels) != len(set(levels)) or not all(o["client_oid"].startswith(prefixes) for o in orders):
                    violations.append(orders)
        watcher = threading.Thread(target=monitor)
        watcher.start()
        thread = threading.Thread(target=lambda: result.setdefault("code", sup.run(duration=120)))
        thread.start()
        try:
            btc, eth = sup.children

            def quoting(child):
                return sum(1 for o in _open_orders(sim) if o["client_oid"].startswith(child.prefix)) >= 2
            assert wait_until(lambda: quoting(btc) and quoting(eth), 40, interval=0.1), _open_orders(sim)
            _check_owned(_open_orders(sim), sup.children)

            # SIGKILL the ETH bot: its orders are cancelled for it, it comes back with a new run tag
            killed = eth.proc.pid
            old_tags = {o["client_oid"][:len(eth.prefix) + 6] for o in _open_orders(sim)
                        if o["client_oid"].startswith(eth.prefix)}
            os.kill(killed, signal.SIGKILL)

            def back():
                orders = [o for o in _open_orders(sim) if o["client_oid"].startswith(eth.prefix)]
                return (eth.alive and eth.proc.pid != killed and len(orders) >= 2
                        and not any(o["client_oid"].startswith(tuple(old_tags)) for o in orders))
            assert wait_until(back, 40, interval=0.1), (eth, _open_orders(sim))
            assert eth.restarts == 1 and btc.restarts == 0 and btc.alive
            assert "open orders the ETH_USD bot left" in caplog.text  # cancelled at once, not left to the new run
            _check_owned(_open_orders(sim), sup.children)

            # the account's ETH equity shrinks below the margin its orders use: every bot stops (read and moved in
            # one step on the simulator's loop: a bot's order in between would make the amount unavailable)
            def transfer_all_but_a_little(ex):
                free = Decimal(ex.pc_account_rows(sim.account_id, "ETH")[0]["available"]) - Decimal("0.005")
                ex.transfer(sim.account_id, "ETH", 2, 1, free)
            sim.call(transfer_all_but_a_little)
            thread.join(60)
            assert not thread.is_alive()
        finally:
            sup.stop()
            thread.join(60)
            watching.set()
            watcher.join(10)
        assert violations == []
        assert result["code"] == EXIT_KILL_SWITCH
        assert "MAX_MARGIN_USAGE" in sup.stop_reason and "ETH" in sup.stop_reason
        assert all(c.proc is None or c.proc.poll() is not None for c in sup.children)
        assert _open_orders(sim) == []
    logs = {c.symbol: c.log_path.read_text() for c in sup.children}
    assert "Summary:" in logs["BTC_USD"]  # it cancelled and exited on SIGTERM
    assert logs["ETH_USD"].count("authenticating") >= 2  # two runs in one log
    assert sim.api_secret not in logs["BTC_USD"] + logs["ETH_USD"]


# ---------------------------------------------------------------------------------------------------- exit statuses

FAKE_BOT = """#!/bin/sh
# stands in for `python -m market_maker.cli`: behaves by the symbol it is given
case "$*" in
  *\\'ETH_USD\\'*) exit "$ETH_EXIT" ;;
  *) trap 'exit 0' TERM; while :; do sleep 0.05; done ;;
esac
"""


@pytest.fixture
def fake_bot(tmp_path):
    script = tmp_path / "fake-bot"
    script.write_text(FAKE_BOT)
    script.chmod(0o755)
    return str(script)


def _fake_supervisor(tmp_path, fake_bot, **values):
    settings = load_settings(overrides={"BASE_URL": "http://127.0.0.1:9", "WS_URL": "ws://127.0.0.1:9/ws",
                                        "DRY_RUN": True, "SUPERVISOR_LOG_DIR": str(tmp_path / "logs"),
                                        "SYMBOLS": "BTC_USD,ETH_USD", **values}, environ={}, cwd=tmp_path)
    return Supervisor(settings, {"BTC_USD": "BTC", "ETH_USD": "ETH"}, settings.BASE_URL, settings.WS_URL, None,
                      None, python=fake_bot)


@pytest.mark.parametrize("code", [EXIT_SETTINGS, EXIT_KILL_SWITCH])
def test_a_bot_that_refuses_its_settings_or_hits_its_kill_switch_stops_every_bot(tmp_path, fake_bot, monkeypatch,
                                                                                    code):
    monkeypatch.setenv("ETH_EXIT", str(code))
    sup = _fake_supervisor(tmp_path, fake_bot)
    assert sup.run(duration=60) == code
    assert "the ETH_USD bot" in sup.stop_reason and f"exit status {code}" in sup.stop_reason
    btc = sup.children[0]
    assert btc.proc.returncode == 0  # it was sent SIGTERM and exited


def test_a_crashing_bot_is_restarted_with_backoff_and_the_others_keep_running(tmp_path, fake_bot, monkeypatch):
    monkeypatch.setenv("ETH_EXIT", "1")
    sup = _fake_supervisor(tmp_path, fake_bot, SUPERVISOR_MAX_BACKOFF=0.1)
    thread = threading.Thread(target=lambda: sup.run(duration=60))
    thread.start()
    try:
        assert wait_until(lambda: sup.children[1].restarts >= 3, 30)
        btc = sup.children[0]
        assert btc.alive and btc.restarts == 0
        assert sup.children[1].backoff == pytest.approx(0.1)
        assert "ETH_USD" in sup.status_line() and "restarts" in sup.status_line()
    finally:
        sup.stop()
        thread.join(30)
    assert not thread.is_alive()


def test_the_bots_cancel_and_stop_when_the_supervisor_is_killed(tmp_path):
    """Through the launcher, against a running exchange: SIGKILL of the supervisor reaches every bot as SIGTERM."""
    psutil = pytest.importorskip("psutil")
    config = SimConfig(port=0, seed=12, volatility=Decimal("0.0002"), symbols=MARKETS)
    with run_simulator(config) as sim:
        path = _settings_file(tmp_path, SUPERVISOR_LOG_DIR=str(tmp_path / "logs"), **BOT)
        env = {**os.environ, "GTE_API_KEY": sim.api_key, "GTE_API_SECRET": sim.api_secret}
        proc = subprocess.Popen([sys.executable, str(ROOT / "marketmaker"), "--settings", path, "--symbols",
                                 "BTC_USD,ETH_USD", "--set", f"BASE_URL={sim.base_url}", "--set",
                                 f"WS_URL={sim.ws_url}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            def quoting():
                prefixes = [o["client_oid"][:10] for o in _open_orders(sim)]
                return prefixes.count("mm_BTCUSD-") >= 2 and prefixes.count("mm_ETHUSD-") >= 2
            assert wait_until(quoting, 40, interval=0.1), _open_orders(sim)
            bots = psutil.Process(proc.pid).children()
            assert len(bots) == 2
            proc.kill()
            proc.wait(10)
            gone, alive = psutil.wait_procs(bots, timeout=40)
            assert not alive
            assert wait_until(lambda: _open_orders(sim) == [], 20), _open_orders(sim)
        finally:
            if proc.poll() is None:
                proc.kill()
            out = proc.communicate(timeout=10)[0].decode()
            for bot in locals().get("bots", []):
                if bot.is_running():
                    bot.kill()  # never leave a bot behind, whatever failed
    assert "Supervising 2 bots: BTC_USD (BTC, orders mm_BTCUSD-*), ETH_USD (ETH, orders mm_ETHUSD-*)" in out
    assert sim.api_secret not in out
    for symbol in ("BTC_USD", "ETH_USD"):
        assert "Summary:" in (tmp_path / "logs" / f"{symbol}.log").read_text()  # each cancelled and exited


# ---------------------------------------------------------------------------------------------------- --set

@pytest.mark.parametrize("text, expected", [
    ("LEVERAGE=5", ("LEVERAGE", 5)), ("SYMBOL=ETH_USD", ("SYMBOL", "ETH_USD")), ("SYMBOLS=None", ("SYMBOLS", None)),
    ("BASE_URL=http://127.0.0.1:8765", ("BASE_URL", "http://127.0.0.1:8765")),
    ("ORDERID_PREFIX='123'", ("ORDERID_PREFIX", "123")), ("SYMBOLS=['A_B', 'C_D']", ("SYMBOLS", ["A_B", "C_D"])),
])
def test_set_reads_values_as_a_settings_file_does_and_bare_words_as_strings(text, expected):
    assert cli._assignment(text) == expected


def test_set_overrides_survive_a_settings_reload(tmp_path):
    path = _settings_file(tmp_path, ORDER_PAIRS=3)
    overrides = {"SYMBOL": "ETH_USD", "ORDERID_PREFIX": "mm_ETHUSD-"}
    settings = load_settings(path, overrides={**overrides, "DRY_RUN": True}, environ={})
    kept = cli.build_runner(settings, "http://127.0.0.1:9", "ws://127.0.0.1:9/ws", None, None, settings_path=path,
                            set_overrides=overrides)
    lost = cli.build_runner(settings, "http://127.0.0.1:9", "ws://127.0.0.1:9/ws", None, None, settings_path=path)
    assert kept.reload() and kept.settings.SYMBOL == "ETH_USD" and kept.settings.ORDERID_PREFIX == "mm_ETHUSD-"
    assert not lost.reload()  # "changing SYMBOL needs a restart": the reload is refused
