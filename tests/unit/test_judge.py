"""The judge on generated data with known answers."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from slipway.judge.histogram import Histogram
from slipway.judge.sequential import dkw_epsilon, log_mixture, rate_bounds
from slipway.judge.verdict import Arm, Progress, Settings, judge

READY = Progress(step_requests=10_000, step_seconds=60, min_requests=200, min_seconds=30)


def arm(
    requests: int, error_rate: float, median_ms: float, rng: np.random.Generator, sigma: float = 0.4
) -> Arm:
    errors = int(rng.binomial(requests, error_rate))
    latencies = rng.lognormal(math.log(median_ms), sigma, requests - errors)
    return Arm(requests, errors, Histogram.of(latencies))


# -- histogram -------------------------------------------------------------------------


def test_histogram_quantiles_are_within_one_percent() -> None:
    values = np.random.default_rng(1).lognormal(math.log(20), 0.6, 50_000)
    hist = Histogram.of(values)
    assert hist.n == 50_000
    for p in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, p))
        assert abs(hist.quantile(p) / exact - 1) < 0.01
        assert hist.quantile_lower(p) <= exact <= hist.quantile_upper(p) * 1.0001


def test_histogram_round_trips_through_its_sparse_form() -> None:
    hist = Histogram.of([1, 1, 2, 250, 3000])
    again = Histogram.from_sparse({str(k): v for k, v in hist.to_sparse().items()})
    assert again.to_sparse() == hist.to_sparse() and again.n == 5


def test_quantile_bounds_past_the_ends() -> None:
    hist = Histogram.of([10.0] * 100)
    assert hist.quantile_lower(-0.1) == 0.0
    assert math.isinf(hist.quantile_upper(1.01))
    assert math.isnan(Histogram().quantile(0.5))


# -- confidence sequences --------------------------------------------------------------


def test_rate_bounds_contain_the_estimate_and_shrink() -> None:
    wide = rate_bounds(10, 1_000, 0.05)
    narrow = rate_bounds(100, 10_000, 0.05)
    assert wide[0] < 0.01 < wide[1] and narrow[0] < 0.01 < narrow[1]
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert rate_bounds(0, 0, 0.05) == (0.0, 1.0)
    assert rate_bounds(0, 5_000, 0.05)[0] == 0.0


def test_rate_bounds_hold_at_every_look_with_probability_one_minus_alpha() -> None:
    """Look after every 250 requests, 40,000 requests long: the true rate is excluded at some
    look in at most alpha of the runs (the point of an anytime-valid bound)."""
    rng = np.random.default_rng(7)
    alpha, rate, runs, misses = 0.1, 0.02, 100, 0
    for _ in range(runs):
        events = np.cumsum(rng.random(40_000) < rate)
        for n in range(250, 40_001, 250):
            lo, hi = rate_bounds(int(events[n - 1]), n, alpha)
            if not lo <= rate <= hi:
                misses += 1
                break
    assert misses / runs <= alpha


def test_log_mixture_is_smallest_near_the_observed_rate() -> None:
    values = {r: log_mixture(50, 1_000, r) for r in (0.01, 0.03, 0.05, 0.07, 0.2)}
    assert min(values, key=values.__getitem__) == 0.05


def test_dkw_band_narrows_with_samples() -> None:
    assert dkw_epsilon(0, 0.05) == 1.0
    assert dkw_epsilon(100, 0.05) > dkw_epsilon(10_000, 0.05) > dkw_epsilon(1_000_000, 0.05)
    assert 0.02 < dkw_epsilon(10_000, 0.0125) < 0.04


# -- verdicts --------------------------------------------------------------------------


def test_a_a_is_never_rolled_back_and_is_promoted() -> None:
    rng = np.random.default_rng(3)
    settings = Settings()
    for _ in range(20):
        stable, candidate = arm(40_000, 0.01, 20, rng), arm(4_000, 0.01, 20, rng)
        verdict = judge(stable, candidate, Arm(), settings, READY)
        assert verdict.decision == "promote", verdict.reason


def test_error_regression_is_rolled_back_with_its_numbers() -> None:
    rng = np.random.default_rng(4)
    verdict = judge(arm(40_000, 0.01, 20, rng), arm(4_000, 0.05, 20, rng), Arm(), Settings(), READY)
    assert verdict.decision == "rollback"
    assert "error rate" in verdict.reason and "allowed +0.50pp" in verdict.reason
    errors = verdict.checks[0]
    assert errors.regression and errors.increase_bounds[0] > 0.005


def test_latency_regression_is_rolled_back() -> None:
    rng = np.random.default_rng(5)
    verdict = judge(arm(40_000, 0.0, 20, rng), arm(4_000, 0.0, 30, rng), Arm(), Settings(), READY)
    assert verdict.decision == "rollback"
    assert "latency p50" in verdict.reason


def test_a_difference_below_the_allowed_increase_never_fails() -> None:
    rng = np.random.default_rng(6)
    settings = Settings(max_error_rate_increase=0.005, max_latency_increase=0.10)
    # +0.3pp errors and +5% latency: real, measurable, and allowed.
    stable = arm(400_000, 0.010, 20, rng)
    candidate = arm(400_000, 0.013, 21, rng)
    verdict = judge(stable, candidate, Arm(), settings, READY)
    assert verdict.decision == "promote", verdict.reason


def test_hard_guard_acts_without_statistics() -> None:
    recent = Arm(30, 18)
    verdict = judge(Arm(100, 0), Arm(30, 18), recent, Settings(abort_error_rate=0.5), READY)
    assert verdict.decision == "rollback" and verdict.reason.startswith("hard guard")
    few = judge(Arm(100, 0), Arm(5, 5), Arm(5, 5), Settings(), READY)
    assert not few.reason.startswith("hard guard"), "5 requests are too few for the guard"


def test_too_little_traffic_is_inconclusive_not_a_failure() -> None:
    rng = np.random.default_rng(8)
    progress = Progress(step_requests=37, step_seconds=120, min_requests=200, min_seconds=30)
    verdict = judge(arm(5_000, 0.01, 20, rng), arm(37, 0.0, 20, rng), Arm(), Settings(), progress)
    assert verdict.decision == "inconclusive"
    assert verdict.reason == "inconclusive: 37 of 200 requests"


def test_step_time_is_waited_for() -> None:
    rng = np.random.default_rng(9)
    progress = Progress(step_requests=500, step_seconds=12, min_requests=200, min_seconds=30)
    verdict = judge(arm(5_000, 0.0, 20, rng), arm(500, 0.0, 20, rng), Arm(), Settings(), progress)
    assert verdict.decision == "continue" and "12s of 30s" in verdict.reason


def test_incomplete_request_data_holds_the_verdict() -> None:
    rng = np.random.default_rng(10)
    progress = Progress(
        step_requests=500,
        step_seconds=60,
        min_requests=200,
        min_seconds=30,
        ingest_complete=False,
        ingest_note="HAProxy dropped 12 log lines",
    )
    verdict = judge(arm(5_000, 0.0, 20, rng), arm(500, 0.0, 20, rng), Arm(), Settings(), progress)
    assert verdict.decision == "inconclusive" and "dropped 12" in verdict.reason


@pytest.mark.parametrize("seed", range(3))
def test_verdict_serialises(seed: int) -> None:
    rng = random.Random(seed)
    verdict = judge(Arm(100, rng.randint(0, 3)), Arm(10, 0), Arm(), Settings(), READY)
    data = verdict.to_dict()
    assert data["decision"] in ("promote", "continue", "inconclusive", "rollback")
    assert data["checks"][0]["metric"] == "error rate"
