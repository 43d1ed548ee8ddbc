"""One simulated deployment's traffic, the same for every judge.

Every request has its own random numbers, drawn once per run: which release it goes to
(a uniform: the candidate's if below the share), whether it fails (a uniform: below the
release's error rate at that moment), and its base latency (the stable's draw; the
candidate's is a transform of the same draw); every second has its own (whether a shared
error burst hits it). Second t has the condition's request rate r(t) and uses the first
r(t) requests of its row, so a ramp adds requests without reshuffling the others. So judges
that hold the same share see the very same requests, and judges on other schedules see the
same requests split differently. A shared outage is placed in a step of each judge's own
schedule (from its `outage_after`-th second in that step), on the same requests.

Clusters of m errors: a request whose uniform is below (error rate) / m starts a cluster,
which fails it and the next m − 1 requests of the same release in that second (cyclically
within the second, so a cluster is never cut short): the same mechanism for both releases,
the same mean error rate, m times fewer independent events.

Seconds are generated lazily, 60 at a time, each block from its own seed; the 120 s before
the canary (t < 0) are all served by the stable release.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.judge.model import PRE_SECONDS, STEPS, Case, Floats
from slipway.judge.histogram import buckets_of

BLOCK = 60  # seconds generated at once

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ArmSecond:
    """What one release served in one second."""

    requests: int
    errors: int
    latency_ms: Floats  # the requests that did not fail
    buckets: Ints  # their slipway histogram buckets


@dataclass(frozen=True)
class Second:
    stable: ArmSecond
    candidate: ArmSecond


@dataclass(frozen=True)
class _Block:
    route: Floats  # (BLOCK, max rate) uniforms: candidate if < share
    fail: Floats  # (BLOCK, max rate) uniforms: failed if < the release's error rate
    burst: Bools  # (BLOCK,) a shared error burst in that second
    stable_ms: Floats  # base latencies (before the shared factor)
    candidate_ms: Floats


def _clustered(starts: Bools, size: int) -> Bools:
    """A start fails its request and the next size − 1 (cyclically)."""
    out = starts.copy()
    for k in range(1, min(size, starts.size)):
        out |= np.roll(starts, k)
    return out


class Traffic:
    def __init__(self, case: Case, seed: tuple[int, ...]) -> None:
        self.case = case
        self.condition = case.condition
        self.scenario = case.scenario
        self.seed = seed
        self._blocks: dict[int, _Block] = {}
        self._seconds: dict[tuple[int, float, bool], Second] = {}

    def _block(self, index: int) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            rng = np.random.default_rng(np.random.SeedSequence((*self.seed, index)))
            shape = (BLOCK, self.condition.max_rate)
            route = rng.random(shape)
            fail = rng.random(shape)
            burst = rng.random(BLOCK) < self.condition.burst_chance
            stable_ms = self.condition.base_latency(rng, shape)
            block = _Block(
                route=route,
                fail=fail,
                burst=burst,
                stable_ms=stable_ms,
                candidate_ms=self.scenario.candidate_latency(stable_ms, self.condition),
            )
            self._blocks[index] = block
        return block

    def before(self, t: int) -> ArmSecond:
        """Second t < 0, before the canary: everything on the stable release."""
        assert -PRE_SECONDS <= t < 0
        return self._second(t, 0.0, False).stable

    def second(self, t: int, step: int, step_started: int) -> Second:
        """Second `t` (from 0) of the deployment, the judge in `step` (an index of STEPS)
        since its second `step_started`."""
        outage = self.condition.in_outage(step, t - step_started)
        return self._second(t, STEPS[step], outage)

    def _second(self, t: int, share: float, outage: bool) -> Second:
        key = (t, share, outage)
        cached = self._seconds.get(key)
        if cached is not None:
            return cached
        c = self.condition
        u = t + PRE_SECONDS
        block = self._block(u // BLOCK)
        row = u % BLOCK
        n = c.rate_at(t)
        route, fail = block.route[row, :n], block.fail[row, :n]
        error_rate = c.outage_error_rate if outage else c.error_rate_at(t)
        if block.burst[row]:
            error_rate = max(error_rate, c.burst_error_rate)
        scale = c.latency_at(t) * (c.outage_latency if outage else 1.0)
        warm = c.warmup_factor if 0 <= t < c.warmup_seconds else 1.0
        to_candidate = route < share
        candidate_error_rate = min(1.0, error_rate + self.scenario.error_increase)
        second = Second(
            stable=self._arm(~to_candidate, fail, error_rate, block.stable_ms[row, :n], scale),
            candidate=self._arm(
                to_candidate,
                fail,
                candidate_error_rate,
                block.candidate_ms[row, :n],
                scale * warm,
            ),
        )
        self._seconds[key] = second
        return second

    def _arm(
        self, mine: Bools, fail: Floats, error_rate: float, base_ms: Floats, scale: float
    ) -> ArmSecond:
        size = self.condition.cluster
        if size > 1:
            fails = _clustered(fail[mine] < error_rate / size, size)
        else:
            fails = fail[mine] < error_rate
        latency = base_ms[mine][~fails] * scale
        return ArmSecond(
            requests=int(np.count_nonzero(mine)),
            errors=int(np.count_nonzero(fails)),
            latency_ms=latency,
            buckets=buckets_of(latency),
        )
