"""The performance gate: the candidate's instances against the stable release's, before the
candidate gets any user traffic. The load goes straight to the instances' ports, never
through the public listener, and runs in a process of its own (gates/loadrun.py), in
pairs; gates/pairtest.py judges them after every batch, and the load stops as soon as the
test has decided, or when the budget (`requests`) is spent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slipway.config.gates import PerformanceGate
from slipway.gates.base import Finding, GateContext, GateResult, Targets
from slipway.gates.pairtest import (
    QUANTILE_OF,
    ErrorCheck,
    Judgement,
    LatencyCheck,
    Limits,
    Pairs,
    decide,
    e_text,
    quantile,
)

SIDES = ("candidate", "stable")
RETRY_AFTER = 1.0  # seconds: let a passing disturbance (a build, a cron job) end
PROGRESS_EVERY = 2.0  # seconds between progress lines while measuring
METHOD = (
    "paired requests (one to each release, back to back, in random order) in blocks; per "
    "watched quantile, a sequential sign test on the blocks where the candidate's quantile is "
    "above the allowed (anytime-valid e-values, Ville's inequality); errors: a sequential test "
    "against max_error_rate"
)


@dataclass
class Measurement:
    """Everything loadrun reported so far, over every attempt."""

    pairs: Pairs = field(default_factory=Pairs)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> status -> n
    no_answer: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> error -> n
    runs: list[dict[str, Any]] = field(default_factory=list)  # loadrun's closing lines
    compare: bool = True  # a stable release to compare with

    def add_batch(self, batch: dict[str, Any]) -> None:
        for c_ms, c_status, s_ms, s_status in batch["pairs"]:
            self._count("candidate", c_status)
            if s_status is not None:
                self._count("stable", s_status)
            self.pairs.add(
                c_ms if c_status else None,
                s_ms if s_status else None,
                _failed(c_status),
                s_status is not None and _failed(s_status),
            )
        for side, errors in batch.get("no_answer", {}).items():
            counts = self.no_answer.setdefault(side, {})
            for error, n in errors.items():
                counts[error] = counts.get(error, 0) + n

    def _count(self, side: str, status: int) -> None:
        if status:  # no answer is counted by error type instead
            counts = self.statuses.setdefault(side, {})
            counts[str(status)] = counts.get(str(status), 0) + 1


def _failed(status: int) -> bool:
    return status == 0 or status >= 500


def limits_of(spec: PerformanceGate, budget: int) -> Limits:
    rate = spec.max_error_rate
    return Limits(
        increases=spec.watched(),
        floor_ms=spec.min_latency_increase * 1000,
        max_error_rate=rate,
        alpha=spec.alpha,
        min_error_pairs=min(budget, math.ceil(1 / rate)) if rate > 0 else budget,
    )


def judge(spec: PerformanceGate, measured: Measurement, budget: int, exhausted: bool) -> Judgement:
    """Pure: the test's decision on what was measured so far."""
    return decide(measured.pairs, limits_of(spec, budget), exhausted, measured.compare)


# the result, with its evidence ------------------------------------------------------------


def summarize(measured: Measurement, side: str) -> dict[str, Any]:
    pairs = measured.pairs
    if side == "candidate":
        latencies, failed = pairs.candidate, pairs.candidate_failed
    else:
        latencies, failed = pairs.stable, pairs.stable_failed
    answered = [v for v in latencies if v is not None]
    counted = len(answered) + sum(measured.no_answer.get(side, {}).values())
    return {
        "requests": counted,
        "errors": sum(failed),
        "error_rate": round(sum(failed) / counted, 6) if counted else 0.0,
        "statuses": measured.statuses.get(side, {}),
        "no_answer": measured.no_answer.get(side, {}),
        **{name: round(quantile(answered, q), 3) for name, q in QUANTILE_OF.items()},
    }


def latency_evidence(check: LatencyCheck) -> dict[str, Any]:
    return {
        "metric": f"latency {check.name}",
        "candidate_ms": round(check.candidate_ms, 3),
        "stable_ms": round(check.stable_ms, 3),
        "allowed_increase": check.increase,
        "min_latency_increase_ms": check.floor_ms,
        "block_pairs": check.block,
        "blocks": check.blocks,
        "slower_blocks": check.slower_blocks,
        "block_ratio_median": _finite(check.ratio_median),
        "block_ratio_bounds": [_finite(b) for b in check.ratio_bounds],
        "e_slower": _e_value(check.log_e_slower),
        "e_within": _e_value(check.log_e_within),
        "fail_at": _e_value(check.fail_at),
        "pass_at": _e_value(check.pass_at),
        "verdict": check.verdict,
        "text": check.text,
    }


def error_evidence(check: ErrorCheck) -> dict[str, Any]:
    return {
        "metric": "error rate",
        "requests": check.requests,
        "errors": check.errors,
        "rate": round(check.rate, 6),
        "allowed": check.allowed,
        "e_above": _e_value(check.log_e_above),
        "fail_at": _e_value(check.fail_at),
        "verdict": check.verdict,
        "text": check.text,
    }


def result_of(
    spec: PerformanceGate, measured: Measurement, judgement: Judgement, attempts: int
) -> GateResult:
    """Pure: the gate's result, the numbers behind it and, for an inconclusive test, what
    `on_inconclusive` made of it."""
    candidate = summarize(measured, "candidate")
    stable = summarize(measured, "stable") if measured.compare else None
    decision = judgement.decision
    evidence: dict[str, Any] = {
        "decision": decision,
        "reason": judgement.reason,
        "method": METHOD,
        "alpha": spec.alpha,
        "on_inconclusive": spec.on_inconclusive,
        "attempts": attempts,
        "pairs": len(measured.pairs),
        "budget": spec.requests,
        "warmup": spec.warmup,
        "candidate": candidate,
        "stable": stable,
        "checks": [latency_evidence(c) for c in judgement.latency]
        + [error_evidence(judgement.errors)],
        "ratios": {
            c.name: round(c.candidate_ms / c.stable_ms, 3) if c.stable_ms > 0 else None
            for c in judgement.latency
        },
        "load": measured.runs,
        "thresholds": {
            **{f"max_{k}_increase": v for k, v in spec.watched().items()},
            "min_latency_increase_ms": spec.min_latency_increase * 1000,
            "max_error_rate": spec.max_error_rate,
        },
    }
    used = f"{len(measured.pairs)} pairs" + (f" in {attempts} measurements" if attempts > 1 else "")
    if decision == "fail":
        findings = [
            Finding(f"latency {c.name}", c.text) for c in judgement.latency if c.verdict == "slower"
        ]
        if judgement.errors.verdict == "slower":
            findings.insert(0, Finding("error rate", judgement.errors.text))
        return GateResult("failed", f"{_failing(judgement)}; {used}", findings, evidence)
    headline = _headline(judgement, candidate)
    if decision == "pass":
        return GateResult("passed", f"{headline}: within the allowed; {used}", [], evidence)
    # Inconclusive (or "continue": the measurement stopped short, e.g. at its timeout).
    evidence["decision"] = "inconclusive"
    undecided = [
        Finding(f"latency {c.name}", c.text) for c in judgement.latency if c.verdict == "undecided"
    ]
    if judgement.errors.verdict == "undecided":
        undecided.insert(0, Finding("error rate", judgement.errors.text))
    why = f"inconclusive after {used}: {', '.join(f.where for f in undecided)} undecided"
    if spec.on_inconclusive == "warn":
        evidence["warning"] = f'{why}; passed because [gates.performance] on_inconclusive = "warn"'
        return GateResult("passed", f"WARNING {why} (on_inconclusive = warn)", [], evidence)
    tried = " (after measuring once more)" if attempts > 1 else ""
    return GateResult(
        "failed",
        f"{why}{tried}; on_inconclusive = {spec.on_inconclusive} fails it",
        undecided,
        evidence | {"fix": INCONCLUSIVE_FIX},
    )


INCONCLUSIVE_FIX = (
    "the candidate was neither shown slower than allowed nor shown within it: raise "
    '[gates.performance] requests (the budget), or set on_inconclusive = "warn" to pass such '
    "releases with a warning"
)


def _failing(judgement: Judgement) -> str:
    """The first failing check, in one line with its numbers."""
    errors = judgement.errors
    if errors.verdict == "slower":
        return (
            f"error rate {errors.rate:.2%} ({errors.errors} of {errors.requests}) above the "
            f"allowed {errors.allowed:.2%} (e-value {e_text(errors.log_e_above)} ≥ "
            f"{e_text(errors.fail_at)})"
        )
    c = next(c for c in judgement.latency if c.verdict == "slower")
    return (
        f"latency {c.name} {c.candidate_ms:.1f} ms against {c.stable_ms:.1f} ms on the stable "
        f"release: ×{c.ratio_median:.2f} (median of {c.blocks} blocks; {c.slower_blocks} slower "
        f"than allowed +{c.increase:.0%} / +{c.floor_ms:g} ms; e-value "
        f"{e_text(c.log_e_slower)} ≥ {e_text(c.fail_at)})"
    )


def _headline(judgement: Judgement, candidate: dict[str, Any]) -> str:
    errors = f"{candidate['error_rate']:.2%} errors"
    if not judgement.latency:
        return f"p95 {candidate['p95']:.1f} ms (no stable release to compare with), {errors}"
    c = next((c for c in judgement.latency if c.name == "p95"), judgement.latency[0])
    return (
        f"{c.name} {c.candidate_ms:.1f} ms vs {c.stable_ms:.1f} ms stable "
        f"(×{c.ratio_median:.2f} in {c.blocks} blocks), {errors}"
    )


def _e_value(log_e: float) -> float | None:
    """An e-value for JSON: None for infinity; huge values capped."""
    if math.isinf(log_e):
        return None if log_e > 0 else 0.0
    return float(f"{math.exp(min(log_e, 690.0)):.4g}")


def _finite(value: float) -> float | None:
    return round(value, 4) if math.isfinite(value) else None


# the gate ---------------------------------------------------------------------------------


class PerformanceCheck:
    name = kind = "performance"
    needs_running = True

    def __init__(self, spec: PerformanceGate) -> None:
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        assert ctx.targets is not None
        spec = self.spec
        measured = Measurement(compare=bool(ctx.targets.stable))
        attempts = 2 if spec.on_inconclusive == "retry" else 1
        ctx.progress(
            f"up to {spec.requests} pairs (after {spec.warmup} warm-up) to "
            f"{len(ctx.targets.candidate)} candidate and {len(ctx.targets.stable)} stable "
            f"instance(s), {spec.concurrency} at a time; stops once decided"
        )
        attempt = 1
        try:
            async with asyncio.timeout(spec.timeout):
                for attempt in range(1, attempts + 1):
                    if attempt > 1:
                        ctx.progress(
                            f"inconclusive after {len(measured.pairs)} pairs; measuring once more"
                        )
                        await asyncio.sleep(RETRY_AFTER)
                    judgement = await measure(spec, ctx.targets, measured, attempt, ctx.progress)
                    if judgement.decision != "inconclusive":
                        break
        except TimeoutError:
            # Whatever was measured is judged: it may have decided; if not, it is inconclusive.
            judgement = judge(spec, measured, spec.requests * attempt, exhausted=True)
            result = result_of(spec, measured, judgement, attempt)
            result.summary += (
                f" (stopped at the timeout of {spec.timeout:g}s: raise [gates.performance] "
                "timeout, or lower requests)"
            )
            return _reproducible(result)
        except LoadError as exc:
            return GateResult("failed", f"the load generator failed: {exc}")
        return _reproducible(result_of(spec, measured, judgement, attempt))


def _reproducible(result: GateResult) -> GateResult:
    result.reproduce = "slipway check  # runs the performance gate against the stable release"
    return result


class LoadError(Exception):
    pass


async def measure(
    spec: PerformanceGate,
    targets: Targets,
    measured: Measurement,
    attempt: int,
    progress: Callable[[str], None],
) -> Judgement:
    """One run of loadrun: `spec.requests` pairs at most, fewer once the test decides. Its
    pairs are added to `measured` (the test goes on across attempts: it is anytime-valid)."""
    budget = spec.requests * attempt
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
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    judgement: Judgement | None = None
    said_at = time.monotonic()
    try:
        proc.stdin.write(json.dumps(plan).encode() + b"\n")
        await proc.stdin.drain()
        while line := await proc.stdout.readline():
            data = json.loads(line)
            if data.get("done"):
                measured.runs.append(data)
                continue
            if judgement is not None:
                continue  # sent before loadrun heard the stop: the decision stands
            measured.add_batch(data)
            now = judge(spec, measured, budget, exhausted=False)
            if now.decision in ("pass", "fail"):
                judgement = now
                with contextlib.suppress(ConnectionError):  # it may have finished already
                    proc.stdin.write(b"stop\n")
                    await proc.stdin.drain()
            elif time.monotonic() - said_at >= PROGRESS_EVERY:
                said_at = time.monotonic()
                progress(_progress_line(measured, now))
        err = await proc.stderr.read()
        await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled (the gate's timeout): never left running
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise LoadError(f"exit code {proc.returncode}: {lines[-1] if lines else 'no output'}")
    if judgement is None:  # the budget is spent
        judgement = judge(spec, measured, budget, exhausted=True)
    return judgement


def _progress_line(measured: Measurement, judgement: Judgement) -> str:
    parts = [
        f"{c.name} ×{c.ratio_median:.2f}, {c.slower_blocks} of {c.blocks} blocks slower"
        for c in judgement.latency
    ]
    parts.append(f"{judgement.errors.errors} errors")
    return f"{len(measured.pairs)} pairs: {'; '.join(parts)}; undecided"
