"""slipway's own SQLite schema and its migrations, applied in order on open."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    """
    CREATE TABLE apps (
        name TEXT PRIMARY KEY,
        source_dir TEXT NOT NULL,
        routing TEXT,
        current_release TEXT,
        formation TEXT NOT NULL DEFAULT '{}',
        next_release INTEGER NOT NULL DEFAULT 1,
        next_instance INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL
    );
    CREATE TABLE releases (
        app TEXT NOT NULL REFERENCES apps(name),
        id TEXT NOT NULL,
        number INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        source TEXT NOT NULL,
        source_kind TEXT NOT NULL DEFAULT 'dir',
        git_sha TEXT,
        config_hash TEXT NOT NULL,
        config TEXT NOT NULL,
        error TEXT,
        build_seconds REAL,
        deployed_at REAL,
        warm_until REAL,
        on_disk INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (app, id)
    );
    CREATE TABLE instances (
        app TEXT NOT NULL REFERENCES apps(name),
        id TEXT NOT NULL,
        release TEXT NOT NULL,
        process TEXT NOT NULL,
        port INTEGER,
        status TEXT NOT NULL,
        shim_pid INTEGER,
        shim_ctime REAL,
        weight INTEGER,
        created_at REAL NOT NULL,
        stopped_at REAL,
        PRIMARY KEY (app, id)
    );
    CREATE INDEX instances_live ON instances(app, status);
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        kind TEXT NOT NULL,
        from_release TEXT,
        to_release TEXT NOT NULL,
        formation TEXT NOT NULL,
        state TEXT NOT NULL,
        instances TEXT NOT NULL DEFAULT '[]',
        who TEXT NOT NULL,
        started_at REAL NOT NULL,
        finished_at REAL,
        outcome TEXT,
        error TEXT
    );
    CREATE UNIQUE INDEX one_active_deployment ON deployments(app) WHERE finished_at IS NULL;
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment INTEGER,
        app TEXT NOT NULL,
        at REAL NOT NULL,
        step TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_by_deployment ON events(deployment, id);
    """,
    """
    ALTER TABLE deployments ADD COLUMN strategy TEXT NOT NULL DEFAULT 'bluegreen';
    ALTER TABLE deployments ADD COLUMN canary TEXT;
    CREATE TABLE traffic (
        app TEXT NOT NULL,
        release TEXT NOT NULL,
        second INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        conn_failures INTEGER NOT NULL,
        client_aborts INTEGER NOT NULL,
        latency TEXT NOT NULL,
        PRIMARY KEY (app, release, second)
    );
    CREATE TABLE ingest_losses (
        second INTEGER NOT NULL,
        lost INTEGER NOT NULL,
        source TEXT NOT NULL
    );
    CREATE INDEX ingest_losses_by_second ON ingest_losses(second);
    CREATE TABLE verdicts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        deployment INTEGER NOT NULL,
        at REAL NOT NULL,
        step INTEGER NOT NULL,
        share REAL NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT NOT NULL,
        evidence TEXT NOT NULL
    );
    CREATE INDEX verdicts_by_deployment ON verdicts(deployment, id);
    """,
    """
    ALTER TABLE traffic ADD COLUMN classes TEXT NOT NULL DEFAULT '{}';
    CREATE INDEX traffic_by_second ON traffic(second);
    CREATE TABLE traffic_minutes (
        app TEXT NOT NULL,
        release TEXT NOT NULL,
        minute INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        conn_failures INTEGER NOT NULL,
        client_aborts INTEGER NOT NULL,
        latency TEXT NOT NULL,
        classes TEXT NOT NULL,
        PRIMARY KEY (app, release, minute)
    );
    CREATE INDEX traffic_minutes_by_minute ON traffic_minutes(minute);
    CREATE TABLE alerts (
        app TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        since REAL NOT NULL,
        value REAL,
        summary TEXT NOT NULL,
        release TEXT,
        PRIMARY KEY (app, rule)
    );
    CREATE TABLE alert_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        at REAL NOT NULL,
        value REAL,
        summary TEXT NOT NULL
    );
    CREATE INDEX alert_events_by_app ON alert_events(app, id);
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        rule TEXT NOT NULL,
        notifier TEXT NOT NULL,
        notice TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL NOT NULL,
        last_error TEXT,
        created_at REAL NOT NULL,
        sent_at REAL
    );
    CREATE INDEX notifications_due ON notifications(state, next_try);
    """,
    """
    ALTER TABLE traffic ADD COLUMN quantiles TEXT;
    ALTER TABLE traffic_minutes ADD COLUMN quantiles TEXT;
    CREATE TABLE traffic_hours (
        app TEXT NOT NULL,
        release TEXT NOT NULL,
        hour INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        conn_failures INTEGER NOT NULL,
        client_aborts INTEGER NOT NULL,
        latency TEXT NOT NULL,
        classes TEXT NOT NULL,
        quantiles TEXT,
        PRIMARY KEY (app, release, hour)
    );
    CREATE INDEX traffic_hours_by_hour ON traffic_hours(hour);
    CREATE INDEX traffic_by_app_second ON traffic(app, second);
    CREATE INDEX traffic_minutes_by_app_minute ON traffic_minutes(app, minute);
    CREATE INDEX traffic_hours_by_app_hour ON traffic_hours(app, hour);
    """,
    """
    ALTER TABLE deployments ADD COLUMN skip_gates TEXT NOT NULL DEFAULT '{}';
    CREATE TABLE gate_results (
        id INTEGER PRIMARY KEY,
        app TEXT NOT NULL,
        release TEXT NOT NULL,
        deployment INTEGER NOT NULL,
        gate TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT NOT NULL,
        who TEXT,
        reason TEXT,
        at REAL NOT NULL,
        seconds REAL,
        log_path TEXT
    );
    CREATE INDEX gate_results_by_release ON gate_results(app, release);
    """,
    """
    CREATE TABLE secrets (
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        key_id TEXT,
        nonce BLOB,
        ciphertext BLOB,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        PRIMARY KEY (app, name, version)
    );
    ALTER TABLE releases ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE releases ADD COLUMN folder TEXT;
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL
    );
    """,
    """
    ALTER TABLE instances ADD COLUMN host TEXT NOT NULL DEFAULT 'local';
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        address TEXT NOT NULL,
        roles TEXT NOT NULL,
        ssh TEXT,
        added_at REAL NOT NULL,
        agent_version TEXT,
        facts TEXT NOT NULL DEFAULT '{}'
    );
    ALTER TABLE deployments ADD COLUMN skip_hosts TEXT NOT NULL DEFAULT '[]';
    """,
    """
    CREATE TABLE autoscale_decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        process TEXT NOT NULL,
        at REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX autoscale_decisions_by_app ON autoscale_decisions (app, id);
    """,
    """
    CREATE TABLE databases (
        name TEXT PRIMARY KEY,
        engine TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        state TEXT NOT NULL,
        apps TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        error TEXT,
        schedule TEXT
    );
    CREATE TABLE database_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        database TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at REAL NOT NULL,
        seconds REAL,
        ok INTEGER,
        backup TEXT,
        restore_seconds REAL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX database_runs_by_database ON database_runs(database, kind, id);
    """,
]


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema up to date; `conn` must be in autocommit mode (isolation_level=None)."""
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(number),),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
