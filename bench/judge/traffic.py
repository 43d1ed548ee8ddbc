"""One simulated deployment's traffic, the same for every judge.

Every request has its own random numbers, drawn once per run: which release it goes to
(a uniform: the candidate's if below the share), whether it fails (a uniform: below the
release's error rate), and its latency (the stable's lognormal draw; the candidate's is a
transform of the same draw). So judges that hold the same share see the very same
requests, and judges on different schedules see the same requests split differently.
Seconds are generated lazily, 60 at a time, each block from its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.judge.model import MEDIAN_MS, RATE, SIGMA, STABLE_ERROR_RATE, Floats, Scenario
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
    route: Floats  # (BLOCK, RATE) uniforms: candidate if < share
    stable_fails: Bools
    candidate_fails: Bools
    stable_ms: Floats
    candidate_ms: Floats
    stable_buckets: Ints
    candidate_buckets: Ints


class Traffic:
    def __init__(self, scenario: Scenario, seed: tuple[int, ...], rate: int = RATE) -> None:
        self.scenario = scenario
        self.seed = seed
        self.rate = rate
        self._blocks: dict[int, _Block] = {}
        self._seconds: dict[tuple[int, float], Second] = {}

    def _block(self, index: int) -> _Block:
        block = self._blocks.get(index)
        if block is None:
            rng = np.random.default_rng(np.random.SeedSequence((*self.seed, index)))
            shape = (BLOCK, self.rate)
            route = rng.random(shape)
            fail = rng.random(shape)
            stable_ms = MEDIAN_MS * np.exp(SIGMA * rng.standard_normal(shape))
            candidate_ms = self.scenario.candidate_latency(stable_ms)
            block = _Block(
                route=route,
                stable_fails=fail < STABLE_ERROR_RATE,
                candidate_fails=fail < self.scenario.candidate_error_rate,
                stable_ms=stable_ms,
                candidate_ms=candidate_ms,
                stable_buckets=buckets_of(stable_ms.ravel()).reshape(shape),
                candidate_buckets=buckets_of(candidate_ms.ravel()).reshape(shape),
            )
            self._blocks[index] = block
        return block

    def second(self, t: int, share: float) -> Second:
        """Second `t` (from 0) of the deployment with the candidate at `share` (0–1)."""
        cached = self._seconds.get((t, share))
        if cached is not None:
            return cached
        block = self._block(t // BLOCK)
        row = t % BLOCK
        to_candidate = block.route[row] < share
        to_stable = ~to_candidate
        ok_c = to_candidate & ~block.candidate_fails[row]
        ok_s = to_stable & ~block.stable_fails[row]
        n_c = int(np.count_nonzero(to_candidate))
        second = Second(
            stable=ArmSecond(
                requests=self.rate - n_c,
                errors=int(np.count_nonzero(to_stable & block.stable_fails[row])),
                latency_ms=block.stable_ms[row][ok_s],
                buckets=block.stable_buckets[row][ok_s],
            ),
            candidate=ArmSecond(
                requests=n_c,
                errors=int(np.count_nonzero(to_candidate & block.candidate_fails[row])),
                latency_ms=block.candidate_ms[row][ok_c],
                buckets=block.candidate_buckets[row][ok_c],
            ),
        )
        self._seconds[(t, share)] = second
        return second
