"""Verdicts: compare candidate with stable and decide, with the numbers behind the decision.

The false-alarm budget alpha is split four ways (union bound): the candidate's and the
stable's error rates, and the candidate's and the stable's latency distributions. Each part
is an anytime-valid bound, so over the whole deployment, however often the judge looks, the
chance that any bound is wrong (and a good release is rolled back) is at most alpha.

A difference smaller than the allowed increase never counts: a regression needs the lower
bound of the increase above it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from slipway.judge.histogram import Histogram
from slipway.judge.sequential import dkw_epsilon, rate_bounds


@dataclass
class Arm:
    """What one release served: requests, errors (5xx and failed connections), latency of
    the requests that did not fail."""

    requests: int = 0
    errors: int = 0
    latency: Histogram = field(default_factory=Histogram)

    def add(self, other: Arm) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.latency.add(other.latency)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    max_error_rate_increase: float = 0.005
    max_latency_increase: float = 0.10
    latency_quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    abort_error_rate: float = 0.5
    guard_min_requests: int = 20  # the hard guard needs at least this many recent requests


@dataclass(frozen=True)
class Progress:
    """Where the deployment stands in its current step."""

    step_requests: int  # candidate requests since the step began
    step_seconds: float
    min_requests: int
    min_seconds: float
    ingest_complete: bool = True
    ingest_note: str = ""


@dataclass
class Check:
    metric: str  # "error rate" or "latency p50" …
    candidate: float
    stable: float
    candidate_bounds: tuple[float, float]
    stable_bounds: tuple[float, float]
    increase_bounds: tuple[float, float]  # errors: absolute; latency: relative (0.1 = +10%)
    allowed: float
    regression: bool
    samples: tuple[int, int]  # candidate, stable

    def describe(self) -> str:
        lo, hi = self.increase_bounds
        if self.metric == "error rate":
            return (
                f"error rate {_pct(self.candidate)} vs {_pct(self.stable)}: increase in "
                f"[{_pp(lo)}, {_pp(hi)}], allowed {_pp(self.allowed)}"
            )
        return (
            f"{self.metric} {_ms(self.candidate)} vs {_ms(self.stable)}: increase in "
            f"[{_rel(lo)}, {_rel(hi)}], allowed {_rel(self.allowed)}"
        )


@dataclass
class Verdict:
    decision: str  # rollback | promote | continue | inconclusive
    reason: str
    checks: list[Check]
    candidate_requests: int
    stable_requests: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: infinite or missing numbers become None."""
        return _finite(asdict(self))  # type: ignore[no-any-return]


def check_errors(stable: Arm, candidate: Arm, settings: Settings) -> Check:
    part = settings.alpha / 4
    c_lo, c_hi = rate_bounds(candidate.errors, candidate.requests, part)
    s_lo, s_hi = rate_bounds(stable.errors, stable.requests, part)
    increase = (c_lo - s_hi, c_hi - s_lo)
    return Check(
        metric="error rate",
        candidate=candidate.error_rate,
        stable=stable.error_rate,
        candidate_bounds=(c_lo, c_hi),
        stable_bounds=(s_lo, s_hi),
        increase_bounds=increase,
        allowed=settings.max_error_rate_increase,
        regression=increase[0] > settings.max_error_rate_increase,
        samples=(candidate.requests, stable.requests),
    )


def check_latency(stable: Arm, candidate: Arm, settings: Settings) -> list[Check]:
    part = settings.alpha / 4
    eps_c = dkw_epsilon(candidate.latency.n, part)
    eps_s = dkw_epsilon(stable.latency.n, part)
    checks = []
    for p in settings.latency_quantiles:
        c_band = (
            candidate.latency.quantile_lower(p - eps_c),
            candidate.latency.quantile_upper(p + eps_c),
        )
        s_band = (
            stable.latency.quantile_lower(p - eps_s),
            stable.latency.quantile_upper(p + eps_s),
        )
        lower = c_band[0] / s_band[1] - 1 if s_band[1] > 0 else 0.0
        upper = c_band[1] / s_band[0] - 1 if s_band[0] > 0 else math.inf
        checks.append(
            Check(
                metric=f"latency p{p * 100:g}",
                candidate=candidate.latency.quantile(p),
                stable=stable.latency.quantile(p),
                candidate_bounds=c_band,
                stable_bounds=s_band,
                increase_bounds=(max(lower, -1.0), upper),
                allowed=settings.max_latency_increase,
                regression=lower > settings.max_latency_increase,
                samples=(candidate.latency.n, stable.latency.n),
            )
        )
    return checks


def judge(
    stable: Arm, candidate: Arm, recent: Arm, settings: Settings, progress: Progress
) -> Verdict:
    """`stable` and `candidate` hold everything since the deployment began; `recent` is the
    candidate's last few seconds, for the hard guard."""
    checks = [
        check_errors(stable, candidate, settings),
        *check_latency(stable, candidate, settings),
    ]

    def verdict(decision: str, reason: str) -> Verdict:
        return Verdict(decision, reason, checks, candidate.requests, stable.requests)

    if recent.requests >= settings.guard_min_requests and (
        recent.error_rate >= settings.abort_error_rate
    ):
        return verdict(
            "rollback",
            (
                f"hard guard: {recent.errors} of {recent.requests} recent requests failed "
                f"({_pct(recent.error_rate)} ≥ abort_error_rate {_pct(settings.abort_error_rate)})"
            ),
        )
    regressions = [c for c in checks if c.regression]
    if regressions:
        return verdict("rollback", "regression: " + "; ".join(c.describe() for c in regressions))
    if not progress.ingest_complete:
        return verdict("inconclusive", f"request data incomplete: {progress.ingest_note}")
    if progress.step_requests < progress.min_requests:
        return verdict(
            "inconclusive",
            (f"inconclusive: {progress.step_requests} of {progress.min_requests} requests"),
        )
    if progress.step_seconds < progress.min_seconds:
        return verdict(
            "continue",
            (
                f"no regression so far; step time {progress.step_seconds:.0f}s of "
                f"{progress.min_seconds:.0f}s"
            ),
        )
    return verdict(
        "promote",
        (
            f"no regression after {progress.step_requests} requests and "
            f"{progress.step_seconds:.0f}s in this step"
        ),
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _pct(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def _pp(value: float) -> str:
    return f"{value * 100:+.2f}pp"


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}ms"


def _rel(value: float) -> str:
    return "+inf" if math.isinf(value) else f"{value * 100:+.0f}%"
