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

from slipway.config import APP_NAME
from slipway.config.alerts import Alerting, AlertRule
from slipway.config.autoscale import WEB_ONLY, Autoscale
from slipway.config.edge import Edge, check_ports
from slipway.config.gates import Gates
from slipway.config.types import DAY, Duration, Size, Strict, Timeout, http_url, within

PROCESS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST_NAME = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$"
)
RESERVED_ENV = {"PORT"}
RESERVED_ENV_PREFIX = "SLIPWAY_"
# Linux refuses to start a program with one environment string (`KEY=value` and its NUL) over
# MAX_ARG_STRLEN (32 pages), and all of argv and the environment over ARG_MAX (a quarter of
# the stack limit, 2 MiB by default): checked here, not found at start as a silent exit.
MAX_ENV_STRING = 131072
MAX_ENV_TOTAL = 1024 * 1024
MAX_ENV_NAME = 255
DEFAULT_MAX_FILE_SIZE = 1024**3


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
    timeout: Timeout = 600.0
    # A bigger file in the app folder is refused: it is copied into every release.
    max_file_size: Size = Field(default=DEFAULT_MAX_FILE_SIZE, ge=1)
    # the Python the release's virtualenv is made from (default: the daemon's own)
    python: str | None = None
    # A release whose build inputs (the Python, the command, [env], the dependency files and
    # these patterns) are those of an earlier one gets its virtualenv: no build at all.
    reuse: bool = True
    inputs: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=64
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and "\0" in value:
            raise ValueError("the build command contains a NUL character")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern.startswith("/") or ".." in Path(pattern).parts or "\0" in pattern:
                raise ValueError(
                    f'"{pattern}" must be a pattern inside the app folder, e.g. "assets/**/*"'
                )
        return value

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
    interval: Annotated[Duration, within(0.1, 3600)] = 1.0
    timeout: Annotated[Duration, within(0.1, 3600)] = 2.0
    healthy_threshold: int = Field(default=2, ge=1, le=20)
    unhealthy_threshold: int = Field(default=3, ge=1, le=20)
    # a serving instance that has not answered for this long is restarted; 0: never
    restart_after: Annotated[Duration, within(0, 86400)] = 30.0

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f'"{value}" must be a URL path starting with "/" and without spaces')
        return value


UNAVAILABLE = re.compile(r"^([1-9][0-9]{0,2}) *(hosts?|instances?)?$")


class Deploy(Strict):
    strategy: Literal["bluegreen", "canary", "rolling"] = "bluegreen"
    health_timeout: Timeout = 60.0
    drain_timeout: Annotated[Duration, within(0, DAY)] = 30.0  # 0: retire without draining
    stop_grace: Annotated[Duration, within(0, 3600)] = 10.0  # 0: SIGKILL at once
    keep_warm: Annotated[Duration, within(0, 30 * DAY)] = 300.0  # 0: no warm rollback
    keep_releases: int = Field(default=5, ge=1, le=100)
    # canary only
    steps: list[float] = Field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    step_min_seconds: Annotated[Duration, within(0, DAY)] = 30.0
    step_min_requests: int = Field(default=200, ge=0, le=100_000_000)
    step_timeout: Timeout = 600.0
    on_inconclusive: Literal["abort", "pause"] = "abort"
    # rolling only: how much may be out of service at once, 2 (instances) or "1 host"
    max_unavailable: int | str = 1

    @field_validator("max_unavailable")
    @classmethod
    def _max_unavailable(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if not 1 <= value <= 1000:
                raise ValueError('at least 1 instance at a time, e.g. 1 or "1 host"')
            return value
        if UNAVAILABLE.match(value.strip()) is None:
            raise ValueError(
                f'"{value}" is neither a number of instances (2) nor of hosts ("1 host")'
            )
        return value.strip()

    @property
    def unavailable(self) -> tuple[int, Literal["instances", "hosts"]]:
        """max_unavailable as (how many, of what)."""
        if isinstance(self.max_unavailable, int):
            return self.max_unavailable, "instances"
        found = UNAVAILABLE.match(self.max_unavailable)
        assert found is not None
        return int(found[1]), "hosts" if (found[2] or "").startswith("host") else "instances"

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
    threshold: float = Field(allow_inf_nan=False)
    direction: Literal["above", "below"]  # the release fails when the value is above / below
    url: str | None = None
    every: Annotated[Duration, within(1, 3600)] = 10.0  # below 1s it would flood Prometheus

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
    # the candidate's first seconds of traffic are not judged for latency (it warms up)
    warmup: Annotated[Duration, within(0, 600)] = 5.0
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


class Resources(Strict):
    """What one instance of a process type needs of its host: slipway places an instance
    only on a host with this much room left (deploy/capacity.py). The defaults fit a small
    web process; a process that needs more says so, or hosts fill up past what they hold."""

    cpu: float = Field(default=0.1, gt=0, le=256)  # cores
    memory: Size = Field(default=128 * 1024**2, ge=1024**2)


class Logs(Strict):
    """Retention of instance output and of the app's request log."""

    max_size: Size = Field(default=10 * 1024 * 1024, ge=64 * 1024)  # a file rotates at this
    keep: int = Field(default=3, ge=0, le=100)  # rotated files kept
    # older rotated files and stopped instances' logs go; under a minute the logs of an
    # instance that just stopped would be gone before anyone could read them
    max_age: Annotated[Duration, within(60, 365 * DAY)] = 7 * 86400.0


EnvValue = Annotated[str, BeforeValidator(lambda v: _env_value(v))]


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return check_env_value(str(value))
    raise ValueError("env values must be strings, numbers or booleans")


def check_env_name(name: str) -> None:
    if not ENV_NAME.match(name) or len(name) > MAX_ENV_NAME:
        raise ValueError(
            f'"{name[:60]}" is not a valid environment variable name: letters, digits and "_", '
            f"not starting with a digit, at most {MAX_ENV_NAME} characters"
        )


def check_env_value(text: str) -> str:
    """A value that can be in a process's environment (the value alone; `env_string_size`
    adds its name)."""
    if "\0" in text:
        raise ValueError(
            "the value contains a NUL character (\\u0000), which no environment variable "
            "can hold: remove it"
        )
    if len(text.encode("utf-8", "surrogatepass")) + 2 > MAX_ENV_STRING:
        raise ValueError(_too_long(len(text.encode("utf-8", "surrogatepass"))))
    return text


def env_string_size(name: str, text: str) -> int:
    """The bytes `NAME=value` and its NUL take in a process's environment."""
    return len(name.encode()) + 1 + len(text.encode("utf-8", "surrogatepass")) + 1


def _too_long(size: int) -> str:
    return (
        f"{size} bytes is too long: Linux starts no program with an environment string "
        f"(NAME=value) over {MAX_ENV_STRING} bytes (128 KiB); keep large data in a file "
        "the app reads"
    )


class Placement(Strict):
    """Where the app's instances run: on the hosts with one of `roles`, or on the named
    `hosts`. Without hosts added to the fleet, that is the control host."""

    roles: list[Literal["app", "lb"]] = Field(default_factory=lambda: ["app"], min_length=1)  # type: ignore[arg-type]
    hosts: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9-]{0,62}$", name):
                raise ValueError(f'"{name}" is not a host name (as in `slipway hosts`)')
        return value


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
    placement: Placement = Field(default_factory=Placement)
    resources: dict[str, Resources] = Field(default_factory=dict)
    autoscale: dict[str, Autoscale] = Field(default_factory=dict)

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
            if "\0" in command:
                raise ValueError(f'the command of process "{name}" contains a NUL character')
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        total = 0
        for name, text in value.items():
            check_env_name(name)
            if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f'"{name}" is set by slipway itself; choose another name')
            size = env_string_size(name, text)
            if size > MAX_ENV_STRING:
                raise ValueError(f'"{name}" with its value: {_too_long(size)}')
            total += size
        if total > MAX_ENV_TOTAL:
            raise ValueError(
                f"[env] holds {total} bytes; at most {MAX_ENV_TOTAL} (1 MiB) fit beside the "
                "command line: keep large data in a file the app reads"
            )
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
            check_env_name(name)
            if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
                raise ValueError(f'"{name}" is set by slipway itself; choose another name')
            if name in env:
                raise ValueError(f'"{name}" is both in [env] and a secret; keep one')
        if len(set(value)) != len(value):
            raise ValueError("a secret is listed twice")
        return value

    @field_validator("scale", "resources")
    @classmethod
    def _tables_name_processes(cls, value: dict[str, object], info: ValidationInfo) -> object:
        """[scale] and [resources] are keyed by process type: each must be in [processes]."""
        processes = info.data.get("processes")
        if processes is None:  # [processes] itself is invalid and reported on its own
            return value
        unknown = sorted(set(value) - set(processes))
        if unknown:
            raise ValueError(
                f"[{info.field_name}] names unknown process type(s) {', '.join(unknown)}; "
                f"defined in [processes]: {', '.join(sorted(processes))}"
            )
        return value

    @field_validator("autoscale")
    @classmethod
    def _autoscale_measurable(
        cls, value: dict[str, Autoscale], info: ValidationInfo
    ) -> dict[str, Autoscale]:
        processes = info.data.get("processes")
        for process, policy in value.items():
            if processes is not None and process not in processes:
                raise ValueError(
                    f"[autoscale.{process}] names an unknown process type; defined in "
                    f"[processes]: {', '.join(sorted(processes))}"
                )
            if policy.signal in WEB_ONLY and process != "web":
                raise ValueError(
                    f'[autoscale.{process}] signal = "{policy.signal}" cannot be measured: '
                    f"{process} has no port, so HAProxy sees none of its work; use "
                    'signal = "cpu" (or autoscale web)'
                )
        return value

    def needs(self, process: str) -> Resources:
        """What one instance of `process` needs (the defaults unless [resources] says)."""
        return self.resources.get(process) or Resources()

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
