"""The state database. Only the daemon opens it for writing (WAL mode)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slipway.errors import Conflict, NotFound, SlipwayError, StorageError
from slipway.store.records import (
    App,
    Deployment,
    DeploymentCount,
    Event,
    GateRecord,
    Instance,
    Release,
    dumps,
)
from slipway.store.schema import migrate


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        # Private whatever the umask: SQLite gives its -wal and -shm files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        try:
            check_not_truncated(path)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self.conn.execute("PRAGMA busy_timeout=5000")
            migrate(self.conn)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise SlipwayError(
                f"the state database is damaged or truncated ({exc}); nothing was started",
                where=str(path),
                fix="restore state.db from a backup (with state.db-wal if there is one); "
                "never delete it: it holds the encrypted secrets and the releases",
            ) from None

    def close(self) -> None:
        """Fold the write-ahead log into state.db first, so that the file alone (a backup,
        a copy) holds everything once the daemon has stopped."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. A write the disk has no room for raises StorageError (with
        the path and the fix), which callers handle like any of slipway's errors."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            if not _no_room(exc):
                raise
            raise database_full(self.path, exc) from None

    def fetch_one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        """The first row `sql` selects with `args` bound, or None. For the store's own
        modules (`slipway.store.*`): every other module calls their typed functions."""
        row: sqlite3.Row | None = self.conn.execute(sql, args).fetchone()
        return row

    def fetch_all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        """Every row `sql` selects with `args` bound. For the store's own modules, as
        `fetch_one`."""
        return list(self.conn.execute(sql, args).fetchall())

    # apps ---------------------------------------------------------------------------

    def app(self, name: str) -> App:
        row = self.fetch_one("SELECT * FROM apps WHERE name = ?", name)
        if row is None:
            known = ", ".join(a.name for a in self.apps()) or "none yet"
            raise NotFound(
                f"no app named '{name}'",
                fix=f"deploy it first with `slipway deploy`; apps known: {known}",
            )
        return _app(row)

    def find_app(self, name: str) -> App | None:
        row = self.fetch_one("SELECT * FROM apps WHERE name = ?", name)
        return _app(row) if row else None

    def apps(self) -> list[App]:
        return [_app(r) for r in self.fetch_all("SELECT * FROM apps ORDER BY name")]

    def ensure_app(self, name: str, source_dir: str) -> App:
        with self.tx() as c:
            c.execute(
                "INSERT INTO apps (name, source_dir, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET source_dir = excluded.source_dir",
                (name, source_dir, time.time()),
            )
        return self.app(name)

    def update_app(self, app: str, **fields: Any) -> None:
        _update(self, "apps", "name = ?", (app,), fields)

    def set_current(self, app: str, release: str, formation: dict[str, int]) -> None:
        now = time.time()
        with self.tx() as c:
            c.execute(
                "UPDATE apps SET current_release = ?, formation = ? WHERE name = ?",
                (release, dumps(formation), app),
            )
            c.execute(
                "UPDATE releases SET deployed_at = ?, warm_until = NULL WHERE app = ? AND id = ?",
                (now, app, release),
            )

    # releases -------------------------------------------------------------------------

    def new_release(
        self,
        app: str,
        *,
        source: str,
        source_kind: str,
        git_sha: str | None,
        config_json: str,
        config_hash: str,
        secrets: dict[str, int] | None = None,
        folder: str | None = None,
        status: str = "building",
    ) -> Release:
        """`secrets`: the version of each secret the release runs with; `folder`: the release
        whose built files it uses (a release made by changing only secrets has no build)."""
        with self.tx() as c:
            number = c.execute("SELECT next_release FROM apps WHERE name = ?", (app,)).fetchone()[0]
            c.execute("UPDATE apps SET next_release = next_release + 1 WHERE name = ?", (app,))
            c.execute(
                "INSERT INTO releases (app, id, number, status, created_at, source, source_kind, "
                "git_sha, config_hash, config, secrets, folder) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    f"r{number}",
                    number,
                    status,
                    time.time(),
                    source,
                    source_kind,
                    git_sha,
                    config_hash,
                    config_json,
                    dumps(secrets or {}),
                    folder,
                ),
            )
        return self.release(app, f"r{number}")

    def release(self, app: str, release_id: str) -> Release:
        row = self.fetch_one("SELECT * FROM releases WHERE app = ? AND id = ?", app, release_id)
        if row is None:
            known = ", ".join(r.id for r in self.releases(app)[:10]) or "none"
            raise NotFound(
                f"app '{app}' has no release '{release_id}'",
                fix=f"pick one of: {known} (see `slipway releases`)",
            )
        return _release(row)

    def releases(self, app: str) -> list[Release]:
        rows = self.fetch_all("SELECT * FROM releases WHERE app = ? ORDER BY number DESC", app)
        return [_release(r) for r in rows]

    def update_release(self, app: str, release_id: str, **fields: Any) -> None:
        _update(self, "releases", "app = ? AND id = ?", (app, release_id), fields)

    # instances ------------------------------------------------------------------------

    def new_instance(self, app: str, release: str, process: str, port: int | None) -> Instance:
        with self.tx() as c:
            seq = c.execute("SELECT next_instance FROM apps WHERE name = ?", (app,)).fetchone()[0]
            c.execute("UPDATE apps SET next_instance = next_instance + 1 WHERE name = ?", (app,))
            instance_id = f"{release}-{process}-{seq}"
            c.execute(
                "INSERT INTO instances (app, id, release, process, port, status, created_at) "
                "VALUES (?, ?, ?, ?, ?, 'starting', ?)",
                (app, instance_id, release, process, port, time.time()),
            )
        return self.instance(app, instance_id)

    def plan_instances(
        self,
        deployment: int,
        app: str,
        release: str,
        kept: list[Instance],
        new: list[tuple[str, int | None, str]],
    ) -> list[Instance]:
        """Record a deployment's instances, the `new` (process, port, host) ones created, in
        one transaction: no instance exists that its deployment does not name."""
        ids = [i.id for i in kept]
        now = time.time()
        with self.tx() as c:
            seq = c.execute("SELECT next_instance FROM apps WHERE name = ?", (app,)).fetchone()[0]
            c.execute(
                "UPDATE apps SET next_instance = next_instance + ? WHERE name = ?", (len(new), app)
            )
            for offset, (process, port, host) in enumerate(new):
                instance_id = f"{release}-{process}-{seq + offset}"
                c.execute(
                    "INSERT INTO instances (app, id, release, process, port, status, created_at, "
                    "host) VALUES (?, ?, ?, ?, ?, 'starting', ?, ?)",
                    (app, instance_id, release, process, port, now, host),
                )
                ids.append(instance_id)
            c.execute("UPDATE deployments SET instances = ? WHERE id = ?", (dumps(ids), deployment))
        return [self.instance(app, i) for i in ids]

    def find_instance(self, app: str, instance_id: str) -> Instance | None:
        row = self.fetch_one("SELECT * FROM instances WHERE app = ? AND id = ?", app, instance_id)
        return _instance(row) if row else None

    def instance(self, app: str, instance_id: str) -> Instance:
        row = self.fetch_one("SELECT * FROM instances WHERE app = ? AND id = ?", app, instance_id)
        if row is None:
            raise NotFound(f"app '{app}' has no instance '{instance_id}'", fix="see `slipway ps`")
        return _instance(row)

    def instances(self, app: str | None = None, *, live_only: bool = True) -> list[Instance]:
        sql = "SELECT * FROM instances WHERE 1 = 1"
        args: list[Any] = []
        if app is not None:
            sql += " AND app = ?"
            args.append(app)
        if live_only:
            sql += " AND status != 'stopped'"
        rows = self.fetch_all(sql + " ORDER BY app, created_at, id", *args)
        return [_instance(r) for r in rows]

    def update_instance(self, app: str, instance_id: str, **fields: Any) -> None:
        _update(self, "instances", "app = ? AND id = ?", (app, instance_id), fields)

    # deployments ------------------------------------------------------------------------

    def start_deployment(
        self,
        app: str,
        *,
        kind: str,
        from_release: str | None,
        to_release: str,
        formation: dict[str, int],
        who: str,
        state: str,
        strategy: str = "bluegreen",
        skip_gates: dict[str, str] | None = None,
        skip_hosts: list[str] | None = None,
    ) -> Deployment:
        try:
            with self.tx() as c:
                cur = c.execute(
                    "INSERT INTO deployments (app, kind, from_release, to_release, formation, "
                    "state, who, started_at, strategy, skip_gates, skip_hosts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        app,
                        kind,
                        from_release,
                        to_release,
                        dumps(formation),
                        state,
                        who,
                        time.time(),
                        strategy,
                        dumps(skip_gates or {}),
                        dumps(skip_hosts or []),
                    ),
                )
                deployment_id = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError:
            holder = self.active_deployment(app)
            raise self.lock_conflict(app, holder) from None
        return self.deployment(deployment_id)

    @staticmethod
    def lock_conflict(app: str, holder: Deployment | None) -> Conflict:
        if holder is None:
            return Conflict(f"another deployment of '{app}' is in progress", fix="retry shortly")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.started_at))
        return Conflict(
            f"app '{app}' is locked by deployment #{holder.id} ({holder.kind} of "
            f"{holder.to_release}) started by {holder.who} at {since}, "
            f"now at step '{holder.state}'",
            fix="wait for it to finish (`slipway status`), then retry",
            data={"holder": holder.id, "who": holder.who, "since": holder.started_at},
        )

    def deployment(self, deployment_id: int) -> Deployment:
        row = self.fetch_one("SELECT * FROM deployments WHERE id = ?", deployment_id)
        if row is None:
            raise NotFound(f"no deployment #{deployment_id}", fix="see `slipway status`")
        return _deployment(row)

    def active_deployment(self, app: str) -> Deployment | None:
        row = self.fetch_one("SELECT * FROM deployments WHERE app = ? AND finished_at IS NULL", app)
        return _deployment(row) if row else None

    def active_deployments(self) -> list[Deployment]:
        rows = self.fetch_all("SELECT * FROM deployments WHERE finished_at IS NULL ORDER BY id")
        return [_deployment(r) for r in rows]

    def deployments(self, app: str, limit: int = 20) -> list[Deployment]:
        rows = self.fetch_all(
            "SELECT * FROM deployments WHERE app = ? ORDER BY id DESC LIMIT ?", app, limit
        )
        return [_deployment(r) for r in rows]

    def deploys_and_rollbacks_since(self, app: str, since: float) -> list[Deployment]:
        """The app's deployments of kind deploy or rollback, and the autoscaler's scales, still
        running or finished at or after `since`, oldest first: the markers of its charts."""
        rows = self.fetch_all(
            "SELECT * FROM deployments WHERE app = ? AND (finished_at IS NULL OR finished_at >= ?) "
            "AND (kind IN ('deploy', 'rollback') OR (kind = 'scale' AND who = 'autoscaler')) "
            "ORDER BY id",
            app,
            since,
        )
        return [_deployment(r) for r in rows]

    def finished_deployment_counts(self) -> list[DeploymentCount]:
        """How many deployments have finished, per app, kind and outcome."""
        rows = self.fetch_all(
            "SELECT app, kind, outcome, COUNT(*) FROM deployments WHERE finished_at IS NOT NULL "
            "GROUP BY app, kind, outcome"
        )
        return [DeploymentCount(r[0], r[1], r[2], r[3]) for r in rows]

    def update_deployment(self, deployment_id: int, **fields: Any) -> None:
        _update(self, "deployments", "id = ?", (deployment_id,), fields)

    def finish_deployment(
        self, deployment_id: int, outcome: str, error: dict[str, Any] | None = None
    ) -> None:
        self.update_deployment(
            deployment_id,
            state="done",
            outcome=outcome,
            error=error,
            finished_at=time.time(),
        )

    # gates ------------------------------------------------------------------------------

    def add_gate_result(
        self,
        app: str,
        release: str,
        deployment: int,
        gate: str,
        kind: str,
        result: dict[str, Any],
        *,
        who: str | None = None,
        reason: str | None = None,
        seconds: float | None = None,
        log_path: str | None = None,
    ) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO gate_results (app, release, deployment, gate, kind, status, result, "
                "who, reason, at, seconds, log_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    release,
                    deployment,
                    gate,
                    kind,
                    result["status"],
                    dumps(result),
                    who,
                    reason,
                    time.time(),
                    seconds,
                    log_path,
                ),
            )

    def gate_results(self, app: str, release: str | None = None) -> list[GateRecord]:
        """The gates of each release's latest run (deployment or check), in the order they
        ran; of one release, or of all the app's releases in one query."""
        rows = self.fetch_all(
            "SELECT * FROM gate_results g WHERE app = ? AND (? IS NULL OR release = ?) "
            "AND deployment = (SELECT MAX(deployment) FROM gate_results "
            "WHERE app = g.app AND release = g.release) ORDER BY id",
            app,
            release,
            release,
        )
        return [_gate_record(r) for r in rows]

    # events -----------------------------------------------------------------------------

    def add_event(
        self,
        app: str,
        deployment: int | None,
        step: str,
        status: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> Event:
        with self.tx() as c:
            cur = c.execute(
                "INSERT INTO events (deployment, app, at, step, status, message, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (deployment, app, time.time(), step, status, message, dumps(data or {})),
            )
        return Event(
            int(cur.lastrowid or 0), deployment, app, time.time(), step, status, message, data or {}
        )

    def events(self, deployment: int, after: int = 0) -> list[Event]:
        rows = self.fetch_all(
            "SELECT * FROM events WHERE deployment = ? AND id > ? ORDER BY id", deployment, after
        )
        return [_event(r) for r in rows]


def _no_room(exc: sqlite3.OperationalError) -> bool:
    code = int(getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF  # the primary result code
    return code in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR) or "disk is full" in str(exc)


def database_full(path: Path, exc: sqlite3.Error) -> StorageError:
    return StorageError(
        f"the state database could not be written: {exc}",
        where=str(path),
        fix=f"free space on the filesystem that holds {path} (see `df -h {path.parent}`); "
        "slipway carries on by itself once there is room",
    )


_JSON_FIELDS = {"formation", "instances", "error", "routing", "canary", "secrets"}


def check_not_truncated(path: Path) -> None:
    """SQLite's header records the database's size in pages; a shorter file was cut (SQLite
    itself would notice only when it reads a missing page, perhaps much later)."""
    with open(path, "rb") as db:
        header = db.read(100)
    if len(header) < 100:
        if header:
            raise sqlite3.DatabaseError("shorter than its header")
        return  # a new, empty database
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size_is_valid = header[24:28] == header[92:96]  # "version-valid-for" matches the counter
    if size_is_valid and pages * page_size > path.stat().st_size:
        raise sqlite3.DatabaseError(
            f"it should hold {pages} pages of {page_size} bytes but has "
            f"{path.stat().st_size} bytes: truncated"
        )


def _update(
    store: Store, table: str, where: str, key: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    if not fields:
        return
    names = list(fields)
    values = [
        dumps(fields[n]) if n in _JSON_FIELDS and fields[n] is not None else fields[n]
        for n in names
    ]
    assignments = ", ".join(f"{n} = ?" for n in names)
    with store.tx() as c:
        c.execute(f"UPDATE {table} SET {assignments} WHERE {where}", (*values, *key))


def _app(row: sqlite3.Row) -> App:
    return App(
        row["name"],
        row["source_dir"],
        row["current_release"],
        json.loads(row["formation"]),
        row["created_at"],
        json.loads(row["routing"]) if row["routing"] else None,
    )


def _release(row: sqlite3.Row) -> Release:
    return Release(
        app=row["app"],
        id=row["id"],
        number=row["number"],
        status=row["status"],
        created_at=row["created_at"],
        source=row["source"],
        source_kind=row["source_kind"],
        git_sha=row["git_sha"],
        config_hash=row["config_hash"],
        config_json=row["config"],
        error=row["error"],
        build_seconds=row["build_seconds"],
        deployed_at=row["deployed_at"],
        warm_until=row["warm_until"],
        on_disk=bool(row["on_disk"]),
        secrets=json.loads(row["secrets"]),
        folder=row["folder"],
    )


def _instance(row: sqlite3.Row) -> Instance:
    return Instance(
        app=row["app"],
        id=row["id"],
        release=row["release"],
        process=row["process"],
        port=row["port"],
        status=row["status"],
        shim_pid=row["shim_pid"],
        shim_ctime=row["shim_ctime"],
        weight=row["weight"],
        created_at=row["created_at"],
        stopped_at=row["stopped_at"],
        host=row["host"],
    )


def _deployment(row: sqlite3.Row) -> Deployment:
    return Deployment(
        id=row["id"],
        app=row["app"],
        kind=row["kind"],
        from_release=row["from_release"],
        to_release=row["to_release"],
        formation=json.loads(row["formation"]),
        state=row["state"],
        instances=json.loads(row["instances"]),
        who=row["who"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=row["outcome"],
        error=json.loads(row["error"]) if row["error"] else None,
        strategy=row["strategy"],
        canary=json.loads(row["canary"]) if row["canary"] else None,
        skip_gates=json.loads(row["skip_gates"]),
        skip_hosts=json.loads(row["skip_hosts"]),
    )


def _gate_record(row: sqlite3.Row) -> GateRecord:
    return GateRecord(**(dict(row) | {"result": json.loads(row["result"])}))


def _event(row: sqlite3.Row) -> Event:
    return Event(
        row["id"],
        row["deployment"],
        row["app"],
        row["at"],
        row["step"],
        row["status"],
        row["message"],
        json.loads(row["data"]),
    )
