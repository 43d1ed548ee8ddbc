"""Latency at a watched quantile p, compared within the same moments.

A stratum gathers consecutive seconds of one canary step until both releases together have
served enough requests to place the p-quantile with a few above it (3 / (1 − p)), or
MAX_STRATUM_SECONDS have passed. In it, every candidate latency c is first lowered by what
the operator allows, to min(c / (1 + increase), c − min_increase_ms): "within the margin"
now means "no slower". The threshold is the p-quantile of both releases' requests together
and the events are the requests strictly above it: a rule blind to which release served a
request, so under "the candidate is no slower (after lowering)" the candidate's share of the
events is at most its share of the requests, in exact (hypergeometric) distribution, and the
split test (split.py) applies. The stable's latency in that stratum is the only reference: a
latency change shared by both releases moves the threshold, not the verdict.

Latencies are bucketed (1% buckets, histogram.py); a candidate bucket is lowered from its
lower edge. For the test of "worse" that is cautious; for the test of "no worse" it may be
optimistic by up to one bucket (1% of a latency), far inside the allowed 10%. Lowering from
the upper edge instead would break every tie of HAProxy's whole milliseconds against the
candidate: an identical release of a 1–3 ms service could then never be shown within
"+1 ms".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from slipway.judge.histogram import BUCKETS, LOWER_EDGES, Histogram, buckets_of
from slipway.judge.split import SplitTest

MAX_STRATUM_SECONDS = 10
Counts = npt.NDArray[np.int64]
Weights = npt.NDArray[np.float64]


def lowered(edges: npt.NDArray[np.float64], increase: float, min_ms: float) -> Counts:
    """For each bucket, the bucket its values land in once lowered by the allowed margin."""
    target = np.minimum(edges / (1.0 + increase), edges - min_ms)
    return buckets_of(np.maximum(target, 0.0))


@dataclass
class QuantileTest:
    p: float
    increase: float  # allowed, relative (0.10: +10%)
    min_ms: float  # allowed, absolute: HAProxy times in whole milliseconds
    worse: SplitTest = field(default_factory=lambda: SplitTest(True, stable_clustering=False))
    better: SplitTest = field(default_factory=lambda: SplitTest(False, stable_clustering=False))
    # the stratum being gathered
    stable: Counts = field(default_factory=lambda: np.zeros(BUCKETS, dtype=np.int64))
    low: Counts = field(default_factory=lambda: np.zeros(BUCKETS, dtype=np.int64))
    seconds: int = 0
    # for people: the stable's latency weighted to the candidate's traffic, stratum by stratum
    matched: Weights = field(default_factory=lambda: np.zeros(BUCKETS))

    def __post_init__(self) -> None:
        self.map_low = lowered(LOWER_EDGES, self.increase, self.min_ms)

    @property
    def needed(self) -> int:
        return int(np.ceil(3.0 / (1.0 - self.p)))

    def add_second(self, stable: Histogram, candidate: Histogram) -> None:
        self.stable += stable.counts
        if candidate.n:
            nonzero = np.flatnonzero(candidate.counts)
            weights = candidate.counts[nonzero]
            np.add.at(self.low, self.map_low[nonzero], weights)
        self.seconds += 1
        served = int(self.stable.sum()) + int(self.low.sum())
        if served >= self.needed or self.seconds >= MAX_STRATUM_SECONDS:
            self.close()

    def close(self) -> None:
        """End the stratum (also when a step ends: the candidate's share changes)."""
        n_s, n_c = int(self.stable.sum()), int(self.low.sum())
        if n_s and n_c:
            mine, theirs = _above_pooled_quantile(self.stable, self.low, self.p)
            for test in (self.worse, self.better):
                test.add(mine, theirs, n_c, n_s, delta=0.0)
            self.matched += self.stable * (n_c / n_s)
        self.stable[:] = 0
        self.low[:] = 0
        self.seconds = 0


def _above_pooled_quantile(stable: Counts, candidate: Counts, p: float) -> tuple[int, int]:
    """(candidate, stable) requests strictly above the bucket of both together's p-quantile."""
    pooled = stable + candidate
    cumulative = np.cumsum(pooled)
    threshold = int(np.searchsorted(cumulative, p * cumulative[-1] - 1e-9))
    mine = int(candidate[threshold + 1 :].sum())
    theirs = int(stable[threshold + 1 :].sum())
    return mine, theirs
