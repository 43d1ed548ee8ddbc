"""Latency histograms with log-spaced buckets: 1% wide, so quantiles are within 1%."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

GROWTH = 1.01
MIN_MS = 0.01  # everything faster lands in bucket 0
BUCKETS = 1700  # up to MIN_MS * GROWTH**BUCKETS ≈ 230 s
_LOG_GROWTH = math.log(GROWTH)


def bucket_of(ms: float) -> int:
    if ms <= MIN_MS:
        return 0
    return min(BUCKETS - 1, int(math.log(ms / MIN_MS) / _LOG_GROWTH) + 1)


def buckets_of(values: npt.ArrayLike) -> npt.NDArray[np.int64]:
    ms = np.maximum(np.asarray(values, dtype=float), MIN_MS)
    index = np.floor(np.log(ms / MIN_MS) / _LOG_GROWTH).astype(np.int64) + 1
    index[ms <= MIN_MS] = 0
    clipped: npt.NDArray[np.int64] = np.minimum(index, BUCKETS - 1)
    return clipped


LOWER_EDGES = np.array([0.0] + [MIN_MS * GROWTH ** (b - 1) for b in range(1, BUCKETS)])
UPPER_EDGES = np.array([MIN_MS * GROWTH**b for b in range(BUCKETS)])


QUANTILES = (0.5, 0.9, 0.99)  # the ones charts and summaries show


def quantiles_ms(latency: dict[int, int], qs: tuple[float, ...] = QUANTILES) -> list[float | None]:
    """Quantiles of a sparse latency histogram (bucket -> count), in ms (bucket midpoints)."""
    total = sum(latency.values())
    if total == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    ordered = sorted(latency.items())
    for q in qs:
        rank = q * total
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                out.append(round((lower_edge(bucket) + upper_edge(bucket)) / 2, 2))
                break
    return out


def lower_edge(bucket: int) -> float:
    return 0.0 if bucket == 0 else MIN_MS * GROWTH ** (bucket - 1)


def upper_edge(bucket: int) -> float:
    return MIN_MS * GROWTH**bucket


class Histogram:
    """Counts per bucket. Adding histograms merges them (per second → per deployment)."""

    def __init__(self, counts: npt.NDArray[np.int64] | None = None) -> None:
        self.counts = counts if counts is not None else np.zeros(BUCKETS, dtype=np.int64)

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> Histogram:
        values = np.fromiter(latencies_ms, dtype=float)
        return cls(np.bincount(buckets_of(values), minlength=BUCKETS).astype(np.int64))

    @classmethod
    def from_sparse(cls, sparse: Mapping[Any, int]) -> Histogram:
        hist = cls()
        for bucket, count in sparse.items():
            hist.counts[int(bucket)] += int(count)
        return hist

    def to_sparse(self) -> dict[int, int]:
        return {int(i): int(self.counts[i]) for i in np.flatnonzero(self.counts)}

    def add(self, other: Histogram) -> None:
        self.counts += other.counts

    def record(self, ms: float, count: int = 1) -> None:
        self.counts[bucket_of(ms)] += count

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def cumulative(self) -> npt.NDArray[np.int64]:
        total: npt.NDArray[np.int64] = np.cumsum(self.counts)
        return total

    def count_above(self, threshold: float, cut_bucket: bool) -> int:
        """Samples slower than `threshold`: only buckets entirely above it, or (cut_bucket)
        also the bucket it falls in, whose samples may be on either side."""
        edges = UPPER_EDGES if cut_bucket else LOWER_EDGES
        return int(
            self.counts[edges > threshold].sum()
            if cut_bucket
            else self.counts[edges >= threshold].sum()
        )

    def quantile_bucket(self, p: float) -> int | None:
        """The bucket of the p-quantile (smallest bucket whose CDF reaches p); None if empty
        or p is out of (0, 1]."""
        total = self.n
        if total == 0 or p <= 0 or p > 1:
            return None
        cumulative = np.cumsum(self.counts)
        return int(np.searchsorted(cumulative, p * total - 1e-9))

    def quantile(self, p: float) -> float:
        """A point estimate: the middle of the quantile's bucket (geometric)."""
        bucket = self.quantile_bucket(min(max(p, 1e-12), 1.0))
        if bucket is None:
            return math.nan
        return math.sqrt(max(lower_edge(bucket), MIN_MS) * upper_edge(bucket))

    def quantile_lower(self, p: float) -> float:
        """A value at or below the p-quantile (0 when p ≤ 0)."""
        bucket = self.quantile_bucket(p)
        return 0.0 if bucket is None or p <= 0 else lower_edge(bucket)

    def quantile_upper(self, p: float) -> float:
        """A value at or above the p-quantile (infinity when p > 1)."""
        if p > 1:
            return math.inf
        bucket = self.quantile_bucket(p)
        return math.inf if bucket is None else upper_edge(bucket)
