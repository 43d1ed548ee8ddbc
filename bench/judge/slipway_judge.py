"""slipway's own judge (`slipway.judge.verdict.judge`, imported, not reimplemented), driven
the way `slipway.deploy.canary.CanaryRun` drives it with the default settings:

- a look every second, with everything each release served since the canary began
  (`Arm`s with slipway's latency `Histogram`s) and the candidate's last 5 seconds for the
  hard guard;
- `rollback` ends the deployment; `promote` (at least `step_min_requests` = 200 candidate
  requests and `step_min_seconds` = 30 s in the step, no regression) moves to the next step,
  and after the last partial step (50%) the candidate is promoted to 100%;
- `inconclusive` for longer than `step_timeout` (600 s) aborts (`on_inconclusive` =
  "abort"): it happens when the candidate is worse by less than the allowed margin but not
  provably within it, e.g. errors 1% → 1.3% with +0.5pp allowed.

One simplification: the daemon judges a second once it is complete (about 2.5 s later);
here a look at second t sees every second before t, and a step lasts exactly 30 looks.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from bench.judge.model import STEPS
from bench.judge.outcome import Outcome
from bench.judge.traffic import ArmSecond, Traffic
from slipway.judge.histogram import BUCKETS, Histogram
from slipway.judge.verdict import Arm, Evidence, Progress, Settings, Verdict, judge

NAME = "slipway"
SETTINGS = Settings()  # alpha 0.05, +0.5pp errors, +10% latency at p50/p90/p99, guard 50%
STEP_MIN_SECONDS = 30.0
STEP_MIN_REQUESTS = 200
STEP_TIMEOUT = 600.0
RECENT_SECONDS = 5


def _arm_of(data: ArmSecond) -> Arm:
    counts = np.bincount(data.buckets, minlength=BUCKETS).astype(np.int64)
    return Arm(data.requests, data.errors, Histogram(counts))


def _cause(verdict: Verdict) -> str:
    if verdict.reason.startswith("hard guard"):
        return "hard guard"
    return " + ".join(c.metric for c in verdict.checks if c.regression) or verdict.reason


def deploy(traffic: Traffic, settings: Settings = SETTINGS) -> Outcome:
    evidence = Evidence(settings)
    stable, candidate = evidence.stable, evidence.candidate
    recent: deque[tuple[Arm, Arm]] = deque(maxlen=RECENT_SECONDS)
    index, step_started, step_requests = 0, 0, 0
    t = 0
    while True:
        data = traffic.second(t, STEPS[index])
        t += 1
        this_second = _arm_of(data.candidate)
        theirs = _arm_of(data.stable)
        evidence.add_second(theirs, this_second, index)
        recent.append((theirs, this_second))
        step_requests += data.candidate.requests
        progress = Progress(
            step_requests=step_requests,
            step_seconds=float(t - step_started),
            min_requests=STEP_MIN_REQUESTS,
            min_seconds=STEP_MIN_SECONDS,
            final_step=index + 1 >= len(STEPS),
        )
        verdict = judge(evidence, list(recent), progress)
        served = (t, candidate.requests, candidate.requests + stable.requests)
        if verdict.decision == "rollback":
            return Outcome("rollback", *served, _cause(verdict))
        if verdict.decision == "promote":
            if index + 1 >= len(STEPS):
                bounds = {c.metric: c.worse for c in verdict.checks}
                return Outcome("promoted", *served, lower_bounds=bounds)
            index, step_started, step_requests = index + 1, t, 0
        elif verdict.decision == "inconclusive" and progress.step_seconds > STEP_TIMEOUT:
            return Outcome("aborted", *served, verdict.reason)
