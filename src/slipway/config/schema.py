"""The slipway.toml schema. Pure: no I/O. Unknown keys are errors, not ignored."""

from __future__ import annotations

import ipaddress
import itertools
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from slipway.config.alerts import Alerting, AlertRule
from slipway.config.edge import Edge, check_ports
from slipway.config.gates import Gates
from slipway.config.types import Duration, Size, Strict, http_url

APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
PROCESS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_NAME = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$"
)
RESERVED_ENV = {"PORT"}
RESERVED_ENV_PREFIX = "SLIPWAY_"


class Listen(Strict):
    """Where HAProxy serves the app. Apps may share a port when each names its hosts."""

    address: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    hosts: list[str] = Field(default_factory=list)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(
                f'"{value}" is not an IP address (e.g. "127.0.0.1" or "0.0.0.0")'
            ) from None
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not HOST_NAME.match(host):
                raise ValueError(f'"{host}" is not a host name (e.g. "app.example.com")')
        return [h.lower() for h in value]


class Build(Strict):
    command: str | None = None
    timeout: Duration = 600.0
    # the Python the release's virtualenv is made from (default: the daemon's own)
    python: str | None = None

    @field_validator("python")
    @classmethod
    def _python(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f'"{value}" must be an absolute path, e.g. "/usr/bin/python3"')
        return value

    def interpreter(self) -> Path:
        """The Python that makes (and so runs) the release's virtualenv."""
        return Path(self.python or sys.executable)


class HealthCheck(Strict):
    path: str = "/up"
    interval: Duration = 1.0
    timeout: Duration = 2.0
    healthy_threshold: int = Field(default=2, ge=1, le=20)
    unhealthy_threshold: int = Field(default=3, ge=1, le=20)
    # a serving instance that has not answered for this long is restarted; 0: never
    restart_after: Duration = 30.0

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f'"{value}" must be a URL path starting with "/" and without spaces')
        return value

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value < 0.1:
            raise ValueError("must be at least 100ms")
        return value


class Deploy(Strict):
    strategy: Literal["bluegreen", "canary"] = "bluegreen"
    health_timeout: Duration = 60.0
    drain_timeout: Duration = 30.0
    stop_grace: Duration = 10.0
    keep_warm: Duration = 300.0
    keep_releases: int = Field(default=5, ge=1, le=100)
    # canary only
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    step_min_seconds: Duration = 30.0
    step_min_requests: int = Field(default=200, ge=0)
    step_timeout: Duration = 600.0
    on_inconclusive: Literal["abort", "pause"] = "abort"

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[float]) -> list[float]:
        if not value or value[-1] != 100:
            raise ValueError("the last step must be 100 (all traffic on the new release)")
        if any(not 0 < s <= 100 for s in value):
            raise ValueError("each step is a share of traffic in percent: above 0, at most 100")
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError("steps must increase, e.g. [5, 25, 50, 100]")
        return value


class PrometheusCheck(Strict):
    """A PromQL query judged against a threshold during a canary."""

    name: str
    query: str
    threshold: float
    direction: Literal["above", "below"]  # the release fails when the value is above / below
    url: str | None = None
    every: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "http://127.0.0.1:9090")


class Analysis(Strict):
    """How a canary is judged (see docs/config.md)."""

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    max_error_rate_increase: float = Field(default=0.005, ge=0, lt=1)
    max_latency_increase: float = Field(default=0.10, ge=0)
    latency_quantiles: list[float] = Field(default_factory=lambda: [0.5, 0.9, 0.99])
    abort_error_rate: float = Field(default=0.5, gt=0, le=1)
    prometheus_url: str | None = None
    prometheus: list[PrometheusCheck] = Field(default_factory=list)

    @field_validator("latency_quantiles")
    @classmethod
    def _quantiles(cls, value: list[float]) -> list[float]:
        if any(not 0 < q < 1 for q in value):
            raise ValueError("quantiles are between 0 and 1, e.g. [0.5, 0.9, 0.99]")
        return value

    @model_validator(mode="after")
    def _urls(self) -> Analysis:
        for check in self.prometheus:
            if check.url is None and self.prometheus_url is None:
                raise ValueError(
                    f"Prometheus check '{check.name}' has no url: set [analysis] "
                    "prometheus_url or url in the check"
                )
        return self


class Run(Strict):
    """How the app's processes run."""

    user: str | None = None  # when the daemon runs as root: run the app as this user

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", value):
            raise ValueError(f'"{value}" is not a valid user name, e.g. "app" or "www-data"')
        return value


class Logs(Strict):
    """Retention of instance output and of the app's request log."""

    max_size: Size = Field(default=10 * 1024 * 1024, ge=64 * 1024)  # a file rotates at this
    keep: int = Field(default=3, ge=0, le=100)  # rotated files kept
    max_age: Duration = 7 * 86400.0  # older rotated files and stopped instances' logs go


EnvValue = Annotated[str, BeforeValidator(lambda v: _env_value(v))]


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("env values must be strings, numbers or booleans")


class AppConfig(Strict):
    name: str
    listen: Listen = Field(default_factory=Listen)
    processes: dict[str, str]
    build: Build = Field(default_factory=Build)
    healthcheck: HealthCheck = Field(default_factory=HealthCheck)
    scale: dict[str, Annotated[int, Field(ge=0, le=64)]] = Field(default_factory=dict)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    # Names of encrypted secrets (`slipway secrets set NAME`) given to the app as env vars.
    secrets: list[str] = Field(default_factory=list)
    deploy: Deploy = Field(default_factory=Deploy)
    analysis: Analysis = Field(default_factory=Analysis)
    logs: Logs = Field(default_factory=Logs)
    run: Run = Field(default_factory=Run)
    alerts: list[AlertRule] = Field(default_factory=list)
    alerting: Alerting = Field(default_factory=Alerting)
    gates: Gates = Field(default_factory=Gates)
    edge: Edge = Field(default_factory=Edge)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not APP_NAME.match(value):
            raise ValueError(
                f'"{value}" is not a valid app name: use lowercase letters, digits and "-", '
                "starting with a letter, at most 40 characters"
            )
        return value

    @field_validator("processes")
    @classmethod
    def _processes(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError('define at least one process, e.g. web = "python app.py --port $PORT"')
        for name, command in value.items():
            if not PROCESS_NAME.match(name):
                raise ValueError(
                    f'"{name}" is not a valid process type: lowercase letters, digits and "_"'
                )
            if not command.strip():
                raise ValueError(f'the command of process "{name}" is empty')
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f'"{name}" is not a valid environment variable name')
            if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f'"{name}" is set by slipway itself; choose another name')
        return value

    @field_validator("edge")
    @classmethod
    def _edge_ports(cls, value: Edge, info: ValidationInfo) -> Edge:
        listen = info.data.get("listen")
        if listen is not None:  # an invalid [listen] is reported on its own
            check_ports(value, listen.port)
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: list[str], info: ValidationInfo) -> list[str]:
        env = info.data.get("env") or {}
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f'"{name}" is not a valid environment variable name')
            if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f'"{name}" is set by slipway itself; choose another name')
            if name in env:
                raise ValueError(f'"{name}" is both in [env] and a secret; keep one')
        if len(set(value)) != len(value):
            raise ValueError("a secret is listed twice")
        return value

    @field_validator("scale")
    @classmethod
    def _scale_names_processes(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        processes = info.data.get("processes")
        if processes is None:  # [processes] itself is invalid and reported on its own
            return value
        unknown = sorted(set(value) - set(processes))
        if unknown:
            raise ValueError(
                f"[scale] names unknown process type(s) {', '.join(unknown)}; "
                f"defined in [processes]: {', '.join(sorted(processes))}"
            )
        return value

    @field_validator("alerts")
    @classmethod
    def _alert_names(cls, value: list[AlertRule]) -> list[AlertRule]:
        names = [r.name for r in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"alert names must be unique; given twice: {', '.join(twice)}")
        return value

    @property
    def has_web(self) -> bool:
        return "web" in self.processes

    def initial_scale(self) -> dict[str, int]:
        return {name: self.scale.get(name, 1) for name in self.processes}

    def warnings(self) -> list[str]:
        notes = []
        web = self.processes.get("web")
        if web is not None and "PORT" not in web:
            notes.append(
                "processes.web does not mention $PORT: the web process must listen on the "
                "port slipway gives it in $PORT"
            )
        return notes
