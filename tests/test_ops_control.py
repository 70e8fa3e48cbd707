"""The control API (HTTP) and Telegram commands against a bot trading on the simulator."""
import logging
import secrets
import time
import uuid
from decimal import Decimal

import pytest
import requests

from market_maker.ops.control import ReplayGuard, Refused
from market_maker.sim import SimConfig, run_simulator
from tests.ops_fakes import Recorder
from tests.ops_helpers import LIVELY, running_bot, settings_for
from tests.waiting import wait_until

TOKEN = "control-token-" + secrets.token_hex(8)
TG_TOKEN = "123456:AAbbCCddEEffGGhhIIjjKK_tgtoken"
CHAT = 4242


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("control")
    with Recorder() as telegram, run_simulator(SimConfig(port=0, seed=21, **LIVELY)) as sim:
        settings = settings_for(sim, tmp_path, CONTROL_ADDRESS="127.0.0.1:0", CONTROL_TELEGRAM_CHATS=[CHAT],
                                TELEGRAM_API_URL=telegram.url, FLATTEN_STEP_SECONDS=0.3,
                                FLATTEN_SLIPPAGE=Decimal("0.01"), FLATTEN_TIMEOUT=60)
        env = {"MM_CONTROL_TOKEN": TOKEN, "MM_TELEGRAM_TOKEN": TG_TOKEN}
        with running_bot(sim, settings, environ=env) as ops:
            ops.telegram.poll_timeout = 1
            ops.sim, ops.fake_telegram = sim, telegram
            ops.url = f"http://127.0.0.1:{ops.control.port}"
            assert wait_until(lambda: ops.view.decisions.count > 0 and ops.view.own_orders(), timeout=30)
            yield ops


def headers(token=TOKEN, nonce=None, ts=None):
    return {"Authorization": f"Bearer {token}", "X-MM-Nonce": nonce or uuid.uuid4().hex,
            "X-MM-Timestamp": str(int(time.time()) if ts is None else ts)}


def post(bot, path, **kw):
    kw.setdefault("headers", headers())
    return requests.post(bot.url + path, timeout=40, **kw)


def open_at_exchange(bot):
    sim = bot.sim
    return sim.call(lambda ex: ex.open_orders_of(sim.account_id))


def test_status_tells_positions_orders_pnl_health_and_the_last_decision(bot):
    r = requests.get(bot.url + "/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200
    s = r.json()
    assert s["symbol"] == "BTC_USD" and s["health"]["connected"] is True and s["paused"] is None
    assert set(s["positions"]) == {"long", "short", "net"}
    assert {"realised", "unrealised", "fees", "equity"} <= set(s["pnl"])
    assert isinstance(s["pnl"]["equity"], str) and Decimal(s["pnl"]["equity"]) > 0  # exact, as text
    assert s["last_decision"]["decisions"] >= 1 and s["last_decision"]["latency_s"] >= 0
    assert isinstance(s["open_orders"], list)


def test_pause_cancels_keeps_the_connection_and_resume_quotes_again(bot):
    r = post(bot, "/pause")
    assert r.status_code == 200 and r.json()["paused"] is True
    assert wait_until(lambda: open_at_exchange(bot) == [], timeout=10)
    seen = bot.view.decisions.count
    assert wait_until(lambda: bot.view.decisions.count >= seen + 3, timeout=20)  # the loop goes on...
    assert open_at_exchange(bot) == []  # ...without quoting
    assert bot.view.exchange.connected and bot.view.manager.snap.connected
    status = requests.get(bot.url + "/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert status["paused"] == "paused by the operator"
    r = post(bot, "/resume")
    assert r.status_code == 200 and r.json()["paused"] is False
    assert wait_until(lambda: len(open_at_exchange(bot)) > 0, timeout=20)


def test_cancel_all_cancels_and_the_bot_requotes(bot):
    assert wait_until(lambda: len(open_at_exchange(bot)) > 0, timeout=20)
    r = post(bot, "/cancel-all")
    assert r.status_code == 200 and r.json()["ok"] and r.json()["cancelled"] >= 1
    assert wait_until(lambda: len(open_at_exchange(bot)) > 0, timeout=20)


def test_flatten_closes_the_net_position_within_the_slippage_limit(bot):
    sim = bot.sim

    def net_at_exchange():
        rows = sim.call(lambda ex: ex.position_rows(sim.account_id))
        qty = {p["side"]: int(p["qty"]) for p in rows}
        return qty.get("1", 0) - qty.get("0", 0)
    assert wait_until(lambda: net_at_exchange() != 0, timeout=40, interval=0.2), "the bot got no fill"
    r = post(bot, "/flatten")
    assert r.status_code == 200, r.text
    state = bot.view.flatten_state
    assert state["start_net"] != 0 or state["state"] == "flat"
    assert wait_until(lambda: bot.view.flatten_state["state"] != "running", timeout=60)
    state = bot.view.flatten_state
    assert state["state"] == "flat", state
    assert wait_until(lambda: net_at_exchange() == 0, timeout=10)
    low, high = Decimal(state["lowest_sell"]), Decimal(state["highest_buy"])
    assert all(low <= Decimal(p) <= high for p in state["prices"])
    if state["start_net"]:
        assert state["prices"] and state["steps"] >= 1
    assert open_at_exchange(bot) == []  # paused after a flatten: nothing requoted
    assert bot.view.paused().startswith("flatten flat")
    assert post(bot, "/resume").json()["ok"]
    assert wait_until(lambda: len(open_at_exchange(bot)) > 0, timeout=20)


def test_reload_runs_in_the_bot(bot, caplog):
    # this bot's settings came from overrides, not a file: a reload reads the defaults, whose BASE_URL
    # differs -- the runner refuses it and says why, and the bot trades on
    r = post(bot, "/reload")
    assert r.status_code == 200 and r.json() == {"ok": True, "reloaded": False}
    assert "Reload rejected, keeping the running settings: changing BASE_URL needs a restart" in caplog.text


@pytest.mark.parametrize("case", ["no token", "wrong token", "no nonce", "replay", "stale", "oversized",
                                  "malformed", "unknown path", "bad nonce"])
def test_bad_requests_are_refused_logged_without_content_and_trading_goes_on(bot, caplog, case):
    caplog.set_level(logging.DEBUG, logger="market_maker")
    nonce = uuid.uuid4().hex
    secret_body = '{"password": "do-not-log-me"}'
    url, kw, want = "/pause", {}, 401
    if case == "no token":
        kw["headers"] = {}
    elif case == "wrong token":
        kw["headers"] = headers(token="x" * len(TOKEN))
    elif case == "no nonce":
        kw["headers"], want = {"Authorization": f"Bearer {TOKEN}"}, 400
    elif case == "bad nonce":
        kw["headers"], want = headers(nonce="short"), 400
    elif case == "replay":
        url = "/resume"
        first = post(bot, url, headers=headers(nonce=nonce))
        assert first.status_code == 200
        kw["headers"] = headers(nonce=nonce)
    elif case == "stale":
        kw["headers"] = headers(ts=int(time.time()) - 600)
    elif case == "oversized":
        kw["data"], want = "x" * 5000, 413
    elif case == "malformed":
        kw["data"], want = secret_body, 400
    elif case == "unknown path":
        url, want = "/secret-path-do-not-log", 404
    held = bot.view.runner.held
    r = post(bot, url, **kw)
    assert r.status_code == want, (case, r.status_code, r.text)
    assert bot.view.runner.held == held  # nothing done
    refusals = [rec.getMessage() for rec in caplog.records if "Control API refused" in rec.getMessage()]
    assert refusals
    log_text = caplog.text
    assert TOKEN not in log_text and "do-not-log-me" not in log_text and "secret-path" not in log_text
    seen = bot.view.decisions.count
    assert wait_until(lambda: bot.view.decisions.count > seen, timeout=20)  # the bot keeps deciding


def test_telegram_commands_only_from_configured_chats(bot, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs each request's path, the token's place
    fake = bot.fake_telegram
    now = int(time.time())
    with fake.lock:
        fake.updates = [
            {"update_id": 10, "message": {"chat": {"id": 999}, "date": now, "text": "/pause"}},
            {"update_id": 11, "message": {"chat": {"id": CHAT}, "date": now - 3600, "text": "/pause"}},
            {"update_id": 12, "message": {"chat": {"id": CHAT}, "date": now, "text": "/status"}},
            {"update_id": 13, "message": {"chat": {"id": CHAT}, "date": now, "text": "/pause"}},
        ]
    assert wait_until(lambda: len([p for p in fake.ok_posts() if p["path"].endswith("/sendMessage")]) >= 2,
                      timeout=30)
    replies = [p["json"] for p in fake.ok_posts() if p["path"].endswith("/sendMessage")]
    assert all(r["chat_id"] == CHAT for r in replies)
    assert "BTC_USD" in replies[0]["text"] and replies[1]["text"].startswith("/pause:")
    assert bot.view.runner.held == "paused by the operator"
    assert bot.telegram.ignored == 1
    assert "getUpdates" in caplog.text and TG_TOKEN not in caplog.text
    assert wait_until(lambda: open_at_exchange(bot) == [], timeout=10)
    assert post(bot, "/resume").json()["ok"]


def test_replay_guard_window_and_nonces():
    now = [1000.0]
    guard = ReplayGuard(window_s=60, clock=lambda: now[0])
    guard.check("1000", "nonce-aaaa")
    with pytest.raises(Refused) as info:
        guard.check("1000", "nonce-aaaa")
    assert info.value.status == 401
    with pytest.raises(Refused):
        guard.check("900", "nonce-bbbb")
    with pytest.raises(Refused) as info:
        guard.check("abc", "nonce-cccc")
    assert info.value.status == 400
    now[0] = 1200.0  # old nonces forgotten once their timestamps cannot pass the window any more
    guard.check("1200", "nonce-dddd")
    assert "nonce-aaaa" not in guard.seen
