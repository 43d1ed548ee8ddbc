"""How one simulated deployment ended, and the statistics over many."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Outcome:
    decision: str  # "rollback" | "promoted" | "aborted" (inconclusive for too long)
    seconds: int  # from the start of the canary to the decision
    candidate_requests: int  # served by the candidate until the decision
    total_requests: int  # both releases
    cause: str = ""  # what triggered a rollback or held an aborted run
    # slipway only, per check: the e-value against "within the allowed increase" at the
    # decision, its highest over the run, and the value that decides (1 / its alpha)
    worse: dict[str, float] = field(default_factory=dict)
    worse_max: dict[str, float] = field(default_factory=dict)
    needed: dict[str, float] = field(default_factory=dict)
    dispersion: float = math.nan  # slipway only: the error check's φ at the decision
    # slipway only: process CPU time of each look (Evidence.add_second + judge), seconds
    look_cpu: Floats | None = field(default=None, compare=False)

    @property
    def rolled_back(self) -> bool:
        return self.decision == "rollback"


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Summary:
    runs: int
    rollbacks: int
    promoted: int
    aborted: int
    rollback_interval: tuple[float, float]
    median_seconds: float  # of the rollbacks (nan without any)
    median_candidate_requests: float
    median_total_requests: float
    # over all runs, a run without rollback counting as never (inf): a judge that misses
    # more than half of the runs has an infinite median
    median_candidate_requests_all: float
    median_promote_seconds: float  # of the promoted runs
    causes: Counter[str]
    aborted_causes: Counter[str]  # per check: aborted runs it held ("unproven: …")
    # slipway only, per check: the median "worse" e-value at promotion, the 99th percentile
    # over runs of its highest value in the run, and the value that decides
    promoted_worse: dict[str, float] = field(default_factory=dict)
    worse_max_p99: dict[str, float] = field(default_factory=dict)
    needed: dict[str, float] = field(default_factory=dict)
    median_dispersion: float = math.nan  # slipway only: the error check's φ, all runs
    looks: int = 0  # slipway only: looks, and their process CPU time
    look_cpu: Floats | None = None

    @property
    def rollback_rate(self) -> float:
        return self.rollbacks / self.runs if self.runs else math.nan


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else math.nan


def summarize(outcomes: list[Outcome]) -> Summary:
    back = [o for o in outcomes if o.rolled_back]
    promoted = [o for o in outcomes if o.decision == "promoted"]
    every = sorted(float(o.candidate_requests) if o.rolled_back else math.inf for o in outcomes)
    return Summary(
        runs=len(outcomes),
        rollbacks=len(back),
        promoted=len(promoted),
        aborted=len(outcomes) - len(back) - len(promoted),
        rollback_interval=wilson(len(back), len(outcomes)),
        median_seconds=_median([o.seconds for o in back]),
        median_candidate_requests=_median([o.candidate_requests for o in back]),
        median_total_requests=_median([o.total_requests for o in back]),
        median_candidate_requests_all=_upper_median(every),
        median_promote_seconds=_median([o.seconds for o in promoted]),
        causes=Counter(o.cause for o in back),
        aborted_causes=Counter(
            part
            for o in outcomes
            if o.decision == "aborted"
            for part in o.cause.removeprefix("unproven: ").split(", ")
        ),
        median_dispersion=_median([o.dispersion for o in outcomes]),
        promoted_worse={
            metric: _median([o.worse[metric] for o in promoted])
            for metric in (outcomes[0].worse if outcomes else {})
        },
        worse_max_p99={
            metric: float(np.quantile([o.worse_max[metric] for o in outcomes], 0.99))
            for metric in (outcomes[0].worse_max if outcomes else {})
        },
        needed=dict(outcomes[0].needed) if outcomes else {},
        looks=sum(0 if o.look_cpu is None else o.look_cpu.size for o in outcomes),
        look_cpu=(
            np.concatenate([o.look_cpu for o in outcomes if o.look_cpu is not None])
            if any(o.look_cpu is not None for o in outcomes)
            else None
        ),
    )


def _upper_median(ordered: list[float]) -> float:
    """The median of sorted values that may be infinite."""
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2  # inf if either is
