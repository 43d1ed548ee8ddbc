"""Managed databases and their backup and verification runs, in the state database.

A database is recorded before its host is asked for it (state `creating`) and marked
`ready` after; `dropping` before its cluster is removed, deleted after. A daemon killed in
between finds the state and finishes the step (db_ops.resume)."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from slipway.errors import Conflict, NotFound
from slipway.store.store import Store

STATES = ("creating", "ready", "failed", "dropping")


@dataclass(frozen=True)
class DatabaseRecord:
    name: str
    engine: str
    host: str
    port: int
    state: str
    apps: tuple[str, ...]
    created_at: float
    created_by: str
    error: str | None
    schedule: dict[str, Any] | None  # schedule.Schedule's fields; None: the defaults


@dataclass(frozen=True)
class RunRecord:
    id: int
    database: str
    kind: str  # backup | verify
    started_at: float
    seconds: float | None
    ok: bool | None  # None: still running (or cut off by a crash)
    backup: str | None  # the backup's label
    restore_seconds: float | None
    detail: dict[str, Any]


def add(store: Store, name: str, engine: str, host: str, port: int, who: str) -> DatabaseRecord:
    with store.tx() as c:
        if c.execute("SELECT 1 FROM databases WHERE name = ?", (name,)).fetchone():
            raise Conflict(f"a database named {name} exists", fix="see `slipway db`")
        c.execute(
            "INSERT INTO databases (name, engine, host, port, state, created_at, created_by) "
            "VALUES (?, ?, ?, ?, 'creating', ?, ?)",
            (name, engine, host, port, time.time(), who),
        )
    return get(store, name)


def find(store: Store, name: str) -> DatabaseRecord | None:
    row = store.fetch_one("SELECT * FROM databases WHERE name = ?", name)
    return _database(row) if row else None


def get(store: Store, name: str) -> DatabaseRecord:
    found = find(store, name)
    if found is None:
        known = ", ".join(d.name for d in every(store)) or "none yet"
        raise NotFound(
            f"no database named {name}", fix=f"databases: {known} (`slipway db create NAME`)"
        )
    return found


def every(store: Store) -> list[DatabaseRecord]:
    return [_database(r) for r in store.fetch_all("SELECT * FROM databases ORDER BY name")]


def set_state(store: Store, name: str, state: str, error: str | None = None) -> None:
    assert state in STATES
    with store.tx() as c:
        c.execute("UPDATE databases SET state = ?, error = ? WHERE name = ?", (state, error, name))


def set_apps(store: Store, name: str, apps: list[str]) -> None:
    with store.tx() as c:
        c.execute(
            "UPDATE databases SET apps = ? WHERE name = ?", (json.dumps(sorted(set(apps))), name)
        )


def set_schedule(store: Store, name: str, schedule: dict[str, Any]) -> None:
    with store.tx() as c:
        c.execute("UPDATE databases SET schedule = ? WHERE name = ?", (json.dumps(schedule), name))


def remove(store: Store, name: str) -> None:
    with store.tx() as c:
        c.execute("DELETE FROM databases WHERE name = ?", (name,))
        c.execute("DELETE FROM database_runs WHERE database = ?", (name,))


def start_run(store: Store, name: str, kind: str) -> int:
    with store.tx() as c:
        cur = c.execute(
            "INSERT INTO database_runs (database, kind, started_at) VALUES (?, ?, ?)",
            (name, kind, time.time()),
        )
    return int(cur.lastrowid or 0)


def finish_run(
    store: Store,
    run_id: int,
    ok: bool,
    seconds: float,
    detail: dict[str, Any],
    backup: str | None = None,
    restore_seconds: float | None = None,
) -> None:
    with store.tx() as c:
        c.execute(
            "UPDATE database_runs SET ok = ?, seconds = ?, detail = ?, backup = ?, "
            "restore_seconds = ? WHERE id = ?",
            (int(ok), seconds, json.dumps(detail), backup, restore_seconds, run_id),
        )


def runs(store: Store, name: str, kind: str | None = None, limit: int = 100) -> list[RunRecord]:
    """Newest first."""
    if kind is None:
        rows = store.fetch_all(
            "SELECT * FROM database_runs WHERE database = ? ORDER BY id DESC LIMIT ?", name, limit
        )
    else:
        rows = store.fetch_all(
            "SELECT * FROM database_runs WHERE database = ? AND kind = ? ORDER BY id DESC LIMIT ?",
            name,
            kind,
            limit,
        )
    return [_run(r) for r in rows]


def last_finished(store: Store, name: str, kind: str) -> RunRecord | None:
    row = store.fetch_one(
        "SELECT * FROM database_runs WHERE database = ? AND kind = ? AND ok IS NOT NULL "
        "ORDER BY id DESC LIMIT 1",
        name,
        kind,
    )
    return _run(row) if row else None


def last_times(store: Store, name: str) -> tuple[dict[str, float], dict[str, float]]:
    """The last success of each scheduled kind (full, diff, verify), and the last failure
    after it, from the newest 500 runs."""
    ok: dict[str, float] = {}
    failed: dict[str, float] = {}
    for run in runs(store, name, limit=500):  # newest first
        if run.ok is None:
            continue
        kind = "verify" if run.kind == "verify" else str(run.detail.get("type", ""))
        if kind not in ("full", "diff", "verify") or kind in ok:
            continue
        if run.ok:
            ok[kind] = run.started_at
        else:
            failed.setdefault(kind, run.started_at)
    return ok, failed


def _database(row: sqlite3.Row) -> DatabaseRecord:
    return DatabaseRecord(
        name=row["name"],
        engine=row["engine"],
        host=row["host"],
        port=int(row["port"]),
        state=row["state"],
        apps=tuple(json.loads(row["apps"])),
        created_at=row["created_at"],
        created_by=row["created_by"],
        error=row["error"],
        schedule=json.loads(row["schedule"]) if row["schedule"] else None,
    )


def _run(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        id=int(row["id"]),
        database=row["database"],
        kind=row["kind"],
        started_at=row["started_at"],
        seconds=row["seconds"],
        ok=None if row["ok"] is None else bool(row["ok"]),
        backup=row["backup"],
        restore_seconds=row["restore_seconds"],
        detail=json.loads(row["detail"]),
    )
