"""The Runtime protocol: where instances run. One real implementation (local.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class InstanceSpec:
    app: str
    instance_id: str
    command: str
    cwd: Path
    env: dict[str, str]
    stop_grace: float
    log_max_bytes: int = 10 * 1024 * 1024
    log_keep: int = 3
    # Env vars given to the instance but never written to disk (its secrets): the shim gets
    # them on a pipe and hides their values in the output it captures.
    secrets: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this user (the daemon runs as root)


@dataclass(frozen=True)
class Handle:
    """Names a running shim uniquely: a pid alone may be reused after it exits."""

    pid: int
    ctime: float


@dataclass
class Observed:
    alive: bool
    state: str  # running | backoff | crashloop | stopping | stopped | gone
    child_pid: int | None = None
    restarts: int = 0
    crashloop: bool = False
    last_exit: dict[str, Any] | None = None
    child_started: float | None = None
    log_dropped: int = 0  # output lines the supervisor could not write (a full disk)
    log_error: str | None = None  # why it is dropping lines now, if it is
    blocked: str | None = None  # why the app cannot be started (e.g. its port is taken)
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    async def start(self, spec: InstanceSpec) -> Handle: ...

    def supervised(self) -> list[tuple[str, str, Handle]]:
        """(app, instance, handle) of every supervisor running, whether recorded or not."""
        ...

    def restart_process(self, app: str, instance_id: str, handle: Handle | None) -> bool:
        """Kill the instance's process (its supervisor starts it again); False if none ran."""
        ...

    def kill_orphan(self, app: str, instance_id: str) -> list[int]:
        """Stop what an instance left running when its supervisor died; the pids killed."""
        ...

    def observe(self, app: str, instance_id: str, handle: Handle | None) -> Observed: ...

    async def stop(
        self, app: str, instance_id: str, handle: Handle | None, grace: float
    ) -> None: ...

    def log_tail(self, app: str, instance_id: str, lines: int) -> list[dict[str, Any]]: ...

    def set_priority(
        self, app: str, instance_id: str, handle: Handle | None, nice: int
    ) -> None: ...
