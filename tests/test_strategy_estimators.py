"""The online estimators on synthetic series with known sigma and known intensity (seeded)."""
import math
import random

import pytest

from market_maker.strategies.estimators import EwmaVolatility, IntensityEstimator, fit_intensity


def brownian(sigma, dt, steps, seed, irregular=False):
    rng = random.Random(seed)
    t, x = 0.0, 100.0
    for _ in range(steps):
        step = dt * rng.uniform(0.2, 1.8) if irregular else dt
        t += step
        x += sigma * math.sqrt(step) * rng.gauss(0, 1)
        yield t, x


@pytest.mark.parametrize("irregular", [False, True])
def test_ewma_volatility_finds_a_known_sigma(irregular):
    vol = EwmaVolatility(window_s=200.0, fallback=1.0, low=1e-6, high=100.0)
    for t, x in brownian(0.3, 0.5, 4000, seed=7, irregular=irregular):
        vol.update(t, x)
    assert vol.warm
    assert vol.sigma == pytest.approx(0.3, rel=0.15)


def test_ewma_volatility_answers_the_fallback_until_warm_then_bounds():
    vol = EwmaVolatility(window_s=100.0, fallback=0.05, low=0.01, high=0.2)
    series = list(brownian(1.0, 1.0, 300, seed=3))
    for t, x in series[:50]:
        vol.update(t, x)
    assert not vol.warm and vol.sigma == 0.05 and vol.raw is not None
    for t, x in series[50:]:
        vol.update(t, x)
    assert vol.warm and vol.sigma == 0.2  # sigma ~1 clamped to the upper bound
    assert vol.raw == pytest.approx(1.0, rel=0.3)


def test_ewma_volatility_ignores_nan_and_time_going_back():
    vol = EwmaVolatility(window_s=10.0, fallback=0.1, low=0.01, high=1.0)
    vol.update(0.0, 100.0)
    vol.update(1.0, math.nan)
    vol.update(-0.5, 150.0)  # older than the last sample
    assert vol.raw is None
    vol.update(2.0, 100.1)
    assert vol.raw == pytest.approx(0.1 / math.sqrt(2))


def test_ewma_volatility_refuses_bad_parameters():
    with pytest.raises(ValueError):
        EwmaVolatility(window_s=0, fallback=0.1, low=0.01, high=1.0)
    with pytest.raises(ValueError):
        EwmaVolatility(window_s=1, fallback=0.1, low=0.0, high=1.0)


def poisson_trades(A, k, seconds, seed, mid=100.0):
    """Per side, arrivals at rate A whose distance from the mid is exponential with rate k:
    the rate of trades reaching at least delta is A exp(-k delta)."""
    rng = random.Random(seed)
    trades = []
    for side, sign in (("buy", 1), ("sell", -1)):
        t = 0.0
        while True:
            t += rng.expovariate(A)
            if t >= seconds:
                break
            trades.append((t, mid + sign * rng.expovariate(k), side))
    trades.sort()
    return trades


def test_fit_intensity_recovers_known_A_and_k():
    trades = poisson_trades(A=2.0, k=0.8, seconds=3000, seed=11)
    fit = fit_intensity([abs(p - 100.0) for _, p, _ in trades], span_s=2 * 3000, bucket=0.25, buckets=16)
    assert fit is not None and fit.points == 16
    assert fit.A == pytest.approx(2.0, rel=0.1)
    assert fit.k == pytest.approx(0.8, rel=0.1)


def test_fit_intensity_needs_three_points_and_a_decay():
    assert fit_intensity([], 10, 1, 10) is None
    assert fit_intensity([0.1, 0.2], 10, 1, 10) is None  # one bucket reached
    assert fit_intensity([5.0] * 30, 10, 1, 10) is None  # flat: no decay to fit


def test_intensity_estimator_windows_warms_up_and_falls_back():
    est = IntensityEstimator(window_s=1000, bucket=0.25, buckets=16, fallback=(5.0, 3.0),
                             a_bounds=(0.01, 100.0), k_bounds=(0.01, 100.0))
    trades = poisson_trades(A=1.5, k=1.2, seconds=3000, seed=5)
    assert est.values == (5.0, 3.0)
    now = 0.0
    for i in range(0, len(trades), 50):
        batch = trades[i:i + 50]
        now = batch[-1][0]
        est.update(now, 100.0, batch)
        if now < 1000:
            assert est.values == (5.0, 3.0)  # warm-up: a whole window first
    A, k = est.values
    assert A == pytest.approx(1.5, rel=0.2)
    assert k == pytest.approx(1.2, rel=0.2)
    # a quiet market: the window empties and the fall-back is back
    est.update(now + 2000, 100.0, [])
    assert est.values == (5.0, 3.0)


def test_intensity_estimator_clamps_to_bounds():
    est = IntensityEstimator(window_s=1000, bucket=0.25, buckets=16, fallback=(1.0, 1.0),
                             a_bounds=(0.01, 1.0), k_bounds=(2.0, 100.0))
    trades = poisson_trades(A=1.5, k=1.2, seconds=1500, seed=6)
    est.update(0.0, 100.0)
    est.update(1500.0, 100.0, trades)
    assert est.values == (1.0, 2.0)
