"""How one simulated deployment ended, and the statistics over many."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Outcome:
    decision: str  # "rollback" | "promoted" | "aborted" (inconclusive for too long)
    seconds: int  # from the start of the canary to the decision
    candidate_requests: int  # served by the candidate until the decision
    total_requests: int  # both releases
    cause: str = ""  # what triggered a rollback, e.g. "error rate", "latency p50"
    # slipway only: each check's lower bound of the increase at the decision
    lower_bounds: dict[str, float] = field(default_factory=dict)

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
    # slipway only: per check, the median lower bound of the increase when promoted
    promoted_lower_bounds: dict[str, float] = field(default_factory=dict)

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
        promoted_lower_bounds={
            metric: _median([o.lower_bounds[metric] for o in promoted])
            for metric in (promoted[0].lower_bounds if promoted else {})
        },
    )


def _upper_median(ordered: list[float]) -> float:
    """The median of sorted values that may be infinite."""
    if not ordered:
        return math.nan
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2  # inf if either is
