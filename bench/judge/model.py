"""The simulated service and the scenarios with their ground truth.

Traffic: 200 requests/s in total, split between the stable release and the candidate by
the candidate's share of the current step (5% → 25% → 50% → 100% = promoted, slipway's
default `steps`). Every request fails with the release's error rate (stable: 1%), and the
latency of a request that did not fail is lognormal: median 50 ms, sigma 0.5 (p90 ≈ 95 ms,
p99 ≈ 160 ms, a typical web endpoint's spread).
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

Floats = npt.NDArray[np.float64]


def stable_quantile(p: float) -> float:
    """The stable release's true latency quantile (ms)."""
    return MEDIAN_MS * math.exp(SIGMA * float(ndtri(p)))


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    candidate_error_rate: float = STABLE_ERROR_RATE
    latency_factor: float = 1.0  # the candidate's whole latency distribution, scaled
    tail_from: float | None = None  # latencies above this stable quantile …
    tail_factor: float = 1.0  # … are multiplied by this (and only those)
    allowed: bool = False  # a difference within the judges' margins: not a regression

    @property
    def regression(self) -> bool:
        return self.key != "aa" and not self.allowed

    def candidate_latency(self, stable_ms: Floats) -> Floats:
        """The latency the candidate would have served the same request in: a monotone
        transform of the stable's, so candidate quantiles are the stable's transformed."""
        out: Floats = stable_ms * self.latency_factor
        if self.tail_from is not None:
            cut = stable_quantile(self.tail_from)
            out = np.where(stable_ms > cut, out * self.tail_factor, out)
        return out


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

CHECKED_QUANTILES = (0.5, 0.9, 0.98, 0.99, 0.999)


@dataclass(frozen=True)
class GroundTruth:
    scenario: Scenario
    stable: tuple[float, ...]  # latency at CHECKED_QUANTILES, ms, measured
    candidate: tuple[float, ...]


def ground_truth(samples: int = 4_000_000, seed: int = 0) -> list[GroundTruth]:
    """The quantiles of every scenario's candidate, measured on many draws (the same
    draws for all), to check that each regression is what its name says."""
    rng = np.random.default_rng(seed)
    stable_ms = MEDIAN_MS * np.exp(SIGMA * rng.standard_normal(samples))
    stable = tuple(float(q) for q in np.quantile(stable_ms, CHECKED_QUANTILES))
    return [
        GroundTruth(
            s,
            stable,
            tuple(float(q) for q in np.quantile(s.candidate_latency(stable_ms), CHECKED_QUANTILES)),
        )
        for s in SCENARIOS
    ]
