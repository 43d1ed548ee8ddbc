"""Running a release's gates in a deployment or a check, and recording what they found.

Order and cost: the scans (secrets, code, dependencies) are cheap and independent, so they
run together first; the app's test commands follow one by one; the performance gate needs the
candidate running and comes after its health checks, before it gets any user traffic. The
first failing group stops the deployment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from slipway.config.schema import AppConfig
from slipway.errors import DeployError
from slipway.gates.base import Gate, GateContext, GateResult, Targets
from slipway.gates.commands import CommandGate
from slipway.gates.dependencies import DependencyAudit
from slipway.gates.performance import PerformanceCheck
from slipway.gates.scans import CodeScan, SecretScan
from slipway.store.records import Deployment
from slipway.store.store import Store

DETAIL_LINES = 20


class GateFailed(DeployError):
    kind = "gate"


def gates_of(config: AppConfig) -> list[Gate]:
    """Every gate the config turns on, cheap ones first."""
    spec = config.gates
    gates: list[Gate] = []
    if spec.secrets.enabled:
        gates.append(SecretScan(spec.secrets))
    if spec.code.enabled:
        gates.append(CodeScan(spec.code))
    if spec.dependencies.enabled:
        gates.append(DependencyAudit(spec.dependencies))
    gates.extend(CommandGate(t) for t in spec.test)
    if spec.performance is not None:
        gates.append(PerformanceCheck(spec.performance))
    return gates


@dataclass
class GateRun:
    """The gates of one deployment (or check) of one release."""

    store: Store
    dep: Deployment
    release_dir: Path
    env: dict[str, str]
    log_path_of: Callable[[str], Path]
    say: Callable[[str, str, dict[str, object] | None], None]  # (status, message, data)
    redact: Callable[[str], str] = str

    async def run(self, gates: list[Gate], targets: Targets | None = None) -> str:
        began = time.monotonic()
        to_run = [g for g in gates if not self.skipped(g)]
        scans = [g for g in to_run if g.kind in ("secrets", "code", "dependencies")]
        groups = [scans] + [[g] for g in to_run if g not in scans]
        results: list[tuple[Gate, GateResult]] = []
        for group in groups:
            if not group:
                continue
            done = await asyncio.gather(*(self.one(g, targets) for g in group))
            results.extend(zip(group, done, strict=True))
            failed = [(g, r) for g, r in zip(group, done, strict=True) if r.status == "failed"]
            if failed:
                raise self.failure(*failed[0], also=len(failed) - 1)
        return self.summary(results, len(gates) - len(to_run), time.monotonic() - began)

    def skipped(self, gate: Gate) -> bool:
        reason = self.dep.skip_gates.get(gate.name)
        if reason is None:
            return False
        result = GateResult("skipped", f"skipped by {self.dep.who}: {reason}")
        self.record(gate, result, 0.0, reason=reason)
        self.say("skipped", f"{gate.name}: {result.summary}", None)
        return True

    async def one(self, gate: Gate, targets: Targets | None) -> GateResult:
        log_path = self.log_path_of(gate.name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.unlink(missing_ok=True)
        ctx = GateContext(
            self.dep.app,
            self.dep.to_release,
            self.release_dir,
            self.env,
            log_path,
            lambda line: self.say("info", f"{gate.name}: {line}", None),
            targets,
            self.redact,
        )
        self.say("info", f"{gate.name}: running", None)
        started = time.monotonic()
        try:
            result = await gate.run(ctx)
        except Exception as exc:  # a gate that crashes fails closed (cancelling is no Exception)
            result = GateResult("failed", f"the gate crashed: {type(exc).__name__}: {exc}")
        seconds = time.monotonic() - started
        self.record(gate, result, seconds, log_path=log_path)
        data: dict[str, object] = {"seconds": round(seconds, 3), "gate": gate.name}
        self.say(result.status, f"{gate.name}: {result.summary}", data)
        return result

    def record(
        self,
        gate: Gate,
        result: GateResult,
        seconds: float,
        *,
        reason: str | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.store.add_gate_result(
            self.dep.app,
            self.dep.to_release,
            self.dep.id,
            gate.name,
            gate.kind,
            result.to_dict(),
            who=self.dep.who,
            reason=reason,
            seconds=round(seconds, 3),
            log_path=str(log_path) if log_path and log_path.exists() else None,
        )

    def failure(self, gate: Gate, result: GateResult, also: int) -> GateFailed:
        release = self.dep.to_release
        details = [str(f) for f in result.findings[:DETAIL_LINES]]
        if len(result.findings) > DETAIL_LINES:
            details.append(f"… and {len(result.findings) - DETAIL_LINES} more")
        tail = result.evidence.get("output_tail")
        if isinstance(tail, list):
            details.extend(str(line) for line in tail)
        serving = "nothing was deployed" if self.dep.kind == "check" else "it got no traffic"
        fix = [f"`slipway gates {release} --app {self.dep.app}` shows every gate's evidence"]
        if result.reproduce:
            fix.insert(0, f"reproduce: {result.reproduce}")
        if isinstance(result.evidence.get("fix"), str):
            fix.insert(0, result.evidence["fix"])
        log_path = self.log_path_of(gate.name)
        if log_path.exists():
            fix.append(f"full output: {log_path}")
        fix.append(f'to deploy anyway: --skip-gate {gate.name} --reason "…"')
        others = f" (and {also} other gate(s))" if also else ""
        return GateFailed(
            f"gate '{gate.name}' failed{others}: {result.summary}; {serving}",
            where=f"app {self.dep.app}, release {release}, gate {gate.name}",
            details=details,
            fix="; ".join(fix),
            data={"gate": gate.name, "result": result.to_dict()},
        )

    @staticmethod
    def summary(results: list[tuple[Gate, GateResult]], skipped: int, seconds: float) -> str:
        passed = [g.name for g, r in results if r.status == "passed"]
        not_checked = [g.name for g, r in results if r.status == "skipped"]
        text = f"{len(passed)} gate(s) passed in {seconds:.1f}s"
        if passed:
            text += f" ({', '.join(passed)})"
        if not_checked:
            text += f"; not checked: {', '.join(not_checked)}"
        if skipped:
            text += f"; {skipped} skipped by hand"
        return text
