"""A reference judge in the style of Kayenta (Spinnaker's automated canary analysis), looked
at again and again during the canary instead of once at its end.

What Kayenta publishes (see /work/shared/notes/canary-statistics.md): per metric a
Mann-Whitney comparison of the candidate's values with the baseline's, classed Pass, High
or Low; it is built for one look. Netflix measured that looking again and again at A/A
data at a nominal 5% falsely rejects in about 66–70% of runs.

The choices here:

- a look every 10 s, on everything each release served since the canary began;
- latency: `scipy.stats.mannwhitneyu(candidate, stable, alternative="greater")`
  (asymptotic, with continuity and tie correction) on the latencies of the requests that
  did not fail;
- errors: the one-sided two-proportion z-test (pooled), candidate rate > stable rate: the
  Mann-Whitney test on the per-request 0/1 error indicators (its z, without continuity
  correction, times √(N/(N−1)), N all requests: the same test, computed directly);
- each at nominal α = 0.05 one-sided, no correction for the two tests or the many looks
  (Kayenta's defaults are a 98% confidence interval per metric, with a tolerance; we use
  the 5% level the usual canary configurations and this comparison name);
- rollback at the first look where either test says "candidate worse";
- the same steps and step rules as slipway's default configuration: move on after at
  least 30 s and 200 candidate requests in the step without a rollback (a step holds 3
  looks); promoted after the 50% step, so an A/A run takes 90 s.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import mannwhitneyu, norm  # type: ignore[import-untyped]

from bench.judge.model import STEPS, Floats
from bench.judge.outcome import Outcome
from bench.judge.slipway_judge import STEP_MIN_REQUESTS, STEP_MIN_SECONDS
from bench.judge.traffic import Traffic

NAME = "Mann-Whitney (Kayenta)"
LOOK_EVERY = 10
ALPHA = 0.05
MIN_SAMPLES = 20  # per release, before a test is run at all


def errors_p_value(k_c: int, n_c: int, k_s: int, n_s: int) -> float:
    """One-sided p-value of the pooled two-proportion z-test: candidate rate > stable's."""
    if n_c == 0 or n_s == 0:
        return 1.0
    pooled = (k_c + k_s) / (n_c + n_s)
    variance = pooled * (1 - pooled) * (1 / n_c + 1 / n_s)
    if variance <= 0:
        return 1.0
    z = (k_c / n_c - k_s / n_s) / math.sqrt(variance)
    return float(norm.sf(z))


def latency_p_value(candidate: Floats, stable: Floats) -> float:
    """One-sided Mann-Whitney p-value: candidate latencies stochastically greater."""
    if candidate.size < MIN_SAMPLES or stable.size < MIN_SAMPLES:
        return 1.0
    result = mannwhitneyu(candidate, stable, alternative="greater", method="asymptotic")
    return float(result.pvalue)


def deploy(traffic: Traffic) -> Outcome:
    index, step_started, step_requests, t = 0, 0, 0, 0
    n_c = k_c = n_s = k_s = 0
    lat_c: list[Floats] = []
    lat_s: list[Floats] = []
    while True:
        data = traffic.second(t, index, step_started)
        t += 1
        n_c += data.candidate.requests
        k_c += data.candidate.errors
        n_s += data.stable.requests
        k_s += data.stable.errors
        lat_c.append(data.candidate.latency_ms)
        lat_s.append(data.stable.latency_ms)
        step_requests += data.candidate.requests
        if t % LOOK_EVERY == 0:
            causes = []
            if n_c >= MIN_SAMPLES and errors_p_value(k_c, n_c, k_s, n_s) < ALPHA:
                causes.append("errors")
            if latency_p_value(np.concatenate(lat_c), np.concatenate(lat_s)) < ALPHA:
                causes.append("latency")
            if causes:
                return Outcome("rollback", t, n_c, n_c + n_s, " + ".join(causes))
        if step_requests >= STEP_MIN_REQUESTS and t - step_started >= STEP_MIN_SECONDS:
            if index + 1 >= len(STEPS):
                return Outcome("promoted", t, n_c, n_c + n_s)
            index, step_started, step_requests = index + 1, t, 0
