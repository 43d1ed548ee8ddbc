"""The performance gate: the candidate's instances against the stable release's, before the
candidate gets any user traffic. The load goes straight to the instances' ports, never
through the public listener, and runs in a process of its own (gates/loadrun.py)."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from typing import Any

from slipway.config.gates import PerformanceGate
from slipway.gates.base import Finding, GateContext, GateResult, Targets

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
CONFIRM_AFTER = 1.0  # seconds: let a passing disturbance (a build, a cron job) end


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank quantile: an observed latency, never an interpolated one."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(side: dict[str, Any]) -> dict[str, Any]:
    latencies = side["latencies_ms"]
    counted = len(latencies)
    failed = sum(side["errors"].values()) + sum(
        n for status, n in side["statuses"].items() if int(status) >= 500
    )
    return {
        "requests": counted,
        "error_rate": failed / counted if counted else 1.0,
        "errors": failed,
        "statuses": side["statuses"],
        "no_answer": side["errors"],
        **{name: round(quantile(latencies, q), 3) for name, q in QUANTILES.items()},
    }


def judge(spec: PerformanceGate, measured: dict[str, Any]) -> GateResult:
    """Pure: the gate's verdict on what loadrun measured."""
    candidate = summarize(measured["candidate"])
    stable = summarize(measured["stable"]) if "stable" in measured else None
    findings: list[Finding] = []
    if candidate["error_rate"] > spec.max_error_rate:
        findings.append(
            Finding(
                "error rate",
                f"{candidate['error_rate']:.2%} of {candidate['requests']} requests failed "
                f"(5xx or no answer); allowed {spec.max_error_rate:.2%}",
            )
        )
    limits = {
        "p50": spec.max_p50_increase,
        "p95": spec.max_p95_increase,
        "p99": spec.max_p99_increase,
    }
    ratios: dict[str, float] = {}
    floor_ms = spec.min_latency_increase * 1000
    for name, limit in limits.items():
        if stable is None or limit is None:
            continue
        new, old = candidate[name], stable[name]
        ratios[name] = round(new / old, 3) if old > 0 else math.inf
        if new > old * (1 + limit) and new - old > floor_ms:
            findings.append(
                Finding(
                    f"latency {name}",
                    f"{new:.1f} ms against {old:.1f} ms on the stable release "
                    f"(×{new / old:.2f}; allowed +{limit:.0%})",
                )
            )
    evidence = {
        "candidate": candidate,
        "stable": stable,
        "ratios": ratios,
        "load": {k: measured[k] for k in ("seconds", "rate", "cpu")},
        "thresholds": {
            **{f"max_{k}_increase": v for k, v in limits.items()},
            "min_latency_increase_ms": floor_ms,
            "max_error_rate": spec.max_error_rate,
        },
    }
    versus = (
        f"p95 {candidate['p95']:.1f} ms vs {stable['p95']:.1f} ms stable"
        if stable
        else f"p95 {candidate['p95']:.1f} ms (no stable release to compare with)"
    )
    load = f"{candidate['requests']} requests per release at {measured['rate']:.0f} req/s"
    if findings:
        return GateResult("failed", f"{findings[0].what}; {load}", findings, evidence)
    errors = f"{candidate['error_rate']:.2%} errors"
    return GateResult("passed", f"{versus}, {errors}; {load}", [], evidence)


class PerformanceCheck:
    name = kind = "performance"
    needs_running = True

    def __init__(self, spec: PerformanceGate) -> None:
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        assert ctx.targets is not None
        spec = self.spec
        ctx.progress(
            f"{spec.warmup}+{spec.requests} requests per release to "
            f"{len(ctx.targets.candidate)} candidate and {len(ctx.targets.stable)} stable "
            f"instance(s), {spec.concurrency} at a time"
        )
        try:
            async with asyncio.timeout(spec.timeout):
                result = judge(spec, await measure(spec, ctx.targets))
                if result.status == "failed":
                    # A short load on a busy machine fails an identical release now and then
                    # (about 2% of runs in bench/gates): a regression must show twice.
                    ctx.progress(f"{result.summary}; measuring again to confirm")
                    await asyncio.sleep(CONFIRM_AFTER)
                    again = judge(spec, await measure(spec, ctx.targets))
                    again.evidence["first_measurement"] = result.evidence
                    result = again if again.status == "failed" else confirmed_pass(again, result)
        except TimeoutError:
            return GateResult(
                "failed",
                f"the load did not finish within {spec.timeout:g}s (raise [gates.performance] "
                "timeout, or lower requests)",
            )
        except LoadError as exc:
            return GateResult("failed", f"the load generator failed: {exc}")
        result.reproduce = "slipway check  # runs the performance gate against the stable release"
        return result


def confirmed_pass(second: GateResult, first: GateResult) -> GateResult:
    second.summary += f" (a first measurement failed: {first.findings[0].what}; not repeated)"
    return second


class LoadError(Exception):
    pass


async def measure(spec: PerformanceGate, targets: Targets) -> dict[str, Any]:
    plan = {
        "candidate": targets.candidate,
        "stable": targets.stable,
        "paths": spec.paths,
        "requests": spec.requests,
        "warmup": spec.warmup,
        "concurrency": spec.concurrency,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slipway.gates.loadrun",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await proc.communicate(json.dumps(plan).encode())
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise LoadError(f"exit code {proc.returncode}: {lines[-1] if lines else 'no output'}")
    result: dict[str, Any] = json.loads(out)
    return result
