"""Per-second traffic of each release, ingest losses, and the judge's verdicts."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from slipway.judge.histogram import quantiles_ms
from slipway.metrics.ingest import Second
from slipway.store.records import VerdictCount, VerdictRecord, dumps
from slipway.store.store import Store

COLUMNS = "requests, errors, conn_failures, client_aborts, latency, classes"
COARSE = 5
# (table, time column, seconds per row): every second is also rolled up into its minute and
# hour, each row keeping its quantiles, so a chart at a table's own resolution decodes no
# histogram.
TIERS = (
    ("traffic", "second", 1),
    ("traffic_minutes", "minute", 60),
    ("traffic_hours", "hour", 3600),
)


def decode(row: tuple[Any, ...] | sqlite3.Row) -> Second:
    """A Second from the COLUMNS of a traffic row."""
    return Second(row[0], row[1], row[2], row[3], decode_latency(row[4]), json.loads(row[5]))


def decode_latency(text: str) -> dict[int, int]:
    return {int(k): v for k, v in json.loads(text).items()}


def add_seconds(store: Store, rows: list[tuple[str, str, int, Second]]) -> None:
    """Record completed seconds, at 1 s and rolled up into 1 min and 1 h; a late part of a
    second already recorded is merged in."""
    if not rows:
        return
    with store.tx() as c:
        for table, column, size in TIERS:
            merged: dict[tuple[str, str, int], Second] = {}
            for app, release, second, data in rows:
                merged.setdefault((app, release, second // size * size), Second()).add(data)
            for key, data in merged.items():
                if size > 1:
                    data.latency = coarsen(data.latency)
                _merge(c, table, column, key, data)


def coarsen(latency: dict[int, int]) -> dict[int, int]:
    """Minutes and hours keep latency in buckets COARSE times wider (about 5%), each named by
    its middle fine bucket: charts need no finer, and rows get several times smaller. The
    judge reads seconds, at full resolution."""
    out: dict[int, int] = {}
    for bucket, count in latency.items():
        middle = bucket // COARSE * COARSE + COARSE // 2
        out[middle] = out.get(middle, 0) + count
    return out


def _merge(
    c: sqlite3.Connection, table: str, at: str, key: tuple[str, str, int], data: Second
) -> None:
    old = c.execute(
        f"SELECT {COLUMNS} FROM {table} WHERE app = ? AND release = ? AND {at} = ?",
        key,
    ).fetchone()
    merged = Second()
    merged.add(data)
    if old is not None:
        merged.add(decode(old))
    c.execute(
        f"INSERT OR REPLACE INTO {table} (app, release, {at}, {COLUMNS}, quantiles) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            merged.requests,
            merged.errors,
            merged.conn_failures,
            merged.client_aborts,
            json.dumps(merged.latency),
            json.dumps(merged.classes),
            json.dumps(quantiles_ms(merged.latency)),
        ),
    )


def seconds_after(store: Store, app: str, release: str, after: int) -> list[tuple[int, Second]]:
    rows = store.conn.execute(
        f"SELECT second, {COLUMNS} FROM traffic "
        "WHERE app = ? AND release = ? AND second > ? ORDER BY second",
        (app, release, after),
    ).fetchall()
    return [(r[0], decode(r[1:])) for r in rows]


def add_loss(store: Store, second: int, lost: int, source: str) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO ingest_losses (second, lost, source) VALUES (?, ?, ?)",
            (second, lost, source),
        )


def losses_since(store: Store, second: int) -> list[tuple[int, int, str]]:
    rows = store.conn.execute(
        "SELECT second, lost, source FROM ingest_losses WHERE second >= ? ORDER BY second",
        (second,),
    ).fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def add_verdict(
    store: Store,
    deployment: int,
    step: int,
    share: float,
    decision: str,
    reason: str,
    evidence: dict[str, Any],
) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO verdicts (deployment, at, step, share, decision, reason, evidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (deployment, time.time(), step, share, decision, reason, dumps(evidence)),
        )


def verdicts(store: Store, deployment: int, limit: int = 10_000) -> list[VerdictRecord]:
    rows = store.conn.execute(
        "SELECT id, deployment, at, step, share, decision, reason, evidence FROM verdicts "
        "WHERE deployment = ? ORDER BY id DESC LIMIT ?",
        (deployment, limit),
    ).fetchall()
    return [
        VerdictRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]))
        for r in reversed(rows)
    ]


def verdict_counts(store: Store) -> list[VerdictCount]:
    """How many verdicts the judge gave, per app and decision."""
    rows = store.fetch_all(
        "SELECT d.app, v.decision, COUNT(*) FROM verdicts v JOIN deployments d "
        "ON d.id = v.deployment GROUP BY d.app, v.decision"
    )
    return [VerdictCount(r[0], r[1], r[2]) for r in rows]
