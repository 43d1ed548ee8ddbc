"""Per-second traffic of each release, ingest losses, and the judge's verdicts."""

from __future__ import annotations

import json
import time
from typing import Any

from slipway.metrics.ingest import Second
from slipway.store.records import VerdictRecord, dumps
from slipway.store.store import Store


def add_seconds(store: Store, rows: list[tuple[str, str, int, Second]]) -> None:
    """Record completed seconds; a late part of a second already recorded is merged in."""
    if not rows:
        return
    with store.tx() as c:
        for app, release, second, data in rows:
            old = c.execute(
                "SELECT requests, errors, conn_failures, client_aborts, latency FROM traffic "
                "WHERE app = ? AND release = ? AND second = ?",
                (app, release, second),
            ).fetchone()
            if old is not None:
                data.add(
                    Second(
                        old[0],
                        old[1],
                        old[2],
                        old[3],
                        {int(k): v for k, v in json.loads(old[4]).items()},
                    )
                )
            c.execute(
                "INSERT OR REPLACE INTO traffic (app, release, second, requests, errors, "
                "conn_failures, client_aborts, latency) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    app,
                    release,
                    second,
                    data.requests,
                    data.errors,
                    data.conn_failures,
                    data.client_aborts,
                    json.dumps(data.latency),
                ),
            )


def seconds_after(store: Store, app: str, release: str, after: int) -> list[tuple[int, Second]]:
    rows = store.conn.execute(
        "SELECT second, requests, errors, conn_failures, client_aborts, latency FROM traffic "
        "WHERE app = ? AND release = ? AND second > ? ORDER BY second",
        (app, release, after),
    ).fetchall()
    return [
        (r[0], Second(r[1], r[2], r[3], r[4], {int(k): v for k, v in json.loads(r[5]).items()}))
        for r in rows
    ]


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
