"""Filling a throwaway home's store through the daemon's own write path, and measuring it.

The simulated clock runs from `hours` before the real time at the start, one second at a
time: every second, all apps' rows go to `traffic.add_seconds` in one call (as the daemon's
flush does); every simulated minute, `history.prune(store, now=simulated)` (as the daemon's
retention does). The fill is far faster than real time, so the clock catches up with the
real one and the fill stops there: the store ends where a daemon that ran the whole time
would have left it, with the last hour at 1 s."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.history import traffic
from bench.history.traffic import AppModel, Deploy
from slipway.config.load import config_hash, parse_config
from slipway.metrics import history
from slipway.metrics.ingest import Second
from slipway.paths import Home
from slipway.store import traffic as store_traffic
from slipway.store.store import Store

TABLES = tuple(table for table, _, _ in store_traffic.TIERS)
PROGRESS_EVERY = 3600  # simulated seconds


@dataclass
class Filled:
    start: int  # first simulated second
    end: int  # last simulated second + 1
    wall: float = 0.0  # the whole fill
    generate: float = 0.0  # the simulation (numpy) part of it
    write: float = 0.0  # add_seconds
    prune: float = 0.0
    write_calls: int = 0
    rows: int = 0  # (app, release, second) rows handed to add_seconds
    requests: int = 0
    errors: int = 0
    deployments: int = 0
    slowest_write: float = 0.0  # one add_seconds call

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass
class Size:
    """The store on disk after a checkpoint."""

    db_bytes: int
    wal_bytes: int
    tables: dict[str, int]  # rows
    table_bytes: dict[str, int]  # pages of the table and its indexes (dbstat)
    free_bytes: int  # free pages inside the file

    @property
    def total(self) -> int:
        return self.db_bytes + self.wal_bytes


def minimal_toml(name: str, port: int) -> str:
    return f"""name = "{name}"

[listen]
address = "127.0.0.1"
port = {port}

[processes]
web = "python app.py --port $PORT"
"""


def register(store: Store, home: Home, apps: list[AppModel]) -> None:
    """Apps and their releases, as deploys would have recorded them (no instances: the
    daemon has nothing to start, and formation {} means nothing is missing)."""
    for number, app in enumerate(apps):
        config = parse_config(minimal_toml(app.name, 18000 + number), f"{app.name}/slipway.toml")
        source = home.root / "src" / app.name
        store.ensure_app(app.name, str(source))
        for release in app.releases:
            store.new_release(
                app.name,
                source=str(source),
                source_kind="dir",
                git_sha=None,
                config_json=config.model_dump_json(),
                config_hash=config_hash(config),
            )
            store.update_release(app.name, release.name, status="ready")


class Deployments:
    """Each app's deployments, started and finished at their simulated times."""

    def __init__(self, store: Store, apps: list[AppModel]) -> None:
        self.store = store
        self.pending = sorted(
            ((d.at, app.name, d) for app in apps for d in app.deploys), key=lambda x: x[0]
        )
        self.open: list[tuple[int, Deploy]] = []  # (deployment id, what it does)
        self.count = 0

    def advance(self, second: int) -> None:
        while self.pending and self.pending[0][0] <= second:
            at, app, d = self.pending.pop(0)
            dep = self.store.start_deployment(
                app,
                kind=d.kind,
                from_release=d.from_release,
                to_release=d.to_release,
                formation={},
                who="bench",
                state="canary" if d.steps else "shift",
                strategy=d.strategy,
            )
            self.store.update_deployment(dep.id, started_at=float(at))
            self.open.append((dep.id, d))
            self.count += 1
        for dep_id, d in [o for o in self.open if o[1].end <= second]:
            self.store.update_deployment(
                dep_id, state="done", outcome=d.outcome, finished_at=float(d.end)
            )
            self.open.remove((dep_id, d))


def fill(
    home: Home, hours: float, seed: int, progress: bool = True
) -> tuple[Filled, list[AppModel]]:
    home.ensure()
    store = Store(home.db)
    began = time.perf_counter()
    start = int(time.time() - hours * 3600) // 60 * 60
    # deploy times are spread over the nominal span; the catch-up adds a few minutes
    apps = traffic.build_apps(start, int(start + hours * 3600), seed)
    register(store, home, apps)
    deployments = Deployments(store, apps)
    rng = np.random.default_rng(seed)
    result = Filled(start, start)
    second = start
    try:
        while second < int(time.time()):
            t0 = time.perf_counter()
            per_app = [traffic.minute(app, rng, second) for app in apps]
            result.generate += time.perf_counter() - t0
            for offset in range(60):
                if second >= int(time.time()):
                    break
                deployments.advance(second)
                rows: list[tuple[str, str, int, Second]] = []
                for app, seconds in zip(apps, per_app, strict=True):
                    rows.extend((app.name, name, second, data) for name, data in seconds[offset])
                t1 = time.perf_counter()
                store_traffic.add_seconds(store, rows)
                spent = time.perf_counter() - t1
                result.write += spent
                result.slowest_write = max(result.slowest_write, spent)
                result.write_calls += 1
                result.rows += len(rows)
                result.requests += sum(r[3].requests for r in rows)
                result.errors += sum(r[3].errors for r in rows)
                second += 1
                if second % 60 == 0:
                    t2 = time.perf_counter()
                    history.prune(store, now=float(second))
                    result.prune += time.perf_counter() - t2
                if progress and (second - start) % PROGRESS_EVERY == 0:
                    done = (second - start) / 3600
                    print(
                        f"  fill: {done:.0f} of {hours:g} simulated hours, "
                        f"{time.perf_counter() - began:.0f} s",
                        flush=True,
                    )
        deployments.advance(second + 10**9)  # anything still open finishes now
        for app in apps:
            store.set_current(app.name, app.current, {})
    finally:
        store.close()
    result.end = second
    result.deployments = deployments.count
    result.wall = time.perf_counter() - began
    return result, apps


def size(db: Path) -> Size:
    """Checkpoint the WAL into the file, then measure the file, rows and pages per table."""
    store = Store(db)
    try:
        conn = store.conn
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        free = int(conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
        table_bytes: dict[str, int] = {}
        for table in TABLES:
            names = [table] + [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_schema WHERE tbl_name = ? AND type = 'index'",
                    (table,),
                )
            ]
            marks = ",".join("?" for _ in names)
            used = conn.execute(
                f"SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN ({marks})", names
            ).fetchone()[0]
            table_bytes[table] = int(used)
    finally:
        store.close()
    wal = db.with_name(db.name + "-wal")
    return Size(
        db.stat().st_size, wal.stat().st_size if wal.exists() else 0, rows, table_bytes, free
    )


def extend_to_days(db: Path, days: int) -> tuple[int, float]:
    """The minute and hour tables made `days` deep, as a daemon that ran that long would have
    them: the last whole hours of the fill (24 of them after a day) are the tile, copied back
    in time by whole tiles until `days` are covered, in time order across apps like the
    daemon's writes. Not the write path: the rows are copies. Returns (rows added, seconds
    taken)."""
    began = time.perf_counter()
    store = Store(db)
    added = 0
    try:
        conn = store.conn
        first, last = conn.execute(
            "SELECT MIN(minute), MAX(minute) FROM traffic_minutes"
        ).fetchone()
        tile_end = (last + 60) // 3600 * 3600  # the last whole hour ends here
        tile = min(86400, tile_end - -(-first // 3600) * 3600)  # whole hours, at most a day
        if tile <= 0:
            return 0, time.perf_counter() - began
        oldest = tile_end - days * 86400 + 3600  # stays within a fresh daemon's retention
        for table, column, size in store_traffic.TIERS:
            if size == 1:
                continue  # seconds are kept for an hour only
            shift = tile
            while tile_end - shift > oldest:  # the copy covers [end - tile, end) - shift
                with store.tx() as c:
                    cur = c.execute(
                        f"INSERT OR IGNORE INTO {table} (app, release, {column}, "
                        f"{store_traffic.COLUMNS}, quantiles) SELECT app, release, {column} - ?, "
                        f"{store_traffic.COLUMNS}, quantiles FROM {table} "
                        f"WHERE {column} >= ? AND {column} < ? AND {column} - ? >= ? "
                        f"ORDER BY {column}, app",
                        (shift, tile_end - tile, tile_end, shift, oldest),
                    )
                    added += cur.rowcount
                shift += tile
    finally:
        store.close()
    return added, time.perf_counter() - began
