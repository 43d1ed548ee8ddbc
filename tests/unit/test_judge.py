"""The canary judge with known answers: exact properties of its tests, then simulated
canaries in the conditions of production (shared outages, drift, ramps, bursts, heavy tails,
thin traffic, warm-up), where a candidate identical to the stable must never be rolled back
and a real regression must be."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
from scipy.stats import binom, hypergeom  # type: ignore[import-untyped]

from slipway.deploy.planning import thin_traffic
from slipway.judge.histogram import Histogram
from slipway.judge.split import SplitTest
from slipway.judge.verdict import (
    Arm,
    Evidence,
    Progress,
    Settings,
    hard_guard,
    judge,
    unproven,
)

DEFAULTS = Settings()
READY = Progress(step_requests=10_000, step_seconds=60, min_requests=200, min_seconds=30)


# -- the split test: exact expectations --------------------------------------------------


def expected_ratio(test: SplitTest, n_c: int, n_s: int, p_c: float, p_s: float, delta: float):
    """E[LR] of one stratum for every alternative of the grid, by exact enumeration."""
    xs, ys = np.arange(n_c + 1), np.arange(n_s + 1)
    pc, ps = binom.pmf(xs, n_c, p_c), binom.pmf(ys, n_s, p_s)
    total = np.zeros(len(test.ratios))
    for x, px in zip(xs, pc, strict=True):
        for y, py in zip(ys, ps, strict=True):
            if px * py < 1e-15:
                continue
            probe = SplitTest(worse=test.worse)
            probe.add(float(x), float(y), n_c, n_s, delta)
            total += px * py * np.exp(probe.log_products)
    return total


@pytest.mark.parametrize(
    ("n_c", "n_s", "p_s"), [(10, 190, 0.01), (50, 150, 0.2), (100, 100, 0.5), (5, 30, 0.0)]
)
def test_a_stratum_is_an_e_value_at_the_margin_whatever_the_shared_rate(n_c, n_s, p_s) -> None:
    delta = 0.005
    worse = expected_ratio(SplitTest(worse=True), n_c, n_s, p_s + delta, p_s, delta)
    assert worse.max() <= 1 + 1e-9
    better = expected_ratio(SplitTest(worse=False), n_c, n_s, p_s + delta, p_s, delta)
    assert better.max() <= 1 + 1e-9
    # and a candidate truly worse than the margin gives the test of "worse" an edge
    bad = expected_ratio(SplitTest(worse=True), n_c, n_s, min(1.0, 3 * p_s + 0.05), p_s, delta)
    assert bad.max() > 1


def test_a_threshold_blind_to_the_release_gives_an_e_value_hypergeometric_split() -> None:
    """Latency events: K requests above a threshold taken from both releases' requests;
    under exchangeability the candidate's count among them is hypergeometric."""
    test = SplitTest(worse=True)
    n_c, n_s, k = 20, 180, 20
    counts = np.arange(0, k + 1)
    probability = hypergeom.pmf(counts, n_c + n_s, n_c, k)
    expected = np.zeros(len(test.ratios))
    for mine, chance in zip(counts, probability, strict=True):
        probe = SplitTest(worse=True)
        probe.add(float(mine), float(k - mine), n_c, n_s, 0.0)
        expected += chance * np.exp(probe.log_products)
    assert expected.max() <= 1 + 1e-9


def test_clustered_events_are_tempered_by_the_dispersion_the_stable_shows() -> None:
    rng = np.random.default_rng(3)
    test = SplitTest(worse=True)
    for _ in range(120):  # the stable's errors come in clusters of 5
        test.clustering.add(5.0 * rng.poisson(0.4), 200)
    assert 3.5 < test.dispersion < 7


def errors_per_second(rng: np.random.Generator, cluster: int, bursts: bool, n: int = 190) -> float:
    """One second of the stable: 1% errors in clusters of `cluster` (one release's own),
    and in 1 second of 20 a burst of 30% independent errors (a dependency both share)."""
    if bursts and rng.random() < 0.05:
        return float(rng.binomial(n, 0.3))
    return float(min(n, cluster * rng.poisson(n * 0.01 / cluster)))


def test_shared_error_bursts_do_not_inflate_the_dispersion() -> None:
    """A burst both releases share cancels within a second: it is no clustering, before the
    canary (the stable's seconds) nor during it."""
    phis = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        test = SplitTest(worse=True)
        for _ in range(120):
            test.clustering.add(errors_per_second(rng, 1, bursts=True), 190)
        phis.append(test.dispersion)
        for _ in range(60):  # the canary at 5%: the same bursts on both releases
            rate = 0.3 if rng.random() < 0.05 else 0.01
            test.add(float(rng.binomial(10, rate)), float(rng.binomial(190, rate)), 10, 190, 0.005)
        phis.append(test.dispersion)
    # main's index: a median of about 30. The splits' own dispersion at a 5% share is noisy
    # (one candidate error in a burst second moves it), hence the median during the canary.
    assert max(phis[0::2]) < 1.4, phis
    assert float(np.median(phis[1::2])) < 1.3, phis


@pytest.mark.parametrize("m", [3, 5])
def test_clusters_of_m_still_give_about_m_among_shared_bursts(m: int) -> None:
    phis = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        test = SplitTest(worse=True)
        for _ in range(120):
            test.clustering.add(errors_per_second(rng, m, bursts=True), 190)
        phis.append(test.dispersion)
    assert 0.7 * m < float(np.median(phis)) < 1.4 * m, phis
    # rarely low (120 s hold only about 45 clusters): too low a φ is what a cluster exploits
    assert np.mean(np.array(phis) > 0.5 * m) >= 0.9, phis


# -- simulated canaries ------------------------------------------------------------------

Shape = Callable[[int], tuple[float, float, int]]  # second → (error rate, latency ×, requests/s)


@dataclass(frozen=True)
class World:
    """What both releases share, second by second, and what the candidate does differently."""

    shared: Shape
    candidate_errors: float = 0.0  # added to the shared error rate
    candidate_latency: float = 1.0  # multiplies the shared latency
    tail_from_ms: float | None = None  # latencies above this (the stable's) …
    tail_factor: float = 1.0  # … take this much longer on the candidate
    cluster: int = 1  # errors come in clusters this big, each in one release
    warmup: int = 0  # the candidate's first seconds: this much slower (×2)
    pareto: bool = False  # heavy-tailed latency


def steady(rate: int = 200) -> Shape:
    return lambda t: (0.01, 1.0, rate)


def served(world: World, rng: np.random.Generator, n: int, rate: float, scale: float, mine: bool):
    errors_p = rate + (world.candidate_errors if mine else 0.0)
    if world.cluster > 1:
        errors = min(n, world.cluster * int(rng.poisson(n * errors_p / world.cluster)))
    else:
        errors = int(rng.binomial(n, min(1.0, errors_p)))
    if world.pareto:
        latency = 20.0 * (1 + rng.pareto(1.5, n - errors)) * scale
    else:
        latency = rng.lognormal(math.log(50.0 * scale), 0.5, n - errors)
    if mine:
        latency = latency * world.candidate_latency
        if world.tail_from_ms is not None:
            latency = np.where(latency > world.tail_from_ms, latency * world.tail_factor, latency)
    return Arm(n, errors, Histogram.of(latency))


def canary(world: World, seed: int, settings: Settings = DEFAULTS) -> tuple[str, int]:
    """A canary at 5% → 25% → 50%, 30 s and 200 candidate requests per step, the stable's
    last 120 s known beforehand. Returns (decision, candidate requests)."""
    rng = np.random.default_rng(seed)
    evidence = Evidence(settings)
    for t in range(-120, 0):
        rate, scale, n = world.shared(t)
        evidence.learn(served(world, rng, n, rate, scale, mine=False))
    steps, step, began, step_requests, warm = (0.05, 0.25, 0.50), 0, 0, 0, 0
    recent: list[tuple[Arm, Arm]] = []
    for t in range(900):
        rate, scale, n = world.shared(t)
        n_c = int(rng.binomial(n, steps[step]))
        slow = 2.0 if warm < world.warmup else 1.0
        warm += 1 if n_c else 0
        mine = served(world, rng, n_c, rate, scale * slow, mine=True)
        theirs = served(world, rng, n - n_c, rate, scale, mine=False)
        evidence.add_second(theirs, mine, step)
        recent = [*recent[-4:], (theirs, mine)]
        step_requests += n_c
        progress = Progress(step_requests, t + 1 - began, 200, 30, final_step=step == 2)
        verdict = judge(evidence, recent, progress)
        if verdict.decision == "rollback":
            return "rollback", evidence.candidate.requests
        if verdict.decision == "promote":
            if step == 2:
                return "promoted", evidence.candidate.requests
            step, began, step_requests = step + 1, t + 1, 0
    return "inconclusive", evidence.candidate.requests


def outage(start: int, seconds: int = 15) -> Shape:
    """Something both releases depend on fails 40% of requests and triples latency."""
    return lambda t: (0.4, 3.0, 200) if start <= t < start + seconds else (0.01, 1.0, 200)


A_A = {
    "steady": World(steady()),
    "outage in the 5% step": World(outage(10)),
    "outage in the 25% step": World(outage(40)),
    "outage in the 50% step": World(outage(70)),
    "latency drifting up": World(lambda t: (0.01, 1 + max(t, 0) / 150, 200)),
    "latency drifting down": World(lambda t: (0.01, 3 / (1 + max(t, 0) / 60), 200)),
    "traffic ramping": World(lambda t: (0.01, 1.0, 50 + 3 * max(t, 0))),
    "errors rising for both": World(lambda t: (0.01 + max(t, 0) / 4000, 1.0, 200)),
    "shared error bursts": World(lambda t: (0.3 if t % 17 == 0 else 0.01, 1.0, 200)),
    "errors in clusters of 5": World(steady(), cluster=5),
    "heavy-tailed latency": World(steady(), pareto=True),
    "candidate warm-up": World(steady(), warmup=4),
}


@pytest.mark.parametrize("condition", list(A_A))
def test_an_identical_candidate_is_never_rolled_back(condition: str) -> None:
    for seed in range(4):
        decision, _ = canary(A_A[condition], seed)
        assert decision != "rollback", f"{condition}, seed {seed}"


def test_an_identical_candidate_is_promoted_through_shared_error_bursts() -> None:
    for seed in range(2):
        assert canary(A_A["shared error bursts"], seed)[0] == "promoted", f"seed {seed}"


def test_an_identical_candidate_on_thin_traffic_is_inconclusive_not_failed() -> None:
    decision, requests = canary(World(steady(rate=4)), 1)
    assert decision == "inconclusive" and requests < 1000


REGRESSIONS = {
    "errors 1% → 5%": World(steady(), candidate_errors=0.04),
    "errors 1% → 5% during a shared outage": World(outage(20), candidate_errors=0.04),
    "median +50%": World(steady(), candidate_latency=1.5),
    "median +50% while latency drifts up": World(
        lambda t: (0.01, 1 + max(t, 0) / 150, 200), candidate_latency=1.5
    ),
    "p99 only ×2": World(steady(), tail_from_ms=110.0, tail_factor=2.0),
    "a broken release (10% errors) among clustered errors": World(
        steady(), candidate_errors=0.09, cluster=3
    ),
}


@pytest.mark.parametrize("regression", list(REGRESSIONS))
def test_a_regression_is_rolled_back(regression: str) -> None:
    for seed in range(3):
        decision, _ = canary(REGRESSIONS[regression], seed)
        assert decision == "rollback", f"{regression}, seed {seed}"


def test_a_difference_within_the_allowed_increase_never_fails() -> None:
    for world in (World(steady(), candidate_errors=0.003), World(steady(), candidate_latency=1.05)):
        for seed in range(3):
            assert canary(world, seed)[0] != "rollback"


def test_promotion_needs_evidence_of_no_worse() -> None:
    """Without enough data the last step holds, inconclusive: never a silent promotion."""
    evidence = Evidence(Settings())
    rng = np.random.default_rng(1)
    for _ in range(3):
        served_s = served(World(steady()), rng, 100, 0.01, 1.0, mine=False)
        evidence.add_second(served_s, served(World(steady()), rng, 100, 0.01, 1.0, mine=True))
    verdict = judge(evidence, [], replace(READY, final_step=True))
    assert verdict.decision == "inconclusive"
    assert "not yet shown to be no worse" in verdict.reason


def test_the_hard_guard_compares_with_the_stable_in_the_same_seconds() -> None:
    settings = Settings()
    both_failing = [(Arm(190, 120), Arm(30, 20))] * 5
    assert hard_guard(both_failing, settings) is None  # a shared outage
    alone = [(Arm(190, 2), Arm(30, 20))] * 5
    reason = hard_guard(alone, settings)
    assert reason is not None and "more ≥ abort_error_rate" in reason
    few = [(Arm(190, 0), Arm(3, 3))]
    assert hard_guard(few, settings) is None  # too few requests to say


def test_ingest_losses_and_thin_steps_hold_the_verdict() -> None:
    evidence = Evidence(Settings())
    lossy = replace(READY, ingest_complete=False, ingest_note="12 lines lost")
    assert judge(evidence, [], lossy).decision == "inconclusive"
    thin = replace(READY, step_requests=10)
    assert judge(evidence, [], thin).reason == "inconclusive: 10 of 200 requests"
    early = replace(READY, step_seconds=3)
    assert judge(evidence, [], early).decision == "continue"


def test_thin_traffic_is_said_up_front_with_settings_that_would_work() -> None:
    note = thin_traffic(2.0, [5, 25, 50], 200, 30, 600)
    assert note is not None
    assert "2.0 requests/s" in note and "0.10/s" in note
    assert "step_min_requests = 48" in note and "a first step of 17%" in note
    assert thin_traffic(200.0, [5, 25, 50], 200, 30, 600) is None
    assert "never" in (thin_traffic(0.0, [5], 200, 30, 600) or "")


def test_thin_traffic_looks_at_every_step_and_whether_the_judge_can_decide_there() -> None:
    """10 requests/s fills every step's 200 requests, but at 5 candidate requests/s in the
    last step a good candidate is not shown no worse within 600 s (bench.judge: every A/A
    canary of 10 req/s was aborted there); 200 requests/s is plenty."""
    rng = np.random.default_rng(2)
    latency = Histogram.of(rng.lognormal(math.log(50.0), 0.5, 12_000))

    def judged(plan: list[tuple[float, float]]) -> list[str]:
        return unproven(DEFAULTS, plan, 0.01, latency)

    assert thin_traffic(10.0, [5, 25, 50], 200, 30, 600) is None  # what main said
    note = thin_traffic(10.0, [5, 25, 50], 200, 30, 600, judged)
    assert note is not None and "last step (50%)" in note and "5.00/s" in note
    assert "error rate" in note and 'step_timeout = "' in note, note
    assert thin_traffic(200.0, [5, 25, 50], 200, 30, 600, judged) is None
    # a step that cannot fill is still said first
    assert "step_min_requests = " in (thin_traffic(2.0, [5, 25, 50], 200, 30, 600, judged) or "")


def test_a_verdict_serialises_to_plain_json() -> None:
    import json

    rng = np.random.default_rng(2)
    evidence = Evidence(Settings())
    for _ in range(20):
        stable = served(World(steady()), rng, 190, 0.01, 1.0, mine=False)
        evidence.add_second(stable, served(World(steady()), rng, 10, 0.01, 1.0, mine=True))
    data = judge(evidence, [], READY).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert {c["metric"] for c in data["checks"]} == {
        "error rate",
        "latency p50",
        "latency p90",
        "latency p99",
    }
