"""The journal of real runs of the bot on the simulator: equal to the exchange's books (fills, fees, funding),
the report on it, fills lost by the socket, and the crash-resume (kill -9 with resting orders, fills while
down, creates whose answer never came)."""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from decimal import Decimal as D
from fractions import Fraction
from pathlib import Path

from market_maker.cli import attach_journal, build_runner, detach_journal
from market_maker.journal.recorder import harmonic_avg
from market_maker.journal.report.command import main as report_main
from market_maker.journal.report.reader import load_run, open_journal
from market_maker.journal.report.summary import build
from market_maker.market_maker import OrderManager
from market_maker.sim import SimConfig, run_simulator
from tests.sim_helpers import new_account
from tests.test_bot_e2e import LIVELY, TIGHT, settings_for
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
CALM = {**LIVELY, "volatility": D(0)}  # takers hit our quotes; the mark stays where it is


def all_orders(sim, account):
    """Every order of ``account`` at the simulator, all statuses (its books, not the wire)."""
    return sim.call(lambda ex: ex.query_orders(account, "BTC_USD", None, None, "0", None, 100_000))


def count(path, table):
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def journal_fills(path):
    db = sqlite3.connect(path)
    try:
        per = {}
        for order_id, qty, price, fee in db.execute("SELECT order_id, qty, price, fee FROM executions"):
            filled, notional, fees = per.get(order_id, (0, Fraction(0), D(0)))
            per[order_id] = (filled + qty, notional + Fraction(qty) / Fraction(price), fees + D(fee))
        return per
    finally:
        db.close()


def assert_journal_equals_exchange(path, rows):
    """For every order: the journal's filled qty, fee and (rounded as the exchange does) average price are the
    exchange's, exactly; the journal holds no fill of an order the exchange did not fill."""
    held = journal_fills(path)
    filled = {r["order_id"]: r for r in rows if int(r["filled_qty"])}
    assert set(held) == set(filled)
    for order_id, row in filled.items():
        qty, notional, fee = held[order_id]
        assert (qty, fee) == (int(row["filled_qty"]), D(row["fee"])), order_id
        assert harmonic_avg(qty, notional) == D(row["avg_price"]), order_id
    return filled


def start_bot(sim, tmp_path, path):
    """The bot with a journal at ``path``, running in a thread until ``runner.stop()``; its exit code lands
    in ``codes``."""
    settings = settings_for(sim, tmp_path)
    runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret)
    journal = attach_journal(path, settings, runner, OrderManager)
    codes = []
    bot = threading.Thread(target=lambda: codes.append(runner.run()))
    bot.start()
    return runner, journal, bot, codes


def test_a_runs_journal_equals_the_simulators_books_and_its_report_the_equity_change(tmp_path, capsys):
    path = str(tmp_path / "journal.sqlite")
    with run_simulator(SimConfig(port=0, seed=11, funding_interval_s=2, **{**CALM, "taker_rate": D(10)})) as sim:
        start_equity = D(sim.call(lambda ex: ex.margin_rows(sim.account_id))[0]["total"])
        runner, journal, bot, codes = start_bot(sim, tmp_path, path)
        try:
            assert wait_until(lambda: count(path, "executions") >= 4 and count(path, "funding") >= 1, timeout=30)
        finally:
            # funding stops (rate 0) and the bot sees it, so no payment falls between its last view and its exit;
            # the mark stops too and the bot sees the equity it leaves (the journal's last margin row)
            sim.call(lambda ex: ex.set_funding_rate("BTC_USD", D(0), int(time.time() * 1000)))
            wait_until(lambda: runner.exchange.ws._tables.instrument().funding_rate == 0, timeout=10)
            runner.stop()
            bot.join(30)
        code = codes[0]
        end_total = lambda: D(sim.call(lambda ex: ex.margin_rows(sim.account_id))[0]["total"])  # noqa: E731

        def journal_caught_up():
            journal.flush()
            db = sqlite3.connect(path)
            last = db.execute("SELECT total FROM margins ORDER BY id DESC LIMIT 1").fetchone()
            db.close()
            return last is not None and D(last[0]) == end_total()
        assert wait_until(journal_caught_up, timeout=10)
        detach_journal(journal, runner, code)
        rows = all_orders(sim, sim.account_id)
        end_equity = end_total()
    assert code == 0 and journal.lost == 0
    filled = assert_journal_equals_exchange(path, rows)
    assert len(filled) >= 2, f"the run had too few fills to mean anything: {len(filled)}"
    assert f"python3 marketmaker report {path} --run 1" in capsys.readouterr().err

    db = open_journal(path)
    report = build(load_run(db, 1))
    db.close()
    a = report.attribution
    assert a.exchange_change == a.net and D(a.net) / 10 ** 20 == end_equity - start_equity
    assert count(path, "funding") >= 1  # payments of the legs held (a hedged pair's may add up to 0)
    db = sqlite3.connect(path)
    told = (db.execute("SELECT exchange_ms, side, qty, amount FROM funding").fetchall(),
            db.execute("SELECT exchange_ms, side, close_flag, qty, maker FROM executions").fetchall())
    db.close()
    # every fill, fee, funding payment and mark is in the journal: GTE sends no funding row, the bot infers each
    # payment from the legs held when the funding time moves on and the mark of that push (CI once: a fill next
    # to the funding time counted on the wrong side of it, a funding paid at a mark the bot had not seen)
    assert a.unexplained == 0, told
    assert report_main([path, "--no-html"]) == 0
    assert "net PnL" in capsys.readouterr().out


def test_fills_the_socket_lost_are_rebuilt_after_its_resyncs(tmp_path):
    """Dropped pushes and disconnects: after each resync the exchange's word on our orders fills the gaps."""
    path = str(tmp_path / "journal.sqlite")
    with run_simulator(SimConfig(port=0, seed=3, **{**LIVELY, "taker_rate": D(10)})) as sim:
        settings = settings_for(sim, tmp_path)
        runner = build_runner(settings, sim.base_url, sim.ws_url, sim.api_key, sim.api_secret, duration=7)
        journal = attach_journal(path, settings, runner, OrderManager)
        started = int(time.time() * 1000)
        sim.set_faults(drop_rate=D("0.08"), ws_disconnect_every_s=2)
        # the faults end a while before the run does, so the resyncs, not the read-back at stop, fill the gaps
        # (CI: the simulator refusing resubscriptions over 20 a second kept it blind to the end once)
        calm = threading.Timer(3.5, lambda: sim.set_faults(drop_rate=0, ws_disconnect_every_s=0))
        calm.start()
        code = runner.run()
        calm.join()
        detach_journal(journal, runner, code)
        rows = all_orders(sim, sim.account_id)
        faults = sim.fault_counters()
    assert code == 0 and faults["drop"] > 0 and faults["ws_disconnect"] >= 1
    missed = [(r["order_id"], r["status"], r["filled_qty"], int(r["ctime"]) - started) for r in rows
              if int(r["filled_qty"]) and r["order_id"] not in journal_fills(path)]
    assert not missed, (missed, count(path, "events"))
    assert len(assert_journal_equals_exchange(path, rows)) >= 2


def test_fills_a_blind_socket_missed_at_the_end_are_read_back_at_stop(tmp_path, caplog):
    """The socket goes blind (every push lost), a taker hits our bids, the bot stops before any resync: the
    exchange's word on our orders, read back at stop, puts the fills in the journal of this run."""
    path = str(tmp_path / "journal.sqlite")
    with run_simulator(SimConfig(port=0, seed=5, **{**CALM, "taker_rate": D(0)})) as sim:
        runner, journal, bot, codes = start_bot(sim, tmp_path, path)
        bids = lambda: [r for r in all_orders(sim, sim.account_id)  # noqa: E731
                        if r["side"] == "1" and r["status"] in ("2", "16")]
        try:
            assert wait_until(bids, timeout=30)
            sim.set_faults(drop_rate=1)
            taker = new_account(sim, "100")

            def hit():
                resting = bids()
                if resting:  # down to our lowest bid: every bid of ours fills
                    assert taker.order(0, str(min(D(r["price"]) for r in resting)), 200_000)["code"] == 0
                return any(int(r["filled_qty"]) for r in all_orders(sim, sim.account_id))
            assert wait_until(hit, timeout=10, interval=0.2)
        finally:
            runner.stop()
            bot.join(30)
        filled_blind = {r["order_id"] for r in all_orders(sim, sim.account_id) if int(r["filled_qty"])}
        assert not filled_blind & set(journal_fills(path))  # not seen live: the socket was blind
        with caplog.at_level("INFO", logger="market_maker"):
            detach_journal(journal, runner, codes[0])
        rows = all_orders(sim, sim.account_id)
    assert codes == [0]
    assert "the WebSocket missed were read back from the exchange" in caplog.text
    assert filled_blind <= set(journal_fills(path))
    assert_journal_equals_exchange(path, rows)
    db = sqlite3.connect(path)
    sources = {source for oid, source in db.execute("SELECT order_id, source FROM executions") if oid in filled_blind}
    db.close()
    assert sources == {"reconciled"}


def _settings_file(tmp_path, sim, journal):
    lines = [f"BASE_URL = {sim.base_url!r}", f"WS_URL = {sim.ws_url!r}", f"API_KEY = {sim.api_key!r}",
             f"API_SECRET = {sim.api_secret!r}", f"JOURNAL_PATH = {journal!r}", "from decimal import Decimal"]
    lines += [f"{k} = {v!r}" if not isinstance(v, D) else f"{k} = Decimal({str(v)!r})" for k, v in TIGHT.items()]
    lines += ["TIMEOUT = 2", "LOG_LEVEL = 'INFO'"]
    path = tmp_path / "settings.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def in_doubt(journal):
    """client_oids of the creates the journal has as in doubt (no answer)."""
    db = sqlite3.connect(journal)
    try:
        return {r[0] for r in db.execute("SELECT client_oid FROM order_requests WHERE outcome = 'in_doubt'")}
    except sqlite3.Error:
        return set()
    finally:
        db.close()


def _bot(settings, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "marketmaker"), "--settings", str(settings), *args],
                            cwd=str(settings.parent), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_kill_9_fills_while_down_and_a_lost_create_answer_are_reconciled_exactly(tmp_path):
    journal = str(tmp_path / "journal.sqlite")
    with run_simulator(SimConfig(port=0, seed=5, **{**CALM, "taker_rate": D(0)})) as sim:
        settings = _settings_file(tmp_path, sim, journal)
        bot = _bot(settings)
        try:
            resting = lambda: sim.call(lambda ex: ex.open_orders_of(sim.account_id))  # noqa: E731
            assert wait_until(lambda: len(resting()) >= 6, timeout=30)
            # the next creates execute late, after the bot gave up waiting for their answer (in doubt); the bot
            # is killed before it learns what became of them
            sim.set_faults(late_create_rate=1, late_create_ms=(3500, 3500))
            sim.call(lambda ex: [ex.cancel_order(sim.account_id, "BTC_USD", r["order_id"], int(time.time() * 1000))
                                 for r in ex.open_orders_of(sim.account_id)[:1]])  # make it requote
            assert wait_until(lambda: in_doubt(journal), timeout=20)
            bot.send_signal(signal.SIGKILL)
            bot.wait(10)
        finally:
            if bot.poll() is None:
                bot.kill()
        db = sqlite3.connect(journal)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        db.close()
        doubtful = in_doubt(journal)
        assert wait_until(lambda: sim.call(lambda ex: [r for oid in doubtful
                                                       for r in ex.orders_by_client_oid(sim.account_id, oid)]),
                          timeout=10)
        sim.set_faults(late_create_rate=0)
        left = resting()
        lost_create = [r["order_id"] for r in left if r["client_oid"] in doubtful]
        assert lost_create
        # while the bot is down another trader takes every resting order of ours (late creates included, as
        # they land): fills the journal never saw
        taker = new_account(sim, "100")

        def sweep():
            left = resting()
            for side, rows in ((0, [r for r in left if r["side"] == "1"]), (1, [r for r in left if r["side"] == "0"])):
                if rows:
                    far = min(D(r["price"]) for r in rows) if side == 0 else max(D(r["price"]) for r in rows)
                    assert taker.order(side, str(far), 200_000)["code"] == 0  # the book up to our farthest
            return not left
        assert wait_until(sweep, timeout=20, interval=0.5)
        bot = _bot(settings, "--duration", "4")
        out, _ = bot.communicate(timeout=60)
        assert bot.returncode == 0, out
        rows = all_orders(sim, sim.account_id)
    assert "happened while the bot was down; journaled as reconciled" in out
    assert_journal_equals_exchange(journal, rows)
    db = sqlite3.connect(journal)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reconciled = db.execute("SELECT order_id, run_id FROM executions WHERE source = 'reconciled'").fetchall()
    assert reconciled and {run for _, run in reconciled} == {2}
    assert set(lost_create) <= {oid for oid, _ in reconciled}
    assert db.execute("SELECT COUNT(*) FROM runs WHERE stopped_ms IS NULL").fetchone() == (1,)  # the killed one
    db.close()
