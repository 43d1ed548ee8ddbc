"""Verdicts: compare candidate with stable and decide, with the numbers behind the decision.

Errors: anytime-valid bounds on each release's error rate; a regression needs the lower
bound of the increase above the allowed increase.

Latency, for each watched quantile p: every second, the threshold T = (1 + allowed) × an
upper confidence bound of the stable's p-quantile (from the seconds before); the share of
the candidate's requests slower than T is at most 1 − p unless the candidate's p-quantile is
more than `allowed` above the stable's. A sequential bound on that share decides: a
regression needs its lower bound above 1 − p. Testing each quantile on its own is far more
powerful than a band on the whole distribution, most of all in the tail.

The false-alarm budget alpha is split by the union bound: half for errors (a quarter for
each release's bound), half for latency (shared by the quantiles, then by the two bounds
each test uses). Every bound is anytime-valid, so however often the judge looks, the chance
that a release no worse than stable is rolled back stays at most alpha.

Promotion out of the last partial step needs the opposite evidence too: the upper bounds
show the candidate no worse than allowed. Until then the verdict is inconclusive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from slipway.judge.histogram import Histogram, upper_edge
from slipway.judge.sequential import Mixture, prior_near, rate_bounds

# Error rates worth watching are low: most weight near 1%, some near 10%, so that a badly
# broken release is caught within a few dozen requests (bench/bad_release), for a small
# price near 1% (bench/judge).
ERROR_PRIOR: Mixture = ((0.5, prior_near(0.01)), (0.5, prior_near(0.1)))


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
    # HAProxy times requests in whole milliseconds: a smaller increase is not measurable.
    min_latency_increase_ms: float = 1.0

    # Half of alpha for errors, half shared by the watched quantiles. Within each test, the
    # stable release's bound gets a tenth: it has far more data, so it stays tight anyway.
    @property
    def error_parts(self) -> tuple[float, float]:
        """(candidate, stable)"""
        return self.alpha / 2 * 0.9, self.alpha / 2 * 0.1

    @property
    def latency_parts(self) -> tuple[float, float]:
        share = self.alpha / 2 / max(1, len(self.latency_quantiles))
        return share * 0.9, share * 0.1


@dataclass(frozen=True)
class Progress:
    """Where the deployment stands in its current step."""

    step_requests: int  # candidate requests since the step began
    step_seconds: float
    min_requests: int
    min_seconds: float
    final_step: bool = False  # leaving it gives the candidate all traffic
    ingest_complete: bool = True
    ingest_note: str = ""


@dataclass
class Tail:
    """The running test of one quantile p."""

    p: float
    slower: int = 0  # candidate requests surely slower than the threshold of their second
    maybe_slower: int = 0  # the same, counting requests in the bucket the threshold cuts
    n: int = 0
    threshold: float = math.inf  # the latest threshold, in ms
    stable_upper: float = math.inf  # the stable's p-quantile is below this (w.h.p.)
    _stable_n_then: int = 0


class Evidence:
    """Everything the judge knows, fed one second at a time, in order. Rebuilt from the
    recorded seconds, it reaches the same state (thresholds depend only on earlier seconds)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stable = Arm()
        self.candidate = Arm()
        self.tails = [Tail(p) for p in settings.latency_quantiles]

    def add_second(self, stable: Arm, candidate: Arm) -> None:
        for tail in self.tails:
            self._refresh_stable_bound(tail)
            if math.isinf(tail.stable_upper) or candidate.latency.n == 0:
                continue  # no threshold yet: this second's candidate requests are not judged
            settings = self.settings
            tail.threshold = max(
                (1 + settings.max_latency_increase) * tail.stable_upper,
                tail.stable_upper + settings.min_latency_increase_ms,
            )
            tail.slower += candidate.latency.count_above(tail.threshold, cut_bucket=False)
            tail.maybe_slower += candidate.latency.count_above(tail.threshold, cut_bucket=True)
            tail.n += candidate.latency.n
        self.stable.add(stable)
        self.candidate.add(candidate)

    def _refresh_stable_bound(self, tail: Tail) -> None:
        """The stable's bound tightens as it serves more; recomputed when it grew by 5%."""
        n = self.stable.latency.n
        if n == 0 or (n < tail._stable_n_then * 1.05 and not math.isinf(tail.stable_upper)):
            return
        tail.stable_upper = quantile_upper_bound(
            self.stable.latency, tail.p, self.settings.latency_parts[1]
        )
        tail._stable_n_then = n


def quantile_upper_bound(hist: Histogram, p: float, alpha: float) -> float:
    """A value above the p-quantile with probability ≥ 1 − alpha at every sample size: the
    first bucket edge x whose share of samples ≤ x has its anytime lower bound ≥ p."""
    cumulative = hist.cumulative()
    n = int(cumulative[-1])
    prior = prior_near(p)
    if n == 0 or rate_bounds(n, n, alpha, prior)[0] < p:
        return math.inf
    lo, hi = 0, len(cumulative) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if rate_bounds(int(cumulative[mid]), n, alpha, prior)[0] >= p:
            hi = mid
        else:
            lo = mid + 1
    return upper_edge(lo)


@dataclass
class Check:
    metric: str  # "error rate" or "latency p50" …
    candidate: float  # point estimates, for people
    stable: float
    bounds: tuple[float, float]  # of the tested quantity (see text)
    limit: float  # a regression is bounds[0] > limit; proven no worse is bounds[1] <= limit
    regression: bool
    no_worse: bool  # proven within the allowed increase (the upper bound is)
    samples: tuple[int, int]  # candidate, stable
    text: str


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


def check_errors(evidence: Evidence) -> Check:
    settings, stable, candidate = evidence.settings, evidence.stable, evidence.candidate
    c_part, s_part = settings.error_parts
    c_lo, c_hi = rate_bounds(candidate.errors, candidate.requests, c_part, ERROR_PRIOR)
    s_lo, s_hi = rate_bounds(stable.errors, stable.requests, s_part, ERROR_PRIOR)
    increase = (c_lo - s_hi, c_hi - s_lo)
    allowed = settings.max_error_rate_increase
    return Check(
        metric="error rate",
        candidate=candidate.error_rate,
        stable=stable.error_rate,
        bounds=increase,
        limit=allowed,
        regression=increase[0] > allowed,
        no_worse=increase[1] <= allowed,
        samples=(candidate.requests, stable.requests),
        text=(
            f"error rate {_pct(candidate.error_rate)} vs {_pct(stable.error_rate)} "
            f"(n={candidate.requests} vs {stable.requests}): increase in [{_pp(increase[0])}, "
            f"{_pp(increase[1])}], allowed {_pp(allowed)}"
        ),
    )


def check_tail(evidence: Evidence, tail: Tail) -> Check:
    part = evidence.settings.latency_parts[0]
    limit = 1 - tail.p
    prior = prior_near(limit)
    lo = rate_bounds(tail.slower, tail.n, part, prior)[0]
    hi = rate_bounds(tail.maybe_slower, tail.n, part, prior)[1]
    name = f"p{tail.p * 100:g}"
    share = tail.slower / tail.n if tail.n else 0.0
    allowed = evidence.settings.max_latency_increase
    return Check(
        metric=f"latency {name}",
        candidate=evidence.candidate.latency.quantile(tail.p),
        stable=evidence.stable.latency.quantile(tail.p),
        bounds=(lo, hi),
        limit=limit,
        regression=lo > limit,
        no_worse=hi <= limit,
        samples=(tail.n, evidence.stable.latency.n),
        text=(
            f"latency {name} {_ms(evidence.candidate.latency.quantile(tail.p))} vs "
            f"{_ms(evidence.stable.latency.quantile(tail.p))}: {_pct(share)} of "
            f"{tail.n} candidate requests slower than {_ms(tail.threshold)} (stable's {name} "
            f"≤ {_ms(tail.stable_upper)}, +{allowed * 100:.0f}% allowed), "
            f"share in [{_pct(lo)}, {_pct(hi)}], allowed {_pct(limit)}"
        ),
    )


def judge(evidence: Evidence, recent: Arm, progress: Progress) -> Verdict:
    """`recent` is the candidate's last few seconds, for the hard guard."""
    settings = evidence.settings
    checks = [check_errors(evidence), *(check_tail(evidence, t) for t in evidence.tails)]

    def verdict(decision: str, reason: str) -> Verdict:
        return Verdict(
            decision, reason, checks, evidence.candidate.requests, evidence.stable.requests
        )

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
        return verdict("rollback", "regression: " + "; ".join(c.text for c in regressions))
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
    unproven = [c for c in checks if not c.no_worse]
    if progress.final_step and unproven:
        return verdict(
            "inconclusive",
            (
                "inconclusive: not yet shown to be no worse than stable: "
                + "; ".join(c.text for c in unproven)
            ),
        )
    return verdict(
        "promote",
        (
            f"no regression after {progress.step_requests} requests and "
            f"{progress.step_seconds:.0f}s in this step"
            + ("; shown no worse than stable on every check" if progress.final_step else "")
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
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.1f}ms"
