"""Typed rows of the state database."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from slipway.config.schema import AppConfig
from slipway.runtime.base import Handle

TERMINAL_OUTCOMES = ("succeeded", "failed", "aborted")


@dataclass
class App:
    name: str
    source_dir: str
    current_release: str | None
    formation: dict[str, int]
    created_at: float
    routing: dict[str, Any] | None = None


@dataclass
class Release:
    app: str
    id: str
    number: int
    status: str  # building | ready | failed
    created_at: float
    source: str
    source_kind: str  # dir | git
    git_sha: str | None
    config_hash: str
    config_json: str
    error: str | None = None
    build_seconds: float | None = None
    deployed_at: float | None = None
    warm_until: float | None = None
    on_disk: bool = True
    secrets: dict[str, int] = field(default_factory=dict)  # name -> version it runs with
    folder: str | None = None  # the release whose files it runs (None: its own)

    @property
    def folder_id(self) -> str:
        return self.folder or self.id

    @property
    def config(self) -> AppConfig:
        return AppConfig.model_validate_json(self.config_json)


@dataclass
class Instance:
    app: str
    id: str
    release: str
    process: str
    port: int | None
    status: str  # starting | running | stopping | stopped
    shim_pid: int | None
    shim_ctime: float | None
    weight: int | None  # None: not a server in HAProxy
    created_at: float
    stopped_at: float | None = None
    host: str = "local"  # the host it runs on (hosts/model.py)

    @property
    def is_web(self) -> bool:
        return self.process == "web"

    @property
    def handle(self) -> Handle | None:
        """Names its running supervisor, if one was started."""
        if self.shim_pid is None or self.shim_ctime is None:
            return None
        return Handle(self.shim_pid, self.shim_ctime)

    @property
    def live(self) -> bool:
        return self.status in ("starting", "running")


@dataclass
class Deployment:
    id: int
    app: str
    kind: str  # deploy | check | rollback | scale | restore | config | warm
    from_release: str | None
    to_release: str
    formation: dict[str, int]
    state: str
    instances: list[str]
    who: str
    started_at: float
    finished_at: float | None = None
    outcome: str | None = None
    error: dict[str, Any] | None = None
    strategy: str = "bluegreen"
    canary: dict[str, Any] | None = None
    skip_gates: dict[str, str] = field(default_factory=dict)  # gate name -> reason
    skip_hosts: list[str] = field(default_factory=list)  # deployed without these hosts

    @property
    def active(self) -> bool:
        return self.finished_at is None


@dataclass(frozen=True)
class DeploymentCount:
    """How many finished deployments an app had of one kind with one outcome."""

    app: str
    kind: str
    outcome: str | None
    count: int


@dataclass
class VerdictRecord:
    id: int
    deployment: int
    at: float
    step: int
    share: float
    decision: str
    reason: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class VerdictCount:
    """How many verdicts the judge gave with one decision in an app's deployments."""

    app: str
    decision: str
    count: int


@dataclass
class GateRecord:
    """One gate's outcome for a release, in one deployment or check."""

    id: int
    app: str
    release: str
    deployment: int
    gate: str
    kind: str
    status: str  # passed | failed | skipped
    result: dict[str, Any]  # GateResult.to_dict()
    at: float
    who: str | None = None
    reason: str | None = None  # why a person skipped it
    seconds: float | None = None
    log_path: str | None = None


@dataclass
class Event:
    id: int
    deployment: int | None
    app: str
    at: float
    step: str
    status: str  # start | ok | fail | info
    message: str
    data: dict[str, Any] = field(default_factory=dict)


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
