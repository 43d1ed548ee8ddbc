"""bench.faults' pure accounting: which failures a client may retry, when traffic is whole."""

from __future__ import annotations

import math

import pytest
from bench.faults.outcome import failures, retryable, whole_again

from slipway.loadgen import RawConnection, Sample


def ok(t: float) -> Sample:
    return Sample(t, 10.0, 200)


def test_only_failures_that_reached_no_app_are_retryable() -> None:
    assert retryable(Sample(1.0, 5.0, 0, error="ConnectError"))
    assert retryable(Sample(1.0, 5.0, 503))
    assert not retryable(Sample(1.0, 5.0, 0, error="ReadTimeout"))
    assert not retryable(Sample(1.0, 5.0, 502))
    samples = [ok(0.5), Sample(1.0, 5.0, 503), Sample(1.1, 5.0, 0, error="ReadError"), ok(2.0)]
    counted = failures(samples, 1.0, 3.0)
    assert (counted.sent, counted.retryable, counted.not_retryable) == (3, 1, 1)


def test_traffic_is_whole_from_the_first_answer_after_the_last_failure() -> None:
    samples = [ok(10.0), Sample(10.5, 1.0, 0, error="ConnectError")]
    samples += [ok(10.6 + i * 0.1) for i in range(20)]
    assert whole_again(samples, 10.0, 13.0) == pytest.approx(0.61)
    assert whole_again([ok(10.0), ok(11.0)], 10.0, 13.0) == 0.0
    assert math.isinf(whole_again(samples, 10.0, 11.0))  # not held for a second in the window


def test_a_raw_post_says_its_body_is_empty() -> None:
    request = RawConnection("http://127.0.0.1:9/x", 1.0, "POST").request
    assert request.startswith(b"POST /x HTTP/1.1\r\n")
    assert b"Content-Length: 0\r\n\r\n" in request
    assert b"Content-Length" not in RawConnection("http://127.0.0.1:9/", 1.0).request
