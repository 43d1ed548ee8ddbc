"""slipway's own judge (`slipway.judge.verdict.judge`, imported, not reimplemented), driven
the way `slipway.deploy.canary.CanaryRun` drives it with the default settings:

- before the canary, the stable release's last 120 s (all the traffic) through
  `Evidence.learn()`, as `CanaryRun.learn_before` does from the recorded seconds;
- a look every second: that second of each release (`Arm`s with slipway's latency
  `Histogram`s) through `Evidence.add_second(stable, candidate, step)`, then
  `judge(evidence, recent, progress)` with the last 5 seconds of both for the hard guard;
- `rollback` ends the deployment; `promote` (at least `step_min_requests` = 200 candidate
  requests and `step_min_seconds` = 30 s in the step, no regression; out of the last
  partial step also "no worse" shown on every check) moves to the next step, and after
  the last partial step (50%) the candidate is promoted to 100%;
- `inconclusive` for longer than `step_timeout` (600 s) aborts (`on_inconclusive` =
  "abort"): when the candidate is worse by less than the allowed margin but not provably
  within it, or the traffic is too thin for the step.

Each look's process CPU time (`add_second` + `judge`, not the traffic generation nor the
histogram building, which the daemon does while ingesting) is recorded.

One simplification: the daemon judges a second once it is complete (about 2.5 s later);
here a look at second t sees every second before t, and a step lasts exactly 30 looks.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from bench.judge.model import PRE_SECONDS, STEPS
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
    if verdict.decision == "inconclusive":
        unproven = [c.metric for c in verdict.checks if not c.no_worse]
        if verdict.reason.startswith("inconclusive: not yet shown") and unproven:
            return "unproven: " + ", ".join(unproven)
        if "requests" in verdict.reason and " of " in verdict.reason:
            return "too few candidate requests"
        return verdict.reason
    return " + ".join(c.metric for c in verdict.checks if c.regression) or verdict.reason


def deploy(traffic: Traffic, settings: Settings = SETTINGS) -> Outcome:
    evidence = Evidence(settings)
    for t in range(-PRE_SECONDS, 0):
        evidence.learn(_arm_of(traffic.before(t)))
    stable, candidate = evidence.stable, evidence.candidate
    recent: deque[tuple[Arm, Arm]] = deque(maxlen=RECENT_SECONDS)
    index, step_started, step_requests = 0, 0, 0
    worse_max: dict[str, float] = {}
    cpu: list[int] = []
    clock = time.process_time_ns
    t = 0
    while True:
        data = traffic.second(t, index, step_started)
        t += 1
        this_second = _arm_of(data.candidate)
        theirs = _arm_of(data.stable)
        recent.append((theirs, this_second))
        step_requests += data.candidate.requests
        progress = Progress(
            step_requests=step_requests,
            step_seconds=float(t - step_started),
            min_requests=STEP_MIN_REQUESTS,
            min_seconds=STEP_MIN_SECONDS,
            final_step=index + 1 >= len(STEPS),
        )
        recent_list = list(recent)
        began = clock()
        evidence.add_second(theirs, this_second, index)
        verdict = judge(evidence, recent_list, progress)
        cpu.append(clock() - began)
        for check in verdict.checks:
            worse_max[check.metric] = max(worse_max.get(check.metric, 0.0), check.worse)
        decision = ""
        if verdict.decision == "rollback":
            decision = "rollback"
        elif verdict.decision == "promote":
            if index + 1 >= len(STEPS):
                decision = "promoted"
            else:
                index, step_started, step_requests = index + 1, t, 0
        elif verdict.decision == "inconclusive" and progress.step_seconds > STEP_TIMEOUT:
            decision = "aborted"
        if decision:
            return Outcome(
                decision,
                t,
                candidate.requests,
                candidate.requests + stable.requests,
                "" if decision == "promoted" else _cause(verdict),
                worse={c.metric: c.worse for c in verdict.checks},
                worse_max=worse_max,
                needed={c.metric: c.needed for c in verdict.checks},
                dispersion=verdict.checks[0].dispersion,
                look_cpu=np.array(cpu, dtype=np.float64) / 1e9,
            )
