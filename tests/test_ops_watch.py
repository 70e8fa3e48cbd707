"""What the notifier tells, decided from facts (market_maker/ops/watch.py): pure, no clock."""
import datetime as dt
from decimal import Decimal

from hypothesis import given, strategies as st

from market_maker.ops.watch import Facts, Limits, Watch, next_daily

LIMITS = Limits(ws_down_s=30, resync_storm=5, reject_burst=3, min_position=-100, max_position=100,
                check_position=True, max_drawdown=Decimal("1"), fractions=(Decimal("0.5"), Decimal("0.8")),
                daily_hour=0)
NOON = dt.datetime(2026, 1, 5, 12, tzinfo=dt.timezone.utc).timestamp()


def facts(**changes):
    base = dict(connected=True, resyncs=0, rejected=0, net=0, drawdown=Decimal(0), currency="BTC")
    return Facts(**{**base, **changes})


def test_websocket_down_told_after_the_delay_and_back_up_once():
    w = Watch(LIMITS, NOON)
    assert w.observe(facts(connected=False), 0, NOON) == []
    assert w.observe(facts(connected=False), 29, NOON) == []
    [down] = w.observe(facts(connected=False), 31, NOON)
    assert "down for 31s" in down
    assert w.observe(facts(connected=False), 60, NOON) == []
    [up] = w.observe(facts(), 61, NOON)
    assert "back up after 61s" in up
    assert w.observe(facts(), 62, NOON) == []


def test_a_short_outage_is_not_told():
    w = Watch(LIMITS, NOON)
    assert w.observe(facts(connected=False), 0, NOON) == []
    assert w.observe(facts(), 10, NOON) == []


def test_bursts_of_rejects_and_resync_storms_within_a_minute():
    w = Watch(LIMITS, NOON)
    assert w.observe(facts(rejected=2), 0, NOON) == []
    [burst] = w.observe(facts(rejected=5), 10, NOON)
    assert "3 within a minute" in burst or "5 within a minute" in burst
    assert w.observe(facts(rejected=6), 20, NOON) == []  # the same burst goes on
    assert w.observe(facts(rejected=6), 200, NOON) == []  # over
    assert w.observe(facts(rejected=6, resyncs=1), 201, NOON) == []
    [storm] = w.observe(facts(rejected=6, resyncs=7), 230, NOON)
    assert "Resync storm" in storm
    # slow growth never makes a burst
    w2 = Watch(LIMITS, NOON)
    assert all(w2.observe(facts(rejected=i), i * 30, NOON) == [] for i in range(20))


def test_position_limit_told_once_per_reach():
    w = Watch(LIMITS, NOON)
    [told] = w.observe(facts(net=100), 0, NOON)
    assert "MAX_POSITION 100" in told
    assert w.observe(facts(net=120), 1, NOON) == []
    assert w.observe(facts(net=50), 2, NOON) == []
    assert len(w.observe(facts(net=-100), 3, NOON)) == 1
    unchecked = Watch(Limits(**{**LIMITS.__dict__, "check_position": False}), NOON)
    assert unchecked.observe(facts(net=1000), 0, NOON) == []


def test_drawdown_fractions_told_once_each_until_recovered():
    w = Watch(LIMITS, NOON)
    assert w.observe(facts(drawdown=Decimal("0.4")), 0, NOON) == []
    [half] = w.observe(facts(drawdown=Decimal("0.55")), 1, NOON)
    assert "50 % of MAX_DRAWDOWN" in half
    assert w.observe(facts(drawdown=Decimal("0.6")), 2, NOON) == []
    [more] = w.observe(facts(drawdown=Decimal("0.9")), 3, NOON)
    assert "80 %" in more
    assert w.observe(facts(drawdown=Decimal("0.3")), 4, NOON) == []  # recovered: both re-armed
    [again] = w.observe(facts(drawdown=Decimal("0.85")), 5, NOON)  # jumps past both: one message, the top
    assert "80 %" in again


@given(st.lists(st.decimals(min_value=Decimal("-1"), max_value=Decimal("2"), places=3), max_size=60))
def test_a_fraction_is_never_told_twice_without_a_recovery_below_it(path):
    w = Watch(LIMITS, NOON)
    told_at = {}
    for i, dd in enumerate(path):
        for text in w.observe(facts(drawdown=dd), i, NOON):
            fraction = Decimal(text.split(" crossed ")[1].split(" %")[0]) / 100
            if fraction in told_at:  # told before: the drawdown went below 90 % of it in between
                assert any(x < fraction * Decimal("0.9") for x in path[told_at[fraction] + 1:i])
            told_at[fraction] = i
            assert dd >= fraction


def test_daily_summary_once_a_day_at_the_hour():
    w = Watch(LIMITS, NOON)
    assert w.observe(facts(), 0, NOON + 3600) == []
    midnight = dt.datetime(2026, 1, 6, 0, tzinfo=dt.timezone.utc).timestamp()
    [summary] = w.observe(facts(realised=Decimal("0.01"), fills=3), 1, midnight + 1)
    assert summary.startswith("Daily summary: realised PnL 0.01 BTC") and "3 fills" in summary
    assert w.observe(facts(), 2, midnight + 7200) == []
    assert next_daily(midnight, 0) == midnight + 86400
    assert next_daily(midnight - 1, 0) == midnight
