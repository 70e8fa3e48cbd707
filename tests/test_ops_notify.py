"""Notifications (market_maker/ops/notify.py, channels.py) against a local server recording the posts."""
import logging
from decimal import Decimal

import pytest
import requests

from market_maker.cli import build_runner
from market_maker.ops.channels import channels_from
from market_maker.ops.notify import Notifier, coalesce
from market_maker.ops.state import BotView
from market_maker.settings import SettingsError, load_settings
from tests.ops_fakes import Recorder
from tests.waiting import wait_until

TOKEN = "123456:AAbbCCddEEffGGhhIIjjKKllMM_secret"
HOOK_SECRET = "hook-secret-0123456789"
API_SECRET = "api-secret-xyz-987654"
FAST = {"backoff": 0.05, "max_backoff": 0.2, "timeout": 5}


def make_view(tmp_path, **extra):
    settings = load_settings(overrides={"BASE_URL": "http://127.0.0.1:9", "WS_URL": "ws://127.0.0.1:9",
                                        "API_KEY": "k", "API_SECRET": API_SECRET, **extra},
                             environ={}, cwd=tmp_path)
    runner = build_runner(settings, settings.BASE_URL, settings.WS_URL, "k", API_SECRET)
    return BotView(runner)


def env_for(server):
    return {"MM_DISCORD_WEBHOOK": f"{server.url}/discord/{HOOK_SECRET}",
            "MM_SLACK_WEBHOOK_OPS": f"{server.url}/slack/{HOOK_SECRET}",
            "MM_TELEGRAM_TOKEN": TOKEN, "MM_WEBHOOK_TOKEN": "bearer-secret-42"}


URLS = ["discord://", "slack://ops", "telegram://-1001234", None]  # None: the generic webhook, on the server


def notifier_for(tmp_path, server, min_interval=0, **options):
    urls = [u or f"{server.url}/hook" for u in URLS]
    view = make_view(tmp_path, NOTIFY_URLS=urls, NOTIFY_MIN_INTERVAL=min_interval, TELEGRAM_API_URL=server.url)
    channels = channels_from(view.settings.NOTIFY_URLS, env_for(server), view.settings.TELEGRAM_API_URL)
    return Notifier(view, channels, {**FAST, **options})


def test_each_channel_posts_its_own_format_and_no_secret(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with Recorder() as server:
        notifier = notifier_for(tmp_path, server)
        notifier.start()
        notifier.notify(f"order refused: bad key {API_SECRET}")  # an error text quoting a secret
        # on each of the 4 channels (the start message may have gone in the same post)
        assert wait_until(lambda: sum("order refused" in p["raw"].decode() for p in server.ok_posts()) == 4)
        notifier.stop()
    by_path = {}
    for post in server.ok_posts():
        by_path.setdefault(post["path"].split("/")[1], []).append(post)
    assert set(by_path) == {"discord", "slack", f"bot{TOKEN}", "hook"}
    discord, slack, telegram, hook = (by_path[k][-1] for k in ("discord", "slack", f"bot{TOKEN}", "hook"))
    assert set(discord["json"]) == {"content"} and "order refused" in discord["json"]["content"]
    assert set(slack["json"]) == {"text"} and "order refused" in slack["json"]["text"]
    assert telegram["path"] == f"/bot{TOKEN}/sendMessage"
    assert telegram["json"]["chat_id"] == -1001234 and "order refused" in telegram["json"]["text"]
    assert hook["json"]["text"].endswith("order refused: bad key <hidden>")
    assert hook["json"]["events"][-1]["kind"] == "info" and hook["headers"]["Authorization"] == "Bearer bearer-secret-42"
    assert "Authorization" not in discord["headers"]
    for post in server.ok_posts():  # no secret in any payload
        for secret in (TOKEN, HOOK_SECRET, API_SECRET, "bearer-secret-42"):
            assert secret not in post["raw"].decode()
    for secret in (TOKEN, HOOK_SECRET, API_SECRET, "bearer-secret-42"):
        assert secret not in caplog.text


def test_failures_are_retried_with_backoff_and_never_log_the_url(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with Recorder() as server:
        server.statuses = [500, 500]
        urls = [f"{server.url}/hook"]
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0)
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.start()
        assert wait_until(lambda: len(server.ok_posts()) == 1)
        notifier.stop()
        statuses = [p["status"] for p in server.posts]
    assert statuses == [500, 500, 200] and urls
    assert notifier.workers[0].stats["retries"] == 2 and notifier.workers[0].stats["posts"] == 1
    assert "HTTP 500" in caplog.text and HOOK_SECRET not in caplog.text


def test_unreachable_channel_gives_up_without_leaking(tmp_path, caplog):
    env = {"MM_DISCORD_WEBHOOK": f"http://127.0.0.1:9/discord/{HOOK_SECRET}"}  # nothing listens on port 9
    view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0)
    notifier = Notifier(view, channels_from(["discord://"], env, "http://x"), {**FAST, "tries": 2})
    notifier.start()
    worker = notifier.workers[0]
    assert wait_until(lambda: worker.stats["lost"] >= 1)
    notifier.stop()
    assert "given up" in caplog.text and HOOK_SECRET not in caplog.text


def test_a_slow_channel_never_blocks_and_what_waits_is_coalesced(tmp_path):
    with Recorder() as server:
        server.hold = True  # every post waits for release: the channel is as slow as can be
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0)
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.start()  # the start message: its post is held
        assert server.arrived.wait(10)
        for i in range(20):  # returns at once although the channel is stuck
            view.exchange.events.emit("pause", reason="paused by operator", cancel=True)
            notifier.notify(f"message {i}")
        assert len(server.posts) == 1  # still held: nothing else went out meanwhile
        server.hold = False
        server.release.set()
        assert wait_until(lambda: len(server.ok_posts()) == 2)
        notifier.stop()
    text = server.ok_posts()[1]["json"]["content"]
    assert all(f"message {i}" in text for i in range(20))  # all twenty in one post


def test_rate_limit_coalesces_until_the_interval_passes(tmp_path):
    with Recorder() as server:
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=3600)
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.start()
        assert wait_until(lambda: len(server.ok_posts()) == 1)  # the start message went at once
        for text in ("a", "b", "b", "c"):
            notifier.notify(text)
        assert not wait_until(lambda: len(server.ok_posts()) > 1, timeout=0.5)  # held by the rate limit
        notifier.stop()  # at stop what waits is flushed, in one post
    posts = server.ok_posts()
    assert len(posts) == 2
    assert posts[1]["json"]["content"].count("\n") == 2 and "b (x2)" in posts[1]["json"]["content"]


def test_kill_switch_event_and_stop_summary(tmp_path):
    with Recorder() as server:
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0)
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.instrument(listen=True)
        notifier.start()
        view.exchange.events.emit("kill_switch", equity=Decimal("9.5"), start_equity=Decimal("10"),
                                  limit=Decimal("0.5"))
        notifier.run_stopped(3)
        notifier.stop()
    texts = "\n".join(p["json"]["content"] for p in server.ok_posts())
    assert texts.count("Kill switch") == 1 and "equity 9.5 BTC from 10 BTC" in texts
    assert "Stopped (exit status 3)" in texts


def test_fatal_error_is_told(tmp_path):
    with Recorder() as server:
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0)
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.start()
        notifier.run_stopped(1, RuntimeError("boom"))
        notifier.stop()
    texts = "\n".join(p["json"]["content"] for p in server.ok_posts())
    assert "Fatal error: RuntimeError: boom" in texts


@pytest.mark.parametrize("urls, env, named", [
    (["discord://"], {}, "MM_DISCORD_WEBHOOK"),
    (["slack://team"], {}, "MM_SLACK_WEBHOOK_TEAM"),
    (["discord://"], {"MM_DISCORD_WEBHOOK": "not a url"}, "MM_DISCORD_WEBHOOK"),
    (["telegram://42"], {}, "MM_TELEGRAM_TOKEN"),
    (["telegram://42"], {"MM_TELEGRAM_TOKEN": "short"}, "MM_TELEGRAM_TOKEN"),
])
def test_missing_or_bad_secrets_name_the_variable(urls, env, named):
    with pytest.raises(SettingsError, match=named) as info:
        channels_from(urls, env, "https://api.telegram.org")
    assert "NOTIFY_URLS" in str(info.value) and "short" not in str(info.value)


def test_coalesce_counts_repeats():
    batch = [{"text": t} for t in ("x", "y", "x")]
    assert coalesce(batch) == "- x (x2)\n- y"
    assert coalesce([{"text": "only"}]) == "only"


def test_webhook_post_goes_to_the_configured_url(tmp_path):
    with Recorder() as server:
        urls = [f"{server.url}/hook/path"]
        view = make_view(tmp_path, NOTIFY_URLS=urls, NOTIFY_MIN_INTERVAL=0)
        notifier = Notifier(view, channels_from(urls, {}, server.url), FAST)
        notifier.start()
        assert wait_until(lambda: len(server.ok_posts()) == 1)
        notifier.stop()
    post = server.ok_posts()[0]
    assert post["path"] == "/hook/path" and "Authorization" not in post["headers"]
    assert post["json"]["source"].startswith("gte-market-maker") and "Started" in post["json"]["text"]
    assert requests  # the client library posts (no secret in a URL it could log)


def test_a_bot_on_the_simulator_tells_its_start_and_stop(tmp_path, monkeypatch):
    from market_maker.gte import signing
    from market_maker.sim import SimConfig, run_simulator
    from tests.ops_helpers import LIVELY, running_bot, settings_for
    signatures = []
    for name in ("rest_signature", "ws_signature"):
        inner = getattr(signing, name)
        monkeypatch.setattr(signing, name, lambda *a, _inner=inner, **k: signatures.append(_inner(*a, **k))
                            or signatures[-1])
    with Recorder() as server, run_simulator(SimConfig(port=0, seed=5, **LIVELY)) as sim:
        settings = settings_for(sim, tmp_path, NOTIFY_URLS=[f"{server.url}/hook"], NOTIFY_MIN_INTERVAL=0)
        with running_bot(sim, settings) as ops:
            assert wait_until(lambda: ops.view.decisions.count > 0, timeout=20)
        assert ops.result["code"] == 0
    texts = [e["text"] for p in server.ok_posts() for e in p["json"]["events"]]
    assert any("Started (live" in t for t in texts)
    assert any(t.split("] ", 1)[1].startswith("Stopped (exit status 0)") for t in texts)
    payloads = "".join(p["raw"].decode() for p in server.ok_posts())
    assert sim.api_secret not in payloads
    assert signatures and not [sig for sig in set(signatures) if sig in payloads]


def test_websocket_outage_told_when_longer_than_the_setting_and_back_up(tmp_path, monkeypatch):
    from market_maker.ops import notify
    from market_maker.sim import SimConfig, run_simulator
    from tests.ops_helpers import running_bot, settings_for
    monkeypatch.setattr(notify, "POLL_S", 0.1)
    with Recorder() as server, run_simulator(SimConfig(port=0, seed=5, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, NOTIFY_URLS=[f"{server.url}/hook"], NOTIFY_MIN_INTERVAL=0,
                                NOTIFY_WS_DOWN_SECONDS=1, LOOP_INTERVAL=0.2)
        with running_bot(sim, settings) as ops:
            assert wait_until(lambda: ops.view.decisions.count > 0, timeout=20)
            ops.view.exchange.ws.reconnect_backoff = (4.0, 4.0)  # the next reconnect waits 2 to 4 s
            assert sim.disconnect_websockets() >= 1

            def told(what):
                return any(what in e["text"] for p in server.ok_posts() for e in p["json"]["events"])
            assert wait_until(lambda: told("WebSocket down for"), timeout=20)
            assert wait_until(lambda: told("WebSocket back up after"), timeout=20)


def test_kill_switch_told_at_the_stop_without_the_bus(tmp_path):
    with Recorder() as server:
        view = make_view(tmp_path, NOTIFY_URLS=["discord://"], NOTIFY_MIN_INTERVAL=0, JOURNAL_PATH="")
        notifier = Notifier(view, channels_from(["discord://"], env_for(server), server.url), FAST)
        notifier.instrument(listen=False)
        notifier.start()
        assert not view.exchange.events  # nothing listens: the bot builds no event
        notifier.run_stopped(3)
        notifier.stop()
    texts = "\n".join(p["json"]["content"] for p in server.ok_posts())
    assert texts.count("Kill switch: equity") == 1 and "Stopped (exit status 3)" in texts
