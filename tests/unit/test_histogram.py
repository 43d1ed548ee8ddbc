"""Latency histograms: 1% buckets, quantiles within 1%."""

from __future__ import annotations

import math

import numpy as np

from slipway.judge.histogram import Histogram


def test_histogram_quantiles_are_within_one_percent() -> None:
    values = np.random.default_rng(1).lognormal(math.log(20), 0.6, 50_000)
    hist = Histogram.of(values)
    assert hist.n == 50_000
    for p in (0.5, 0.9, 0.99):
        exact = float(np.quantile(values, p))
        assert abs(hist.quantile(p) / exact - 1) < 0.01
        assert hist.quantile_lower(p) <= exact <= hist.quantile_upper(p) * 1.0001


def test_histogram_round_trips_through_its_sparse_form() -> None:
    hist = Histogram.of([1, 1, 2, 250, 3000])
    again = Histogram.from_sparse({str(k): v for k, v in hist.to_sparse().items()})
    assert again.to_sparse() == hist.to_sparse() and again.n == 5


def test_quantile_bounds_past_the_ends() -> None:
    hist = Histogram.of([10.0] * 100)
    assert hist.quantile_lower(-0.1) == 0.0
    assert math.isinf(hist.quantile_upper(1.01))
    assert math.isnan(Histogram().quantile(0.5))
