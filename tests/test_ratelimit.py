"""Client rate limiter with a fake clock: never more than the documented count in any window."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_maker.gte.ratelimit import GTE_LIMITS, Limit, RateLimiter


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def max_in_window(times, window):
    """Largest number of calls in any half-open window [t, t + window), as the simulator counts."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_documented_limits():
    assert GTE_LIMITS["pc/order/create"] == Limit(20, 1.0)
    assert GTE_LIMITS["pc/order/cancel"] == Limit(20, 1.0)
    assert GTE_LIMITS["pc/order/cancel_batch"] == Limit(1, 10.0)
    assert GTE_LIMITS["pc/order/query"] == Limit(10, 1.0)
    assert GTE_LIMITS["pc/instrument/query"] == Limit(20, 1.0)
    assert GTE_LIMITS["pc/setting/query"] == Limit(2, 1.0)
    assert GTE_LIMITS["pc/candle/query"] == Limit(2, 1.0)
    assert GTE_LIMITS["account/transfer"] == Limit(1, 1.0)


def test_burst_of_100_creates_spread_over_5_seconds():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    start = clock()
    times = []
    for _ in range(100):
        limiter.acquire("order/create")
        times.append(clock())
    assert times[:19] == [start] * 19  # initial burst: the per-second limit less one in reserve
    assert times[19] > start
    assert max_in_window(times, 1.0) <= 19
    assert times[-1] - start >= 5.0  # the burst is spread over more than five seconds


def test_cancel_batch_one_per_ten_seconds():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert limiter.time_until_available("/v1/api/pc/order/cancel_batch") == 0
    assert limiter.try_acquire("pc/order/cancel_batch")
    assert not limiter.try_acquire("cancel_batch")
    assert limiter.time_until_available("cancel_batch") >= 10.0
    clock.now += 9.9
    assert not limiter.try_acquire("cancel_batch")
    assert 0 < limiter.time_until_available("cancel_batch") <= 0.2
    waited = limiter.acquire("cancel_batch")
    assert 0 < waited <= 0.2
    assert not limiter.try_acquire("cancel_batch")
    # other endpoints are independent
    assert limiter.try_acquire("order/cancel")


def test_try_acquire_refusal_does_not_consume():
    clock = FakeClock()
    limiter = RateLimiter({"x": Limit(2, 1.0)}, clock=clock, sleep=clock.sleep, margin=0)
    assert limiter.try_acquire("x") and limiter.try_acquire("x")
    for _ in range(5):
        assert not limiter.try_acquire("x")
    clock.now += 1.0
    assert limiter.try_acquire("x") and limiter.try_acquire("x")
    assert not limiter.try_acquire("x")


def test_unknown_endpoint_and_bad_limits():
    limiter = RateLimiter()
    with pytest.raises(KeyError):
        limiter.acquire("pc/nope")
    with pytest.raises(ValueError):
        RateLimiter({"x": Limit(0, 1.0)})


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=120),
       st.sampled_from(["order/create", "order/query", "setting/query", "cancel_batch"]))
def test_never_more_than_limit_in_any_window(gaps, endpoint):
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limit = limiter.limit(endpoint)
    times = []
    for gap in gaps:
        clock.now += gap
        if gap < 0.25:
            limiter.acquire(endpoint)
            times.append(clock())
        elif limiter.try_acquire(endpoint):
            times.append(clock())
    assert max_in_window(times, limit.period) <= limit.count


def test_key_is_remembered_and_unknown_endpoints_still_raise():
    limiter = RateLimiter()
    for _ in range(2):
        assert limiter.key("cancel_batch") == "pc/order/cancel_batch"
        assert limiter.key("/v1/api/pc/order/create?x=1") == "pc/order/create"
        with pytest.raises(KeyError):
            limiter.key("no/such/endpoint")
