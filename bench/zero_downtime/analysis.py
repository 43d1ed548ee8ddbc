"""Pure functions over load samples: phases by time, quantiles, the moment traffic switched."""

from __future__ import annotations

import bisect
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from slipway.loadgen import Sample


@dataclass(frozen=True)
class Window:
    """A phase of the run, on the monotonic clock: requests *due* in [start, end] belong."""

    phase: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Traffic:
    """Requests due in some windows. Latencies count from when a request was due, so a
    generator held up (by the machine, or by a slow answer on its connection) cannot hide
    the wait; `p99_sent_ms` counts from when it was actually sent, `lag_p99_ms` is the
    difference (the generator's own delay)."""

    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    p99_sent_ms: float
    lag_p99_ms: float
    errors: dict[str, int]
    windows: tuple[tuple[float, float], ...] = ()


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (the smallest value with at least q of the values at or below)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


class Timeline:
    """Samples sorted by when they were due, to cut into windows quickly."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = sorted(samples, key=lambda s: s.scheduled)
        self.times = [s.scheduled for s in self.samples]

    def between(self, start: float, end: float) -> list[Sample]:
        lo = bisect.bisect_left(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return self.samples[lo:hi]

    def traffic(self, windows: Sequence[Window]) -> Traffic:
        """Traffic due during any of the windows. Latency includes failed requests (the
        time until the error), so a fast 503 cannot hide a slow path and vice versa."""
        chosen = [s for w in windows for s in self.between(w.start, w.end)]
        latencies = [s.total_ms for s in chosen]
        errors = Counter(s.error or f"HTTP {s.status}" for s in chosen if s.failed)
        return Traffic(
            requests=len(chosen),
            failed=sum(1 for s in chosen if s.failed),
            seconds=sum(w.seconds for w in windows),
            p50_ms=quantile(latencies, 0.50),
            p99_ms=quantile(latencies, 0.99),
            max_ms=max(latencies, default=math.nan),
            p99_sent_ms=quantile([s.latency_ms for s in chosen], 0.99),
            lag_p99_ms=quantile([s.lag_ms for s in chosen], 0.99),
            errors=dict(errors),
            windows=tuple((w.start, w.end) for w in windows),
        )

    def whole(self) -> Traffic:
        if not self.samples:
            return self.traffic([])
        last = max(s.done for s in self.samples)
        return self.traffic([Window("whole", self.times[0], last)])


def switch_moment(samples: Sequence[Sample], target: str, after: float, until: float) -> float:
    """When clients saw the switch: the answer time of the first response from `target`
    after which every response (by answer time, in [after, until]) is from it. A failed
    request counts as not from `target`. NaN if the responses never settled on `target`."""
    answered = sorted((s for s in samples if after <= s.done <= until), key=lambda s: s.done)
    settled_from = len(answered)
    for index in range(len(answered) - 1, -1, -1):
        sample = answered[index]
        if sample.failed or sample.value != target:
            break
        settled_from = index
    if settled_from == len(answered):
        return math.nan
    return answered[settled_from].done
