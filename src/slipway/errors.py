"""One exception hierarchy. Every error says what was wrong, where, and how to fix it."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any


class SlipwayError(Exception):
    """Base of every error slipway reports to a user.

    `where` names the place (file:line, key path, release, instance); `fix` says what to
    do about it; `details` carries evidence (log lines, counts) for humans and --json.
    """

    kind = "error"
    http_status = 400
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        fix: str | None = None,
        details: list[str] | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.fix = fix
        self.details = details or []
        self.data = data or {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "where": self.where,
            "fix": self.fix,
            "details": self.details,
            "data": self.data,
        }

    def __str__(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        parts.extend(f"  {line}" for line in self.details)
        if self.fix:
            parts.append(f"fix: {self.fix}")
        return "\n".join(parts)


class ConfigError(SlipwayError):
    kind = "config"


class UsageError(SlipwayError):
    kind = "usage"
    exit_code = 2


class NotFound(SlipwayError):
    kind = "not_found"
    http_status = 404


class TooLarge(SlipwayError):
    kind = "too_large"
    http_status = 413


class Conflict(SlipwayError):
    kind = "conflict"
    http_status = 409


class BuildError(SlipwayError):
    kind = "build"


class DeployError(SlipwayError):
    kind = "deploy"


class RouterError(SlipwayError):
    kind = "router"
    http_status = 500


class RuntimeFailure(SlipwayError):
    kind = "runtime"
    http_status = 500


class StorageError(SlipwayError):
    """A file or the state database could not be written: most often a full disk."""

    kind = "storage"
    http_status = 507


class Interrupted(SlipwayError):
    """The daemon stopped while the CLI followed a deployment: its outcome is not known yet
    (the next `slipway up` finishes or rolls it back)."""

    kind = "interrupted"
    exit_code = 3


class HostUnreachable(SlipwayError):
    """A host's agent cannot be reached (SSH down, host down, partition)."""

    kind = "host_unreachable"
    http_status = 503


class DaemonNotRunning(SlipwayError):
    kind = "daemon_not_running"


class PreflightError(SlipwayError):
    kind = "preflight"


ERROR_KINDS: dict[str, type[SlipwayError]] = {
    cls.kind: cls
    for cls in (
        SlipwayError,
        ConfigError,
        UsageError,
        NotFound,
        TooLarge,
        Conflict,
        BuildError,
        DeployError,
        RouterError,
        RuntimeFailure,
        StorageError,
        Interrupted,
        HostUnreachable,
        DaemonNotRunning,
        PreflightError,
    )
}


def error_from_dict(payload: dict[str, Any]) -> SlipwayError:
    """Rebuild an error sent by the daemon so the CLI can show and exit with it."""
    cls = ERROR_KINDS.get(str(payload.get("kind")), SlipwayError)
    return cls(
        str(payload.get("message", "unknown error")),
        where=payload.get("where"),
        fix=payload.get("fix"),
        details=list(payload.get("details") or []),
        data=dict(payload.get("data") or {}),
    )


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_error(exc: OSError, path: Path | str, what: str) -> StorageError:
    """`what` failed writing `path`: says plainly when the disk is full, and where."""
    if exc.errno in DISK_FULL:
        return StorageError(
            f"{what}: the disk is full",
            where=str(path),
            fix=f"free space on the filesystem that holds {path} (see `df -h {path}`); "
            "slipway carries on by itself once there is room",
        )
    return StorageError(
        f"{what}: {exc.strerror or exc}",
        where=str(path),
        fix=f"check that {path} is writable by the daemon and the disk has room",
    )
