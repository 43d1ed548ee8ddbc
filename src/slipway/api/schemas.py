"""Request and response types of the daemon's API, shared by the daemon and its clients."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_SECRET_BYTES = 64 * 1024  # a secret is a key or a password, not a file


class RequestBody(BaseModel):
    """A request body: exactly the documented fields with exactly their JSON types. Lax
    parsing turned {"all": "yes"} into True on /v1/shutdown, which stopped every app."""

    model_config = ConfigDict(strict=True, extra="forbid")


class DeployRequest(RequestBody):
    app_dir: str
    git_rev: str | None = None
    skip_gates: dict[str, str] = Field(default_factory=dict)  # gate name -> reason
    check: bool = False  # run every gate, deploy nothing
    skip_hosts: dict[str, str] = Field(default_factory=dict)  # host name -> reason


class HostRequest(RequestBody):
    """`slipway hosts add`: the host, where it listens, how to reach it."""

    name: str = Field(max_length=63)
    address: str = Field(max_length=64)  # its private address: instances listen there
    roles: list[str] = Field(max_length=2)
    fingerprint: str = Field(pattern=r"^SHA256:[A-Za-z0-9+/=]{20,64}$")
    ssh_address: str | None = Field(default=None, max_length=255)
    port: int = Field(default=22, ge=1, le=65535)
    user: str = Field(default="root", max_length=32)
    key: str | None = Field(default=None, max_length=4096)  # a private key file's path
    home: str = Field(default="/var/lib/slipway", max_length=512)
    python: str = Field(default="/usr/bin/python3", max_length=512)


class RolesRequest(RequestBody):
    roles: list[str] = Field(max_length=2)


class CapacityRequest(RequestBody):
    """`slipway hosts capacity`: what slipway may place on a host; None: what it has."""

    cpu: float | None = Field(default=None, gt=0, le=1024)  # cores
    memory: int | None = Field(default=None, ge=1024**2, le=1024**5)  # bytes


class VipRequest(RequestBody):
    address: str = Field(max_length=64)  # 10.0.0.100/24
    router_id: int = Field(default=51, ge=1, le=255)
    advert: float = Field(default=0.5, ge=0.1, le=10.0)  # seconds


class SecretValue(RequestBody):
    value: str  # in the request body only: never in a URL, argv or log

    @field_validator("value")
    @classmethod
    def _size(cls, value: str) -> str:
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_SECRET_BYTES:
            raise ValueError(
                f"the value is {size} bytes; a secret holds at most {MAX_SECRET_BYTES} "
                "(64 KiB): keep larger data in a file and put its path in the secret"
            )
        return value


class RollbackRequest(RequestBody):
    release: str | None = None


class ScaleRequest(RequestBody):
    counts: dict[str, int]


class AutoscaleResumeRequest(RequestBody):
    process: str = Field(max_length=30)


class ShutdownRequest(RequestBody):
    all: bool = False


class InstanceView(BaseModel):
    id: str
    app: str
    host: str = "local"
    release: str
    process: str
    port: int | None
    state: str  # running | starting | backoff | crashloop | stopping | stopped | gone
    role: str  # serving | warm | starting | retiring | worker
    pid: int | None
    restarts: int
    weight: int | None
    traffic_percent: float | None
    check: str | None  # HAProxy's view, e.g. "UP L7OK"
    uptime_seconds: float | None
    last_exit: dict[str, Any] | None = None
    log_dropped: int = 0  # output lines its supervisor could not write (a full disk)
    blocked: str | None = None  # why its process cannot start, e.g. its port is taken


class ReleaseView(BaseModel):
    id: str
    app: str
    status: str
    created_at: float
    source: str
    source_kind: str
    git_sha: str | None
    config_hash: str
    build_seconds: float | None
    deployed_at: float | None
    current: bool
    warm_until: float | None
    on_disk: bool
    error: str | None
    gates: dict[str, str] = Field(default_factory=dict)  # gate -> passed | failed | skipped
    skipped_gates: dict[str, str] = Field(default_factory=dict)  # skipped by hand -> reason


class DeploymentView(BaseModel):
    id: int
    app: str
    kind: str
    strategy: str
    from_release: str | None
    to_release: str
    formation: dict[str, int]
    state: str
    who: str
    started_at: float
    finished_at: float | None
    outcome: str | None
    error: dict[str, Any] | None
    skip_gates: dict[str, str] = Field(default_factory=dict)
    skip_hosts: list[str] = Field(default_factory=list)


class GateView(BaseModel):
    gate: str
    kind: str
    status: str  # passed | failed | skipped
    summary: str
    findings: list[dict[str, str]]
    evidence: dict[str, Any]
    reproduce: str | None
    deployment: int
    at: float
    seconds: float | None
    who: str | None
    reason: str | None
    log_path: str | None


class EventView(BaseModel):
    id: int
    deployment: int | None
    at: float
    step: str
    status: str
    message: str
    data: dict[str, Any] = Field(default_factory=dict)


class ListenView(BaseModel):
    address: str
    port: int
    hosts: list[str]


class VerdictView(BaseModel):
    id: int
    deployment: int
    at: float
    step: int
    share: float
    decision: str  # rollback | promote | continue | inconclusive
    reason: str
    evidence: dict[str, Any]


class CanaryView(BaseModel):
    deployment: int
    candidate: str
    stable: str
    step: int
    steps: list[float]
    share: float
    paused: bool
    step_started: float
    verdict: VerdictView | None


class AnalysisView(BaseModel):
    deployment: DeploymentView
    verdicts: list[VerdictView]


class AppView(BaseModel):
    name: str
    url: str | None
    listen: ListenView | None
    current_release: str | None
    formation: dict[str, int]
    instances: dict[str, int]  # state -> count
    deployment: DeploymentView | None
    last_deployment: DeploymentView | None
    warm_release: str | None
    warm_until: float | None
    source_dir: str
    canary: CanaryView | None = None


class DaemonView(BaseModel):
    pid: int
    version: str
    home: str
    started_at: float
    http_url: str | None = None
    # what the daemon did at start with deployments a stopped daemon left in flight
    recovered: list[str] = Field(default_factory=list)


class RouterView(BaseModel):
    running: bool
    pid: int | None


class StatusView(BaseModel):
    daemon: DaemonView
    router: RouterView
    apps: list[AppView]


class LogLine(BaseModel):
    time: float
    app: str
    release: str
    instance: str
    process: str
    stream: str
    message: str
