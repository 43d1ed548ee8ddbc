"""What every gate returns, and the small protocol each gate implements.

A gate decides `passed` or `failed`; `skipped` is recorded only when a person skipped it
with a reason, or a gate does not apply to the app (e.g. no Python environment), and it
never counts as clean: `slipway gates` shows it as such."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

Status = Literal["passed", "failed", "skipped"]
Progress = Callable[[str], None]  # one line of progress while a gate runs


@dataclass(frozen=True)
class Finding:
    """One reason a gate failed: where (file:line, package, path) and what, never a secret."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class GateResult:
    status: Status
    summary: str  # one line: why it passed or failed, with its numbers
    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)  # counts, thresholds, timings
    reproduce: str | None = None  # a command a person can run to see the same thing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(
            status=data["status"],
            summary=data["summary"],
            findings=[Finding(**f) for f in data.get("findings", [])],
            evidence=data.get("evidence", {}),
            reproduce=data.get("reproduce"),
        )


@dataclass(frozen=True)
class Targets:
    """Where the performance gate sends its load: instances, as "address:port" (their host's
    private address; the load runs on the control host)."""

    candidate: list[str]
    stable: list[str]


@dataclass(frozen=True)
class GateContext:
    app: str
    release: str
    release_dir: Path
    env: dict[str, str]  # the release's environment, as its instances get it
    log_path: Path  # the gate's own output goes here
    progress: Progress
    targets: Targets | None = None  # only for gates that need the candidate running
    redact: Callable[[str], str] = str  # hides the release's secret values in captured output


class Gate(Protocol):
    name: str
    kind: str  # test, performance, secrets, dependencies, code
    needs_running: bool  # runs after the candidate is healthy, before it gets traffic

    def run(self, ctx: GateContext) -> Awaitable[GateResult]: ...
