"""What one fault cost the requests sent in its window (pure: samples in, numbers out).

A failed request (no answer, or a 5xx) is *retryable* when the client can tell it reached no
app: the connection could not be made, or HAProxy answered 503 (no server took it). Any other
failure (a reset or a timeout after the request was sent, a 502 or 504) may have done its
work: safe to send again only if the request is idempotent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from slipway.loadgen import Sample

NOT_SENT_ERRORS = frozenset({"ConnectError", "ConnectTimeout"})
HOLD_SECONDS = 1.0  # traffic is whole once every request succeeds for at least this long


def retryable(sample: Sample) -> bool:
    return sample.status == 503 or sample.error in NOT_SENT_ERRORS


@dataclass(frozen=True)
class Failures:
    sent: int
    retryable: int
    not_retryable: int

    @property
    def failed(self) -> int:
        return self.retryable + self.not_retryable


def within(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    """The requests sent in [start, end), in the order they were sent."""
    return sorted((s for s in samples if start <= s.t < end), key=lambda s: s.t)


def failures(samples: Sequence[Sample], start: float, end: float) -> Failures:
    sent = within(samples, start, end)
    failed = [s for s in sent if s.failed]
    again = sum(1 for s in failed if retryable(s))
    return Failures(len(sent), again, len(failed) - again)


def whole_again(
    samples: Sequence[Sample], start: float, end: float, hold: float = HOLD_SECONDS
) -> float:
    """Seconds from `start` until the answer to the first request after which every request
    sent until `end` succeeded (0 if none failed); inf if that never held for `hold` seconds
    before `end` (or no request was sent after the last failure)."""
    sent = within(samples, start, end)
    failed = [s for s in sent if s.failed]
    if not failed:
        return 0.0
    last = failed[-1].t
    after = [s for s in sent if s.t > last]
    if not after or end - last < hold or after[-1].t - after[0].t < hold - 0.1:
        return math.inf
    return max(0.0, after[0].done - start)


def first_answer(samples: Sequence[Sample], start: float, end: float) -> float:
    """Seconds from `start` until the first successful answer to a request sent after it."""
    done = [s.done for s in within(samples, start, end) if not s.failed]
    return min(done, default=math.inf) - start
