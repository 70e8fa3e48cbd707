"""The ops parts started by the command line's run_bot, next to the journal."""
from market_maker.cli import run_bot
from market_maker.sim import SimConfig, run_simulator
from tests.ops_fakes import Recorder
from tests.ops_helpers import settings_for


def test_run_bot_with_notifications_metrics_and_the_journal(tmp_path, monkeypatch):
    monkeypatch.setenv("MM_CONTROL_TOKEN", "t" * 24)
    with Recorder() as server, run_simulator(SimConfig(port=0, seed=9, flow=False)) as sim:
        settings = settings_for(sim, tmp_path, NOTIFY_URLS=[f"{server.url}/hook"], NOTIFY_MIN_INTERVAL=0,
                                METRICS_ADDRESS="127.0.0.1:0", CONTROL_ADDRESS="127.0.0.1:0",
                                JOURNAL_PATH=str(tmp_path / "journal.sqlite"))
        assert run_bot(settings, duration=2, install_signals=False) == 0
    texts = [e["text"] for p in server.ok_posts() for e in p["json"]["events"]]
    assert any("Started (live" in t for t in texts)
    assert any("Stopped (exit status 0)" in t for t in texts)
    assert (tmp_path / "journal.sqlite").exists()
