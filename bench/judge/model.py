"""The simulated service: the conditions both releases share, the candidate's differences
(scenarios), and the cases the benchmark runs (a scenario under a condition).

Baseline traffic: 200 requests/s in total, split between the stable release and the
candidate by the candidate's share of the current step (5% → 25% → 50% → 100% = promoted,
slipway's default `steps`). Every request fails with the release's error rate (stable: 1%),
and the latency of a request that did not fail is lognormal: median 50 ms, sigma 0.5
(p90 ≈ 95 ms, p99 ≈ 160 ms, a typical web endpoint's spread).

A condition changes what both releases serve, second by second (time t counts from the
canary's first second; the 120 s before it, all on the stable release, are at t = 0's
values): the request rate, the error rate, a factor on every latency, and the mechanisms
(clusters, bursts, a heavy tail). A scenario is what the candidate does differently: an
error rate higher by a fixed amount (added to the shared one), a latency transform applied
to each request's base draw before the shared factor (so "p99 only" stays the top 1.5% of
the moment's requests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri  # type: ignore[import-untyped]

RATE = 200  # requests per second, both releases together
STEPS = (0.05, 0.25, 0.50)  # the candidate's share per partial step; after the last: 100%
STABLE_ERROR_RATE = 0.01
MEDIAN_MS = 50.0
SIGMA = 0.5
PARETO_SCALE_MS = 20.0  # heavy tail: 20 ms × U^(−1/shape): median 31.7 ms, p99 431 ms
PARETO_SHAPE = 1.5  # infinite variance
PRE_SECONDS = 120  # the stable's seconds before the canary, fed to Evidence.learn()

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Condition:
    """What both releases share. Every field's default is the stationary service."""

    key: str
    title: str
    rate: int = RATE  # requests/s at t ≤ 0 …
    rate_to: int | None = None  # … rising linearly to this …
    ramp_seconds: int = 180  # … over this long, then staying there
    errors_per_minute: float = 0.0  # the shared error rate rises by this much a minute
    drift: float = 1.0  # latency × drift^(t / 180 s): 2.0 doubles every 3 min, 0.5 halves
    outage_step: int | None = None  # a shared outage in this step (0: 5%, 1: 25%, 2: 50%) …
    outage_after: int = 5  # … beginning this long after the step began (each judge's own) …
    outage_seconds: int = 15  # … lasting this long …
    outage_error_rate: float = 0.40  # … failing this share of requests …
    outage_latency: float = 3.0  # … and multiplying latency by this
    burst_chance: float = 0.0  # each second, the chance of a shared error burst …
    burst_error_rate: float = 0.30  # … in which both releases fail this share
    cluster: int = 1  # errors come in clusters of this many requests of one release
    pareto: bool = False  # heavy-tailed latency instead of the lognormal
    warmup_seconds: int = 0  # the candidate's first seconds of the canary …
    warmup_factor: float = 2.0  # … are this much slower

    @property
    def max_rate(self) -> int:
        return max(self.rate, self.rate_to or 0)

    def rate_at(self, t: int) -> int:
        if self.rate_to is None or t <= 0:
            return self.rate
        done = min(1.0, t / self.ramp_seconds)
        return round(self.rate + (self.rate_to - self.rate) * done)

    def error_rate_at(self, t: int) -> float:
        return STABLE_ERROR_RATE + self.errors_per_minute * max(t, 0) / 60

    def latency_at(self, t: int) -> float:
        return float(self.drift ** (max(t, 0) / 180))

    def in_outage(self, step: int | None, step_seconds: int) -> bool:
        """`step_seconds`: seconds since the judge entered `step` (0 in its first)."""
        return (
            self.outage_step is not None
            and step == self.outage_step
            and self.outage_after <= step_seconds < self.outage_after + self.outage_seconds
        )

    def base_quantile(self, p: float) -> float:
        """The stable's true latency quantile at t ≤ 0 (ms), outside any outage."""
        if self.pareto:
            return float(PARETO_SCALE_MS * (1.0 - p) ** (-1.0 / PARETO_SHAPE))
        return MEDIAN_MS * math.exp(SIGMA * float(ndtri(p)))

    def base_latency(self, rng: np.random.Generator, shape: tuple[int, int]) -> Floats:
        if self.pareto:
            u = 1.0 - rng.random(shape)  # in (0, 1]
            heavy: Floats = PARETO_SCALE_MS * u ** (-1.0 / PARETO_SHAPE)
            return heavy
        lognormal: Floats = MEDIAN_MS * np.exp(SIGMA * rng.standard_normal(shape))
        return lognormal


def stable_quantile(p: float) -> float:
    """The stationary stable release's true latency quantile (ms)."""
    return STATIONARY.base_quantile(p)


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    candidate_error_rate: float = STABLE_ERROR_RATE  # in the stationary condition
    latency_factor: float = 1.0  # the candidate's whole latency distribution, scaled
    tail_from: float | None = None  # latencies above this stable quantile …
    tail_factor: float = 1.0  # … are multiplied by this (and only those)
    allowed: bool = False  # a difference within the judges' margins: not a regression

    @property
    def regression(self) -> bool:
        return self.key != "aa" and not self.allowed

    @property
    def error_increase(self) -> float:
        """Added to the shared error rate, whatever it is at the moment."""
        return self.candidate_error_rate - STABLE_ERROR_RATE

    def candidate_latency(self, base_ms: Floats, condition: Condition) -> Floats:
        """The latency the candidate would have served the same request in (before the
        shared factor): a monotone transform of the stable's base draw."""
        out: Floats = base_ms * self.latency_factor
        if self.tail_from is not None:
            cut = condition.base_quantile(self.tail_from)
            out = np.where(base_ms > cut, out * self.tail_factor, out)
        return out


STATIONARY = Condition("stationary", "stationary")
CONDITIONS: tuple[Condition, ...] = (
    STATIONARY,
    *(
        Condition(
            f"outage{int(share * 100)}",
            f"shared outage in the {share:.0%} step",
            outage_step=step,
        )
        for step, share in enumerate(STEPS)
    ),
    Condition("drift-up", "latency drifting up (×2 every 3 min)", drift=2.0),
    Condition("drift-down", "latency drifting down (×0.5 every 3 min)", drift=0.5),
    Condition("ramp", "traffic ramping 50 → 500 req/s over 3 min", rate=50, rate_to=500),
    Condition("errors-rising", "errors rising for both (+1pp a minute)", errors_per_minute=0.01),
    Condition("bursts", "shared error bursts (30% errors, 1 s in 20)", burst_chance=0.05),
    Condition("clusters", "errors in clusters of 5", cluster=5),
    Condition("pareto", "heavy-tailed latency (Pareto, shape 1.5)", pareto=True),
    Condition("thin", "thin traffic (10 req/s)", rate=10),
    Condition("warmup", "candidate warm-up (×2 latency for its first 4 s)", warmup_seconds=4),
)
CONDITION = {c.key: c for c in CONDITIONS}

AA = Scenario("aa", "A/A (no difference)")
SCENARIOS: tuple[Scenario, ...] = (
    AA,
    Scenario("err2", "errors 1% → 2%", candidate_error_rate=0.02),
    Scenario("err5", "errors 1% → 5%", candidate_error_rate=0.05),
    Scenario("p50x1.2", "median +20% (all ×1.2)", latency_factor=1.2),
    Scenario("p50x1.5", "median +50% (all ×1.5)", latency_factor=1.5),
    # The slowest 1.5% of requests take twice as long: p99 doubles, p50 and p90 stay.
    Scenario("p99x2", "p99 only +100% (top 1.5% ×2)", tail_from=0.985, tail_factor=2.0),
    # Real differences the operator allowed (+0.5pp errors, +10% latency): not regressions.
    Scenario("err1.3", "errors 1% → 1.3% (allowed)", candidate_error_rate=0.013, allowed=True),
    Scenario("lat1.05", "latency +5% (allowed)", latency_factor=1.05, allowed=True),
)
SCENARIO = {s.key: s for s in SCENARIOS}


@dataclass(frozen=True)
class Case:
    """A scenario under a condition: what one set of simulated deployments runs."""

    condition: Condition
    scenario: Scenario

    @property
    def key(self) -> str:
        return f"{self.scenario.key}@{self.condition.key}"

    @property
    def title(self) -> str:
        if self.condition is STATIONARY:
            return self.scenario.title
        if self.scenario is AA:
            return self.condition.title
        return f"{self.scenario.title}, {self.condition.title}"

    @property
    def aa(self) -> bool:
        return self.scenario is AA


# A/A in every condition; every scenario in the stationary one; and regressions under a
# shared condition, where the shared change must neither hide nor fake the difference.
CASES: tuple[Case, ...] = (
    *(Case(c, AA) for c in CONDITIONS),
    *(Case(STATIONARY, s) for s in SCENARIOS if s is not AA),
    Case(CONDITION["outage5"], SCENARIO["err5"]),
    Case(CONDITION["drift-up"], SCENARIO["p50x1.5"]),
    Case(CONDITION["clusters"], SCENARIO["err5"]),
)

CHECKED_QUANTILES = (0.5, 0.9, 0.98, 0.99, 0.999)


@dataclass(frozen=True)
class GroundTruth:
    scenario: Scenario
    stable: tuple[float, ...]  # latency at CHECKED_QUANTILES, ms, measured
    candidate: tuple[float, ...]


def ground_truth(samples: int = 4_000_000, seed: int = 0) -> list[GroundTruth]:
    """The quantiles of every scenario's candidate in the stationary condition, measured on
    many draws (the same draws for all), to check that each regression is what its name
    says."""
    rng = np.random.default_rng(seed)
    base = STATIONARY.base_latency(rng, (1, samples)).ravel()
    stable = tuple(float(q) for q in np.quantile(base, CHECKED_QUANTILES))
    return [
        GroundTruth(
            s,
            stable,
            tuple(
                float(q)
                for q in np.quantile(s.candidate_latency(base, STATIONARY), CHECKED_QUANTILES)
            ),
        )
        for s in SCENARIOS
    ]
