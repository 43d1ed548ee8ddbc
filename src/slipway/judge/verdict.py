"""Verdicts: compare candidate with stable and decide, with the numbers behind the decision.

Every comparison is made within the same moments (split.py): errors second by second,
latency at each watched quantile in strata of a few seconds (latency.py). What changes over
time for both releases (an outage of something they share, latency drifting up or down,
traffic ramping) cancels, whichever share of the traffic the candidate has at the time.

Each check runs two anytime-valid tests: one for "the candidate is worse than allowed"
(evidence for a rollback) and one for "the candidate is within the allowed margin" (evidence
for promotion out of the last partial step). Each is an e-value that may be watched every
second: by Ville's inequality its false-alarm rate over the whole deployment is at most the
share of alpha it was given. alpha is split by the union bound: half for errors, half shared
by the watched quantiles; the promotion tests get the same split of their own alpha.

The hard guard needs no statistics: a candidate failing far more than the stable in the
same recent seconds is rolled back at once (a shared outage fails both, and trips nothing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from slipway.judge.histogram import Histogram
from slipway.judge.latency import QuantileTest
from slipway.judge.split import SplitTest, passes


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
    # The candidate's first seconds of traffic are not judged for latency (a cold cache, a
    # JIT warming up); errors are judged from its first request.
    warmup_seconds: int = 5

    @property
    def error_alpha(self) -> float:
        return self.alpha / 2

    @property
    def latency_alpha(self) -> float:
        return self.alpha / 2 / max(1, len(self.latency_quantiles))


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


class Evidence:
    """Everything the judge knows, fed one complete second at a time, in order. Rebuilt from
    the recorded seconds after a restart, it reaches the same state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stable = Arm()  # totals, for people
        self.candidate = Arm()
        self.errors_worse = SplitTest(worse=True)
        self.errors_better = SplitTest(worse=False)
        self.quantiles = [
            QuantileTest(p, settings.max_latency_increase, settings.min_latency_increase_ms)
            for p in settings.latency_quantiles
        ]
        self.matched_errors = 0.0  # the stable's error rate, weighted to candidate traffic
        self.judged_requests = 0  # candidate requests past the warm-up
        self.warm_seconds = 0
        self.step: int | None = None

    def learn(self, stable: Arm) -> None:
        """A second of the stable release before the canary: how clustered its errors are
        is known before the candidate's first request."""
        for test in (self.errors_worse, self.errors_better):
            test.clustering.add(stable.errors, stable.requests)

    def add_second(self, stable: Arm, candidate: Arm, step: int = 0) -> None:
        self.stable.add(stable)
        self.candidate.add(candidate)
        if step != self.step:  # the share changes: a stratum never spans two steps
            for quantile in self.quantiles:
                quantile.close()
            self.step = step
        if candidate.requests == 0 or stable.requests == 0:
            return
        self.judged_requests += candidate.requests
        for test in (self.errors_worse, self.errors_better):
            test.add(
                candidate.errors,
                stable.errors,
                candidate.requests,
                stable.requests,
                self.settings.max_error_rate_increase,
            )
        self.matched_errors += stable.errors * candidate.requests / stable.requests
        if self.warm_seconds < self.settings.warmup_seconds:
            self.warm_seconds += 1  # fresh processes answer slower at first: not a regression
            return
        for quantile in self.quantiles:
            quantile.add_second(stable.latency, candidate.latency)


@dataclass
class Check:
    metric: str  # "error rate" or "latency p50" …
    candidate: float  # point estimates, for people: the candidate's …
    stable: float  # … and the stable's in the same moments
    limit: str  # what is allowed, for people
    worse: float  # e-value against "within the allowed increase" (rollback at `needed`)
    within: float  # e-value against "worse than allowed" (promotion at `needed`)
    needed: float  # 1 / this check's share of alpha
    regression: bool
    no_worse: bool
    samples: tuple[int, int]  # candidate, stable
    dispersion: float  # how clustered the events are (1: independent)
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
    settings, candidate = evidence.settings, evidence.candidate
    judged = max(1, evidence.judged_requests)
    matched = evidence.matched_errors / judged
    alpha = settings.error_alpha
    worse, within = evidence.errors_worse, evidence.errors_better
    allowed = settings.max_error_rate_increase
    return _check(
        "error rate",
        candidate.error_rate,
        matched,
        f"+{_pp(allowed)}",
        worse,
        within,
        alpha,
        (candidate.requests, evidence.stable.requests),
        f"error rate {_pct(candidate.error_rate)} vs {_pct(matched)} on the stable release in "
        f"the same seconds (n={candidate.requests} vs {evidence.stable.requests}), allowed "
        f"+{_pp(allowed)}",
    )


def check_latency(evidence: Evidence, test: QuantileTest) -> Check:
    settings = evidence.settings
    name = f"p{test.p * 100:g}"
    mine = evidence.candidate.latency.quantile(test.p)
    theirs = _quantile(test.matched, test.p)
    allowed = f"+{settings.max_latency_increase * 100:.0f}% (and +{test.min_ms:g} ms)"
    return _check(
        f"latency {name}",
        mine,
        theirs,
        allowed,
        test.worse,
        test.better,
        settings.latency_alpha,
        (evidence.candidate.latency.n, evidence.stable.latency.n),
        f"latency {name} {_ms(mine)} vs {_ms(theirs)} on the stable release in the same "
        f"moments, allowed {allowed}",
    )


def _check(
    metric: str,
    mine: float,
    theirs: float,
    limit: str,
    worse: SplitTest,
    within: SplitTest,
    alpha: float,
    samples: tuple[int, int],
    text: str,
) -> Check:
    needed = 1.0 / alpha
    e_worse, e_within = math.exp(min(worse.log_e, 700)), math.exp(min(within.log_e, 700))
    return Check(
        metric=metric,
        candidate=mine,
        stable=theirs,
        limit=limit,
        worse=e_worse,
        within=e_within,
        needed=needed,
        regression=passes(worse, alpha),
        no_worse=passes(within, alpha),
        samples=samples,
        dispersion=round(worse.dispersion, 2),
        text=f"{text}: evidence of a regression {_e(e_worse)}, of no worse {_e(e_within)} "
        f"({_e(needed)} decides)",
    )


def hard_guard(recent: list[tuple[Arm, Arm]], settings: Settings) -> str | None:
    """Why the candidate must go now, or None: in the last seconds it failed at least
    `abort_error_rate` more of its requests than the stable did of its own."""
    stable, candidate = Arm(), Arm()
    for theirs, mine in recent:
        stable.add(theirs)
        candidate.add(mine)
    if candidate.requests < settings.guard_min_requests:
        return None
    excess = candidate.error_rate - stable.error_rate
    if excess < settings.abort_error_rate:
        return None
    return (
        f"hard guard: {candidate.errors} of {candidate.requests} recent requests failed "
        f"({_pct(candidate.error_rate)}) against {_pct(stable.error_rate)} on the stable "
        f"release in the same seconds: {_pp(excess)} more ≥ abort_error_rate "
        f"{_pct(settings.abort_error_rate)}"
    )


def judge(evidence: Evidence, recent: list[tuple[Arm, Arm]], progress: Progress) -> Verdict:
    """`recent` is the last few seconds of both releases (stable, candidate), for the guard."""
    checks = [check_errors(evidence), *(check_latency(evidence, q) for q in evidence.quantiles)]

    def verdict(decision: str, reason: str) -> Verdict:
        return Verdict(
            decision, reason, checks, evidence.candidate.requests, evidence.stable.requests
        )

    guard = hard_guard(recent, evidence.settings)
    if guard is not None:
        return verdict("rollback", guard)
    regressions = [c for c in checks if c.regression]
    if regressions:
        return verdict("rollback", "regression: " + "; ".join(c.text for c in regressions))
    if not progress.ingest_complete:
        return verdict("inconclusive", f"request data incomplete: {progress.ingest_note}")
    if progress.step_requests < progress.min_requests:
        return verdict(
            "inconclusive",
            f"inconclusive: {progress.step_requests} of {progress.min_requests} requests",
        )
    if progress.step_seconds < progress.min_seconds:
        return verdict(
            "continue",
            f"no regression so far; step time {progress.step_seconds:.0f}s of "
            f"{progress.min_seconds:.0f}s",
        )
    unproven = [c for c in checks if not c.no_worse]
    if progress.final_step and unproven:
        return verdict(
            "inconclusive",
            "inconclusive: not yet shown to be no worse than stable: "
            + "; ".join(c.text for c in unproven),
        )
    return verdict(
        "promote",
        f"no regression after {progress.step_requests} requests and "
        f"{progress.step_seconds:.0f}s in this step"
        + ("; shown no worse than stable on every check" if progress.final_step else ""),
    )


def _quantile(weights: np.ndarray[Any, np.dtype[np.float64]], p: float) -> float:
    total = float(weights.sum())
    if total <= 0:
        return math.nan
    bucket = int(np.searchsorted(np.cumsum(weights), p * total - 1e-9))
    single = np.zeros(len(weights), dtype=np.int64)
    single[bucket] = 1
    return Histogram(single).quantile(0.5)


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
    return f"{value * 100:.2f}pp"


def _ms(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.1f}ms"


def _e(value: float) -> str:
    if value >= 1e6:
        return f"{value:.1e}"
    return f"{value:.3g}"


def unproven(
    settings: Settings, plan: list[tuple[float, float]], error_rate: float, latency: Histogram
) -> list[str]:
    """The checks a candidate identical to the stable is unlikely to be shown no worse on by
    the end of `plan`: (share of traffic 0–1, candidate requests) per step, in order. Each
    step is one stratum with the expected counts: the log-ratios are linear in the counts,
    so this is the drift of the "within the margin" e-values (about their median), with
    φ = 1 and no latency warm-up: optimistic, so a check named here is short of evidence
    even in a good run. `latency` is the stable's recent latency (empty: not judged here)."""
    errors = SplitTest(worse=False, stable_clustering=False)
    quantiles = {
        p: SplitTest(worse=False, stable_clustering=False) for p in settings.latency_quantiles
    }
    stable = latency.counts.astype(np.float64)
    total = float(stable.sum())
    for share, mine in plan:
        if not 0 < share < 1 or mine <= 0:
            continue
        theirs = mine * (1 - share) / share
        rate = settings.max_error_rate_increase
        errors.add(mine * error_rate, theirs * error_rate, mine, theirs, rate)
        if total <= 0:
            continue
        test = QuantileTest(0.5, settings.max_latency_increase, settings.min_latency_increase_ms)
        low = np.zeros(len(stable))
        np.add.at(low, test.map_low, stable)
        for p, split in quantiles.items():
            pooled = np.cumsum(stable * theirs / total + low * mine / total)
            threshold = int(np.searchsorted(pooled, p * pooled[-1] - 1e-9))
            above_c = float(low[threshold + 1 :].sum()) / total
            above_s = float(stable[threshold + 1 :].sum()) / total
            split.add(mine * above_c, theirs * above_s, mine, theirs, 0.0)
    short = [] if passes(errors, settings.error_alpha) else ["error rate"]
    if total > 0:
        short += [
            f"latency p{p * 100:g}"
            for p, split in quantiles.items()
            if not passes(split, settings.latency_alpha)
        ]
    return short
