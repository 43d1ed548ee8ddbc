"""The Runtime protocol: where instances run. One real implementation (local.py)."""

from __future__ import annotations

from collections.abc import Sequence
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
    ctime: float  # its start time, in clock ticks since boot (/proc/PID/stat)


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
    cpu_seconds: float | None = None  # CPU time of the app's processes so far
    extra: dict[str, Any] = field(default_factory=dict)


class Runtime(Protocol):
    """Where instances run: any host of the fleet (fleet.py), or a fake in unit tests."""

    async def start(self, instance: Any, spec: InstanceSpec) -> Handle: ...

    async def observe(self, instances: Sequence[Any]) -> dict[str, Observed]: ...

    async def observe_one(self, instance: Any) -> Observed: ...

    def cached(self, instance: Any) -> Observed:
        """The latest observation, without I/O (for /metrics and alerts)."""
        ...

    async def stop(self, instance: Any, grace: float) -> None: ...

    async def set_priority(self, instance: Any, nice: int) -> None: ...

    async def restart_process(self, instance: Any) -> bool: ...

    async def log_tail(self, instance: Any, lines: int) -> list[dict[str, Any]]: ...

    async def kill_orphan(self, instance: Any) -> list[int]: ...

    async def supervised(self, host: str) -> list[tuple[str, str, Handle]]: ...

    async def probe(
        self, instance: Any, address: str, path: str, timeout: float
    ) -> tuple[bool, str]: ...

    async def free_port(self, host: str, address: str) -> int: ...
