"""`[gates]` in slipway.toml: checks a release must pass before it gets any user traffic.
Pure: no I/O."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from slipway.config.types import DAY, Duration, Strict, Timeout, http_url, within
from slipway.gates.pairtest import QUANTILE_OF as QUANTILES
from slipway.gates.pairtest import block_pairs, min_pairs_to_decide

Level = Literal["low", "medium", "high"]
GATE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
BUILT_IN = ("secrets", "code", "dependencies", "performance")


class TestGate(Strict):
    """A command run in the release's folder and environment; its exit code decides."""

    name: str
    command: str = Field(min_length=1)
    timeout: Timeout = 600.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not GATE_NAME.match(value):
            raise ValueError(
                f'"{value}" is not a valid gate name: lowercase letters, digits, "-" and "_", '
                "starting with a letter"
            )
        if value in BUILT_IN:
            raise ValueError(f'"{value}" is the name of a built-in gate; choose another name')
        return value


class PerformanceGate(Strict):
    """The same load, in pairs, on the candidate's and the stable release's instances, judged
    by a sequential test (gates/pairtest.py); docs/config.md says how."""

    paths: list[str] = Field(default_factory=lambda: ["/"])
    max_p50_increase: float | None = Field(default=None, ge=0)
    max_p95_increase: float | None = Field(default=0.20, ge=0)
    max_p99_increase: float | None = Field(default=None, ge=0)
    # Smaller differences are timer noise, never a regression: whichever allows more counts.
    min_latency_increase: Annotated[Duration, within(0, 60)] = 0.002
    max_error_rate: float = Field(default=0.001, ge=0, le=1)
    # The chance that a release no slower than allowed fails, at most; also the chance that
    # one slower than allowed passes, for each watched quantile.
    alpha: float = Field(default=0.01, gt=0, le=0.2)
    # An undecided test after the budget: fail, pass with a warning, or measure once more
    # (then fail if still undecided). Never a silent pass.
    on_inconclusive: Literal["fail", "warn", "retry"] = "retry"
    # After the fields above, so that its validator sees them.
    requests: int = Field(default=2000, ge=100, le=1_000_000, validate_default=True)  # budget
    warmup: int = Field(default=300, ge=0, le=1_000_000)  # not counted: fresh processes
    concurrency: int = Field(default=20, ge=1, le=1000)
    timeout: Timeout = 300.0

    @field_validator("paths")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError('name at least one path, e.g. ["/"]')
        for path in value:
            if not path.startswith("/") or any(c.isspace() for c in path):
                raise ValueError(f'"{path}" must be a URL path starting with "/", no spaces')
        return value

    @field_validator("requests")
    @classmethod
    def _enough(cls, value: int, info: ValidationInfo) -> int:
        """A budget too small to ever decide can only be inconclusive: refused."""
        alpha = info.data.get("alpha")
        if alpha is None:  # alpha itself was invalid: that error is reported
            return value
        watched = {
            name: q
            for name, q in QUANTILES.items()
            if info.data.get(f"max_{name}_increase") is not None
        }
        for name, q in watched.items():
            needed = min_pairs_to_decide(q, alpha, len(watched) + 1)
            if value < needed:
                raise ValueError(
                    f"{value} requests can never decide on {name} at alpha {alpha:g}: at least "
                    f"{needed} are needed (blocks of {block_pairs(q)} pairs); raise requests, "
                    f"raise alpha, or remove max_{name}_increase"
                )
        return value

    def watched(self) -> dict[str, float]:
        """The quantiles compared with the stable release, and their allowed increases."""
        limits = {"p50": self.max_p50_increase, "p95": self.max_p95_increase,
                  "p99": self.max_p99_increase}  # fmt: skip
        return {name: value for name, value in limits.items() if value is not None}


class SecretsGate(Strict):
    enabled: bool = True
    baseline: str = ".secrets.baseline"  # reviewed findings, relative to the app folder
    timeout: Timeout = 120.0


class DependenciesGate(Strict):
    """Installed Python packages against an OSV vulnerability database."""

    enabled: bool = True
    database: str | None = None  # an OSV export: a folder, a .zip or a .json file
    url: str | None = None  # an OSV-compatible server
    max_age: Annotated[Duration, within(0, 365 * DAY, above=True)] = (
        7 * DAY
    )  # a database whose newest record is older fails
    on_unavailable: Literal["fail", "warn"] = "fail"
    ignore: list[str] = Field(default_factory=list)  # vulnerability ids reviewed and accepted
    timeout: Timeout = 120.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return http_url(value, "https://api.osv.dev")

    @model_validator(mode="after")
    def _one_source(self) -> DependenciesGate:
        if self.database is not None and self.url is not None:
            raise ValueError("set either database (an offline OSV export) or url, not both")
        return self


class CodeGate(Strict):
    """Static security analysis of Python code with bandit."""

    enabled: bool = True
    severity: Level = "medium"  # issues at or above this severity fail the gate
    confidence: Level = "medium"
    exclude: list[str] = Field(default_factory=lambda: ["tests/*", "test_*.py"])
    timeout: Timeout = 300.0


class Gates(Strict):
    test: list[TestGate] = Field(default_factory=list)
    performance: PerformanceGate | None = None
    secrets: SecretsGate = Field(default_factory=SecretsGate)
    dependencies: DependenciesGate = Field(default_factory=DependenciesGate)
    code: CodeGate = Field(default_factory=CodeGate)

    @field_validator("test")
    @classmethod
    def _unique(cls, value: list[TestGate]) -> list[TestGate]:
        names = [g.name for g in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"test gate names must be unique; given twice: {', '.join(twice)}")
        return value

    def names(self) -> list[str]:
        """Every gate this config runs, cheap ones first."""
        scans = [
            name
            for name, gate in (
                ("secrets", self.secrets),
                ("code", self.code),
                ("dependencies", self.dependencies),
            )
            if gate.enabled
        ]
        tests = [g.name for g in self.test]
        return scans + tests + (["performance"] if self.performance else [])
