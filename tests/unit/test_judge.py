"""The judge on generated data with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from slipway.judge.histogram import Histogram
from slipway.judge.sequential import log_mixture, rate_bounds
from slipway.judge.verdict import Arm, Evidence, Progress, Settings, judge, quantile_upper_bound

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


# -- verdicts --------------------------------------------------------------------------


def evidence(
    rng: np.random.Generator,
    seconds: int = 60,
    stable: tuple[int, float, float] = (180, 0.01, 20.0),  # requests/s, error rate, median
    candidate: tuple[int, float, float] = (20, 0.01, 20.0),
    settings: Settings | None = None,
) -> Evidence:
    """The judge's evidence after `seconds` of traffic, fed one second at a time."""
    ev = Evidence(settings or Settings())
    for _ in range(seconds):
        ev.add_second(
            arm(stable[0], stable[1], stable[2], rng),
            arm(candidate[0], candidate[1], candidate[2], rng),
        )
    return ev


def test_a_a_is_never_rolled_back_and_is_promoted() -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        verdict = judge(evidence(rng, seconds=40), Arm(), READY)
        assert verdict.decision == "promote", verdict.reason


def test_error_regression_is_rolled_back_with_its_numbers() -> None:
    rng = np.random.default_rng(4)
    verdict = judge(evidence(rng, candidate=(20, 0.05, 20.0)), Arm(), READY)
    assert verdict.decision == "rollback"
    assert "error rate" in verdict.reason and "allowed +0.50pp" in verdict.reason
    errors = verdict.checks[0]
    assert errors.regression and errors.bounds[0] > 0.005


def test_median_regression_is_rolled_back() -> None:
    rng = np.random.default_rng(5)
    verdict = judge(evidence(rng, candidate=(20, 0.0, 30.0)), Arm(), READY)
    assert verdict.decision == "rollback"
    assert "latency p50" in verdict.reason and "slower than" in verdict.reason


def test_a_tail_only_regression_is_rolled_back() -> None:
    """p50 and p90 unchanged; the slowest 2% of the candidate's requests twice as slow."""
    rng = np.random.default_rng(11)
    ev = Evidence(Settings())
    cut = math.exp(math.log(20) + 0.4 * 2.054)  # the stable's 98th percentile
    for _ in range(120):
        ev.add_second(arm(100, 0.0, 20, rng), Arm())
        values = rng.lognormal(math.log(20), 0.4, 100)
        values[values > cut] *= 2
        ev.add_second(Arm(), Arm(100, 0, Histogram.of(values)))
    verdict = judge(ev, Arm(), READY)
    assert verdict.decision == "rollback", verdict.reason
    assert "latency p99" in verdict.reason and "latency p50" not in verdict.reason


def test_a_difference_below_the_allowed_increase_never_fails() -> None:
    rng = np.random.default_rng(6)
    # +0.2pp errors and +4% latency: real, measurable, and allowed.
    ev = evidence(rng, seconds=200, stable=(1000, 0.010, 20.0), candidate=(1000, 0.012, 20.8))
    verdict = judge(ev, Arm(), READY)
    assert verdict.decision == "promote", verdict.reason


def test_the_last_step_needs_evidence_that_the_candidate_is_no_worse() -> None:
    rng = np.random.default_rng(12)
    final = Progress(
        step_requests=1_000, step_seconds=60, min_requests=200, min_seconds=30, final_step=True
    )
    early = judge(evidence(rng, seconds=5), Arm(), final)
    assert early.decision == "inconclusive"
    assert early.reason.startswith("inconclusive: not yet shown to be no worse")
    assert judge(evidence(rng, seconds=5), Arm(), READY).decision != "inconclusive", (
        "earlier steps move on without that proof"
    )
    later = judge(evidence(rng, seconds=300, candidate=(180, 0.01, 20.0)), Arm(), final)
    assert later.decision == "promote", later.reason
    assert all(c.no_worse for c in later.checks)


def test_the_evidence_does_not_depend_on_how_often_the_judge_looks() -> None:
    one, two = np.random.default_rng(13), np.random.default_rng(13)
    a = evidence(one, seconds=30)
    b = evidence(two, seconds=30)
    judge(b, Arm(), READY)  # looking changes nothing
    assert [(t.slower, t.n) for t in a.tails] == [(t.slower, t.n) for t in b.tails]


def test_hard_guard_acts_without_statistics() -> None:
    verdict = judge(Evidence(Settings(abort_error_rate=0.5)), Arm(30, 18), READY)
    assert verdict.decision == "rollback" and verdict.reason.startswith("hard guard")
    few = judge(Evidence(Settings()), Arm(5, 5), READY)
    assert not few.reason.startswith("hard guard"), "5 requests are too few for the guard"


def test_too_little_traffic_is_inconclusive_not_a_failure() -> None:
    rng = np.random.default_rng(8)
    progress = Progress(step_requests=37, step_seconds=120, min_requests=200, min_seconds=30)
    verdict = judge(evidence(rng, seconds=2), Arm(), progress)
    assert verdict.decision == "inconclusive"
    assert verdict.reason == "inconclusive: 37 of 200 requests"


def test_step_time_is_waited_for() -> None:
    rng = np.random.default_rng(9)
    progress = Progress(step_requests=500, step_seconds=12, min_requests=200, min_seconds=30)
    verdict = judge(evidence(rng, seconds=10), Arm(), progress)
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
    verdict = judge(evidence(rng, seconds=10), Arm(), progress)
    assert verdict.decision == "inconclusive" and "dropped 12" in verdict.reason


def test_quantile_upper_bound_is_above_the_quantile_and_tightens() -> None:
    rng = np.random.default_rng(14)
    values = rng.lognormal(math.log(20), 0.5, 200_000)
    exact = float(np.quantile(values, 0.99))
    small = quantile_upper_bound(Histogram.of(values[:2_000]), 0.99, 0.01)
    large = quantile_upper_bound(Histogram.of(values), 0.99, 0.01)
    assert exact < large < small
    assert large < exact * 1.05
    assert math.isinf(quantile_upper_bound(Histogram.of(values[:50]), 0.99, 0.01))


@pytest.mark.parametrize("seed", range(3))
def test_verdict_serialises(seed: int) -> None:
    rng = np.random.default_rng(seed)
    verdict = judge(evidence(rng, seconds=3), Arm(), READY)
    data = verdict.to_dict()
    assert data["decision"] in ("promote", "continue", "inconclusive", "rollback")
    assert data["checks"][0]["metric"] == "error rate"
    assert all(isinstance(c["text"], str) for c in data["checks"])
