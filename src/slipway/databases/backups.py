"""`pgbackrest info --output=json` as slipway shows it: one row per backup, oldest first,
with the last verification of each. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backup:
    label: str
    type: str  # full | diff | incr
    started_at: float
    seconds: float
    size: int  # the database's size at the backup
    stored: int  # bytes in the repository (compressed, encrypted)
    wal_start: str | None
    wal_stop: str | None
    error: bool  # pgBackRest found a page checksum error while copying


@dataclass(frozen=True)
class StanzaState:
    ok: bool
    message: str  # pgBackRest's status, e.g. "ok", "no valid backups"
    cipher: str | None
    wal_min: str | None  # the oldest and newest WAL segment in the archive
    wal_max: str | None
    backups: tuple[Backup, ...]


def parse_info(data: Any, stanza: str) -> StanzaState:
    """`data` is the parsed JSON: a list of stanzas. A missing stanza, or a shape not
    understood, is reported as not ok rather than raising."""
    found = next(
        (s for s in data if isinstance(s, dict) and s.get("name") == stanza),
        None,
    ) if isinstance(data, list) else None  # fmt: skip
    if found is None:
        return StanzaState(False, f"no stanza {stanza} in the repository", None, None, None, ())
    status = found.get("status") or {}
    archives = [a for a in found.get("archive") or [] if isinstance(a, dict)]
    return StanzaState(
        ok=status.get("code") == 0,
        message=str(status.get("message", "unknown")),
        cipher=found.get("cipher"),
        wal_min=min((a["min"] for a in archives if a.get("min")), default=None),
        wal_max=max((a["max"] for a in archives if a.get("max")), default=None),
        backups=tuple(_backup(b) for b in found.get("backup") or [] if isinstance(b, dict)),
    )


def _backup(raw: dict[str, Any]) -> Backup:
    stamp = raw.get("timestamp") or {}
    info = raw.get("info") or {}
    repository = info.get("repository") or {}
    archive = raw.get("archive") or {}
    start, stop = float(stamp.get("start") or 0), float(stamp.get("stop") or 0)
    return Backup(
        label=str(raw.get("label")),
        type=str(raw.get("type")),
        started_at=start,
        seconds=max(0.0, stop - start),
        size=int(info.get("size") or 0),
        stored=int(repository.get("delta") or repository.get("size") or 0),
        wal_start=archive.get("start"),
        wal_stop=archive.get("stop"),
        error=bool(raw.get("error")),
    )


def newest(state: StanzaState) -> Backup | None:
    return state.backups[-1] if state.backups else None
