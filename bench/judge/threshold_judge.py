"""A reference judge in the style of Argo Rollouts' AnalysisTemplate and Flagger's canary
analysis: fixed thresholds checked once per interval, a failure limit.

What they publish (see /work/shared/notes/canary-statistics.md):

- Argo Rollouts: every `interval` a measurement is a user expression against a fixed
  threshold; the metric fails when `failed > failureLimit` (totals, not in a row).
- Flagger: every `interval` (default 60 s) checks thresholds on the canary alone (the
  docs' example: request success rate ≥ 99%, p99 ≤ 500 ms); a failed check holds the
  weight where it is, a passed one advances it; rollback when failed checks reach
  `threshold`.

The choices here, for this service (stable: 1% errors, p99 ≈ 160 ms), the thresholds an
operator would set from the stable release's dashboards with slipway's default margins:

- interval 60 s; over each interval, the candidate's error rate and p99 latency (exact,
  from the requests themselves; Prometheus would interpolate in histogram buckets);
- an interval fails if the error rate > 1% + 0.5pp = 1.5%, or p99 > 1.10 × the stable's
  true p99 (≈ 176 ms), or the candidate served nothing (Flagger's "no values found");
  the thresholds are set from the stable release as it was just before the canary (its
  dashboards), so under a condition they are the condition's values at t = 0 (the
  heavy-tailed service: 1.10 × 431 ms); what changes during the canary is not followed;
- rollback at the 2nd failed interval (Argo `failureLimit: 1`, Flagger `threshold: 2`);
- a passed interval advances the step (5% → 25% → 50% → promoted), a failed one holds it
  (Flagger): so promotion takes at least 3 intervals (180 s), at most 4.
"""

from __future__ import annotations

import numpy as np

from bench.judge.model import STABLE_ERROR_RATE, STEPS, Condition, stable_quantile
from bench.judge.outcome import Outcome
from bench.judge.traffic import Traffic

NAME = "threshold (Argo/Flagger)"
INTERVAL = 60
MAX_ERROR_RATE = STABLE_ERROR_RATE + 0.005
MAX_P99_MS = 1.10 * stable_quantile(0.99)
FAILURES_TO_ROLLBACK = 2


def limits(condition: Condition) -> tuple[float, float]:
    """(error rate, p99 in ms) above which an interval fails."""
    return (
        condition.error_rate_at(0) + 0.005,
        1.10 * condition.base_quantile(0.99) * condition.latency_at(0),
    )


def deploy(traffic: Traffic) -> Outcome:
    max_error_rate, max_p99_ms = limits(traffic.condition)
    index, failures, t, step_started = 0, 0, 0, 0
    candidate_requests = total_requests = 0
    while True:
        requests = errors = 0
        latencies = []
        for _ in range(INTERVAL):
            data = traffic.second(t, index, step_started)
            t += 1
            requests += data.candidate.requests
            errors += data.candidate.errors
            latencies.append(data.candidate.latency_ms)
            total_requests += data.candidate.requests + data.stable.requests
        candidate_requests += requests
        served = np.concatenate(latencies)
        causes = []
        if requests == 0 or served.size == 0:
            causes.append("no values")
        else:
            if errors / requests > max_error_rate:
                causes.append("error rate")
            if float(np.quantile(served, 0.99)) > max_p99_ms:
                causes.append("p99")
        if causes:
            failures += 1
            if failures >= FAILURES_TO_ROLLBACK:
                cause = " + ".join(causes)
                return Outcome("rollback", t, candidate_requests, total_requests, cause)
        else:
            index, step_started = index + 1, t
            if index >= len(STEPS):
                return Outcome("promoted", t, candidate_requests, total_requests)
