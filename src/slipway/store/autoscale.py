"""The autoscaler's records: every decision that changed a count or could not (with the
signal, the target, the rule's numbers and what came of it), and the processes whose
autoscaling a manual `slipway scale` paused."""

from __future__ import annotations

import json
from typing import Any

from slipway.store.store import Store

KEEP_PER_APP = 2000  # decisions kept per app: days of changes, a bounded table
PAUSED_KEY = "autoscale_paused"


def record(store: Store, app: str, process: str, at: float, data: dict[str, Any]) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO autoscale_decisions (app, process, at, data) VALUES (?, ?, ?, ?)",
            (app, process, at, json.dumps(data)),
        )
        c.execute(
            "DELETE FROM autoscale_decisions WHERE app = ? AND id <= (SELECT id FROM "
            "autoscale_decisions WHERE app = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (app, app, KEEP_PER_APP),
        )


def history(store: Store, app: str, limit: int = 100, since: float = 0.0) -> list[dict[str, Any]]:
    """The app's recorded decisions, newest first."""
    rows = store.conn.execute(
        "SELECT data FROM autoscale_decisions WHERE app = ? AND at >= ? ORDER BY id DESC LIMIT ?",
        (app, since, limit),
    ).fetchall()
    return [dict(json.loads(r["data"])) for r in rows]


def paused(store: Store) -> dict[str, dict[str, Any]]:
    """{"app/process": {"at", "who", "count"}} of autoscaling paused by hand."""
    row = store.conn.execute("SELECT value FROM meta WHERE key = ?", (PAUSED_KEY,)).fetchone()
    return dict(json.loads(row["value"])) if row else {}


def set_paused(store: Store, app: str, process: str, info: dict[str, Any] | None) -> None:
    current = paused(store)
    key = f"{app}/{process}"
    if info is None:
        current.pop(key, None)
    else:
        current[key] = info
    with store.tx() as c:
        c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (PAUSED_KEY, json.dumps(current)),
        )
