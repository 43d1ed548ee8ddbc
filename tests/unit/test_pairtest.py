"""The performance gate's sequential test (gates/pairtest.py), on data whose answer is known:
simulated pairs where both releases share the machine's noise, as they do in the gate."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from collections.abc import Callable

import pytest

from slipway.gates.pairtest import (
    SLOWER_GRID,
    WITHIN_GRID,
    Limits,
    Pairs,
    block_pairs,
    decide,
    log_mixture_e,
    median_bounds,
    min_pairs_to_decide,
    quantile,
)

P95 = Limits({"p95": 0.20}, floor_ms=2.0, max_error_rate=0.001, alpha=0.01, min_error_pairs=1000)
LOOK_EVERY = 100  # pairs between looks, as loadrun's batches

Service = Callable[[random.Random], float]


def lognormal(median_ms: float, sigma: float) -> Service:
    return lambda rng: median_ms * rng.lognormvariate(0, sigma)


def pareto(scale_ms: float, shape: float) -> Service:
    """Heavy-tailed: shape 1.5 has no variance."""
    return lambda rng: scale_ms * rng.paretovariate(shape)


def simulate(
    seed: int,
    stable: Service,
    factor: float = 1.0,
    budget: int = 4000,
    limits: Limits = P95,
    fail_rate: float = 0.0,
    mean_burst: float = 15.0,
) -> tuple[str, int]:
    """Pairs as the gate measures them, judged after every batch as the gate does: the
    decision and the pairs it took (the budget: the default 2,000 measured twice, as
    on_inconclusive = "retry" does). The machine has bursts (another service's peak, a
    build): while one lasts (a quarter of the time), every request is slowed by a random
    share of it, both releases' alike (their requests in a pair are back to back)."""
    rng = random.Random(seed)
    pairs = Pairs()
    burst = 0.0
    for i in range(1, budget + 1):
        if rng.random() < 0.03:
            burst = rng.expovariate(1 / mean_burst)  # ms: a burst starts
        elif rng.random() < 0.1:
            burst = 0.0

        def latency(service: float, burst: float = burst) -> float:
            return service * (1 + burst / 10 * rng.random()) + burst * rng.random()

        candidate = latency(factor * stable(rng))
        pairs.add(candidate, latency(stable(rng)), rng.random() < fail_rate, False)
        if i % LOOK_EVERY == 0:
            judgement = decide(pairs, limits, exhausted=i == budget)
            if judgement.decision != "continue":
                return judgement.decision, i
    raise AssertionError("the last look is always a decision")


def outcomes(runs: int, **kwargs: object) -> Counter[str]:
    return Counter(simulate(seed, **kwargs)[0] for seed in range(runs))  # type: ignore[arg-type]


# the e-values -----------------------------------------------------------------------------


def test_e_values_have_known_values() -> None:
    assert log_mixture_e(0, 0, 0.5, SLOWER_GRID) == 0.0
    # one block, slower: the average of 2q over the grid (0.55 … 0.95) is 1.5
    assert math.exp(log_mixture_e(1, 1, 0.5, SLOWER_GRID)) == pytest.approx(1.5)
    assert math.exp(log_mixture_e(0, 1, 0.5, WITHIN_GRID)) == pytest.approx(1.5)
    # ten blocks all slower: the 0.95 alternative dominates
    expected = sum((2 * q) ** 10 for q in SLOWER_GRID) / len(SLOWER_GRID)
    assert math.exp(log_mixture_e(10, 10, 0.5, SLOWER_GRID)) == pytest.approx(expected)


def test_the_fail_e_process_crosses_its_threshold_at_most_alpha_often_under_the_null() -> None:
    """Ville's inequality, checked: blocks slower with chance exactly 1/2 (the null's
    worst case), 400 blocks each looked at after every block."""
    rng, alpha, runs, crossed = random.Random(7), 0.1, 2000, 0
    for _ in range(runs):
        k = 0
        for n in range(1, 401):
            k += rng.random() < 0.5
            if log_mixture_e(k, n, 0.5, SLOWER_GRID) >= math.log(1 / alpha):
                crossed += 1
                break
    assert crossed / runs <= alpha  # ~0.03 in fact: the bound is not tight


def test_block_sizes_and_the_fewest_pairs_that_can_decide() -> None:
    assert [block_pairs(p) for p in (0.5, 0.95, 0.99)] == [20, 40, 200]
    # 11 blocks all one way reach both thresholds at alpha 0.01 with two fail tests
    assert min_pairs_to_decide(0.95, 0.01, 2) == 11 * 40
    assert min_pairs_to_decide(0.99, 0.01, 2) == 11 * 200


def test_quantile_is_an_observed_value_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert quantile(values, 0.95) == 95.0
    assert quantile(values, 0.5) == 50.0
    assert quantile([7.0], 0.99) == 7.0


def test_the_median_interval_covers_the_median() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(0, 0.3) for _ in range(200)]  # median 1
    low, high = median_bounds(values, 0.01)
    assert low < 1.0 < high
    assert high - low < 0.3
    assert median_bounds(values[:5], 0.01) == (0.0, math.inf), "too few to say anything"


# decisions with known answers -------------------------------------------------------------


def test_identical_releases_under_shared_noise_bursts_never_fail() -> None:
    found = outcomes(200, stable=lognormal(5, 0.3))
    assert found["fail"] == 0
    assert found["pass"] >= 195, found


def test_identical_releases_pass_early() -> None:
    """Latency is decided within about 500 pairs; with max_error_rate 0.1%, the error check
    needs 1,000 (fewer cannot tell 0.1% from zero)."""
    latency_only = Limits({"p95": 0.20}, 2.0, 0.001, 0.01, min_error_pairs=0)
    taken = [simulate(seed, lognormal(5, 0.3), limits=latency_only)[1] for seed in range(20)]
    assert statistics.median(taken) <= 700 and max(taken) <= 2000, taken
    taken = [simulate(seed, lognormal(5, 0.3))[1] for seed in range(20)]
    assert statistics.median(taken) <= 1100 and max(taken) <= 2000, taken


def test_a_candidate_one_and_a_half_times_slower_fails() -> None:
    found = outcomes(50, stable=lognormal(20, 0.3), factor=1.5)
    assert found == {"fail": 50}
    taken = [simulate(seed, lognormal(20, 0.3), factor=1.5)[1] for seed in range(20)]
    assert statistics.median(taken) <= 1000 and max(taken) <= 2000, taken


def test_a_difference_within_the_margin_passes() -> None:
    found = outcomes(50, stable=lognormal(20, 0.3), factor=1.05)
    assert found == {"pass": 50}


def test_a_difference_at_the_margin_is_never_passed_and_rarely_failed() -> None:
    """×1.2 is exactly what is allowed: neither side can be shown, so the budget runs out."""
    found = outcomes(30, stable=lognormal(20, 0.3), factor=1.2)
    assert found["pass"] <= 1 and found["fail"] <= 1, found
    assert found["inconclusive"] >= 28, found


def test_heavy_tails_identical_never_fail_and_slower_fails() -> None:
    """Pareto latencies (shape 1.5: no variance). A block's p95 is noisy there, so an
    identical release is often undecided within the budget: never failed."""
    heavy = pareto(5, 1.5)
    same = outcomes(100, stable=heavy)
    assert same["fail"] == 0
    assert same["pass"] >= 30, same
    slower = outcomes(30, stable=heavy, factor=2.0)
    assert slower["fail"] >= 29, slower


def test_a_difference_below_the_noise_floor_is_never_a_regression() -> None:
    # ×1.5 but about 0.6 ms at p95 on a quiet machine: within min_latency_increase (2 ms)
    quiet = {"stable": lognormal(1, 0.1), "factor": 1.5, "mean_burst": 0.2}
    assert outcomes(20, **quiet) == {"pass": 20}
    no_floor = Limits({"p95": 0.20}, 0.0, 0.001, 0.01, 1000)
    assert outcomes(20, **quiet, limits=no_floor) == {"fail": 20}


def test_each_watched_quantile_has_its_own_limit() -> None:
    """Only the slowest 2% of the candidate's requests are 10× slower: p95 is within,
    p99 is not."""
    pairs = Pairs()
    rng = random.Random(5)
    for i in range(4400):
        slow = 10.0 if i % 50 == 0 else 1.0  # 2%, spread evenly over the blocks
        candidate = slow * 10 * rng.lognormvariate(0, 0.1)
        pairs.add(candidate, 10 * rng.lognormvariate(0, 0.1), False, False)
    p95 = decide(pairs, P95, exhausted=False)
    assert p95.decision == "pass", p95.reason
    both = Limits({"p95": 0.2, "p99": 0.5}, 2.0, 0.001, 0.01, 1000)
    judged = decide(pairs, both, exhausted=False)
    assert judged.decision == "fail"
    assert [c.verdict for c in judged.latency] == ["within", "slower"]
    assert "p99" in judged.reason and judged.latency[1].slower_blocks == judged.latency[1].blocks


def test_too_many_errors_fail_with_confidence_and_a_few_wait_for_evidence() -> None:
    assert outcomes(10, stable=lognormal(5, 0.3), fail_rate=0.05) == {"fail": 10}
    pairs = Pairs()
    for i in range(500):
        pairs.add(5.0, 5.0, i == 0, False)  # one error in 500: 0.2%, allowed 0.1%
    judged = decide(pairs, P95, exhausted=False)
    assert judged.errors.verdict == "undecided"
    assert judged.decision == "continue"
    for _ in range(500):
        pairs.add(5.0, 5.0, False, False)  # one in 1000: at the allowed rate, after 1/rate
    assert decide(pairs, P95, exhausted=False).decision == "pass"


def test_no_errors_is_not_enough_before_one_over_the_rate() -> None:
    pairs = Pairs()
    for _ in range(600):
        pairs.add(5.0, 5.0, False, False)
    judged = decide(pairs, P95, exhausted=False)
    assert judged.latency[0].verdict == "within"
    assert judged.errors.verdict == "undecided", "600 requests cannot tell 0.1% from 0"


def test_without_a_stable_release_only_errors_are_judged() -> None:
    pairs = Pairs()
    for _ in range(1000):
        pairs.add(50.0, None, False, False)
    judged = decide(pairs, P95, exhausted=False, compare=False)
    assert judged.decision == "pass" and judged.latency == []


def test_a_spent_budget_without_a_decision_is_inconclusive() -> None:
    decision, taken = simulate(1, lognormal(20, 0.3), factor=1.2, budget=1000)
    assert (decision, taken) == ("inconclusive", 1000)
    judged = decide(Pairs(), P95, exhausted=True)
    assert judged.decision == "inconclusive"
