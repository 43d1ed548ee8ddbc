"""The load's shape, pure: low, a linear ramp up to the peak, a hold, a linear ramp down, low
again. Requests are due at evenly spaced moments within each second's rate (a fixed rate per
second, open loop: nothing waits for an answer before sending the next)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ramp:
    low: float  # requests/s before and after
    peak: float  # requests/s at the top
    low_seconds: float
    up_seconds: float
    hold_seconds: float
    down_seconds: float
    tail_seconds: float

    @property
    def seconds(self) -> float:
        return (
            self.low_seconds
            + self.up_seconds
            + self.hold_seconds
            + self.down_seconds
            + self.tail_seconds
        )

    def rate(self, t: float) -> float:
        """Requests per second due at `t` seconds after the start."""
        edges = [self.low_seconds, self.up_seconds, self.hold_seconds, self.down_seconds]
        a, b, c, d = (sum(edges[: i + 1]) for i in range(4))
        if t < a or t >= d:
            return self.low
        if t < b:
            return self.low + (self.peak - self.low) * (t - a) / self.up_seconds
        if t < c:
            return self.peak
        return self.peak - (self.peak - self.low) * (t - c) / self.down_seconds

    def due(self, step: float = 0.001) -> list[float]:
        """When each request is due, in seconds from the start: the k-th when the integral of
        the rate reaches k."""
        times: list[float] = []
        total, t, end = 0.0, 0.0, self.seconds
        while t < end:
            total += self.rate(t) * step
            while total >= len(times) + 1:
                times.append(t)
            t += step
        return times

    def describe(self) -> str:
        return (
            f"{self.low:g} req/s for {self.low_seconds:g} s, up to {self.peak:g} req/s over "
            f"{self.up_seconds:g} s, {self.hold_seconds:g} s at the peak, down over "
            f"{self.down_seconds:g} s, {self.low:g} req/s for {self.tail_seconds:g} s "
            f"({self.seconds:g} s)"
        )
