"""Per-operation measures, from a deployment's recorded events and the load's samples."""

from __future__ import annotations

from bench.zero_downtime.analysis import Timeline, Traffic, Window, switch_moment
from bench.zero_downtime.control import Operation
from bench.zero_downtime.run import Results

# Samples sent this long before a rollback can still be answering when it starts.
LOOKBACK_SECONDS = 5.0


def overhead(op: Operation, boot: float) -> float:
    return op.seconds - op.step_seconds("build") - boot


def daemon_switch(op: Operation) -> float:
    """Rollback accepted by the daemon → its `shift` step done (HAProxy weights set)."""
    return float(op.event("shift")["at"]) - float(op.deployment["started_at"])


def client_switch(op: Operation, results: Results) -> float:
    """Monotonic time at which clients saw only the rollback's target release (looking at
    answers until the next operation starts)."""
    part = results.slipway
    starts = sorted(o.started for o in part.deploys + part.rollbacks)
    until = next((t for t in starts if t > op.started), part.ended)
    nearby = part.timeline.between(op.started - LOOKBACK_SECONDS, until)
    return switch_moment(nearby, str(op.deployment["to_release"]), op.started, until)


def operation_parts(op: Operation, results: Results) -> dict[str, Window]:
    """An operation cut where its events say: CLI start-up, build (deploys only), start +
    health, the switch and clean-up, and the CLI's return."""
    off = results.wall_offset
    dep = op.deployment

    def at(step: str, status: str) -> float:
        return float(op.event(step, status)["at"]) - off

    parts = {
        "CLI start-up → accepted by the daemon": Window("", op.started, dep["started_at"] - off)
    }
    if op.kind == "deploy":
        parts["build step"] = Window("", at("build", "start"), at("build", "ok"))
    parts["start + health steps"] = Window("", at("start", "start"), at("health", "ok"))
    parts["shift + drain + retire steps"] = Window("", at("shift", "start"), at("retire", "ok"))
    parts["done → CLI returned"] = Window("", dep["finished_at"] - off, op.ended)
    return parts


def breakdown(
    timeline: Timeline, ops: list[Operation], steady: Traffic, results: Results
) -> list[tuple[str, Traffic, Traffic, Traffic | None]]:
    parts = [operation_parts(op, results) for op in ops]
    return [
        (f"· {name}", timeline.traffic([p[name] for p in parts]), steady, None)
        for name in (parts[0] if parts else {})
    ]


def accepted_at(op: Operation, results: Results) -> float:
    """When the daemon accepted the operation, on the monotonic clock."""
    return float(op.deployment["started_at"]) - results.wall_offset


def finished_at(op: Operation, results: Results) -> float:
    """When the daemon recorded the operation finished, on the monotonic clock."""
    return float(op.deployment["finished_at"]) - results.wall_offset
