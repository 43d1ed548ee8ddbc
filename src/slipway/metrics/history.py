"""The embedded metrics history: each release's traffic at 1 s for the last hour and 1 min
for 30 days, in slipway's own SQLite, bounded by pruning. No other service needed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from slipway.judge.histogram import lower_edge, upper_edge
from slipway.metrics.ingest import Second
from slipway.store import traffic
from slipway.store.store import Store

SECONDS_KEPT = 3600
MINUTES_KEPT = 30 * 86400
QUANTILES = (0.5, 0.9, 0.99)
MAX_POINTS = 1500  # per chart: more points than pixels help nobody


def quantiles_ms(latency: dict[int, int], qs: tuple[float, ...] = QUANTILES) -> list[float | None]:
    """Quantiles of a sparse latency histogram (bucket -> count), in ms (bucket midpoints)."""
    total = sum(latency.values())
    if total == 0:
        return [None for _ in qs]
    out: list[float | None] = []
    ordered = sorted(latency.items())
    for q in qs:
        rank = q * total
        seen = 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                out.append(round((lower_edge(bucket) + upper_edge(bucket)) / 2, 2))
                break
    return out


def step_for(since: float, until: float, now: float) -> int:
    """1 s while the whole span is within the last hour, else whole minutes, coarse enough
    that a chart has at most MAX_POINTS points."""
    span = max(1.0, until - since)
    if since >= now - SECONDS_KEPT and span <= MAX_POINTS:
        return 1
    minutes = max(1, -(-int(span) // (60 * MAX_POINTS)))
    return 60 * minutes


@dataclass
class Series:
    """Per release, one value per step on a common time grid (None where there was no data)."""

    t: list[int]
    step: int
    releases: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    totals: dict[str, Second] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "step": self.step, "releases": self.releases}


def series(
    store: Store,
    app: str,
    since: float,
    until: float | None = None,
    release: str | None = None,
    step: int | None = None,
) -> Series:
    now = time.time()
    end = int(until if until is not None else now)
    step = step or step_for(since, end, now)
    table, column = ("traffic", "second") if step < 60 else ("traffic_minutes", "minute")
    start = int(since) // step * step
    sql = (
        f"SELECT {column}, release, {traffic.COLUMNS} FROM {table} "
        f"WHERE app = ? AND {column} >= ? AND {column} <= ?"
    )
    args: list[Any] = [app, start, end]
    if release is not None:
        sql += " AND release = ?"
        args.append(release)
    buckets: dict[str, dict[int, Second]] = {}
    for row in store.conn.execute(sql, args):
        at = row[0] // step * step
        per_release = buckets.setdefault(row[1], {})
        per_release.setdefault(at, Second()).add(traffic.decode(row[2:]))
    grid = list(range(start, end // step * step + 1, step))
    result = Series(grid, step)
    for name in sorted(buckets, key=_release_order):
        points = buckets[name]
        rps: list[float | None] = []
        errors: list[float | None] = []
        p50: list[float | None] = []
        p90: list[float | None] = []
        p99: list[float | None] = []
        total = Second()
        for at in grid:
            data = points.get(at)
            if data is None:
                for column_values in (rps, errors, p50, p90, p99):
                    column_values.append(None)
                continue
            total.add(data)
            rps.append(round(data.requests / step, 3))
            judged = data.requests - data.client_aborts
            errors.append(round(data.errors / judged, 5) if judged else None)
            for values, q in zip((p50, p90, p99), quantiles_ms(data.latency), strict=True):
                values.append(q)
        result.releases[name] = {
            "rps": rps,
            "error_rate": errors,
            "p50": p50,
            "p90": p90,
            "p99": p99,
        }
        result.totals[name] = total
    return result


def window(store: Store, app: str, seconds: float, now: float | None = None) -> dict[str, Second]:
    """Each release's traffic over the last `seconds` complete seconds (for alert rules): the
    second in progress and the one just ended (its datagrams may be in flight) are left out."""
    end = int(now if now is not None else time.time()) - 1
    start = end - int(seconds)
    if seconds <= SECONDS_KEPT:
        table, column = "traffic", "second"
    else:
        table, column, start = "traffic_minutes", "minute", -(-start // 60) * 60
    rows = store.conn.execute(
        f"SELECT release, {traffic.COLUMNS} FROM {table} "
        f"WHERE app = ? AND {column} >= ? AND {column} < ?",
        (app, start, end),
    ).fetchall()
    out: dict[str, Second] = {}
    for row in rows:
        out.setdefault(row[0], Second()).add(traffic.decode(row[1:]))
    return out


def prune(store: Store, now: float | None = None) -> int:
    """Drop history past its retention; per-second rows a running canary still needs stay."""
    moment = now if now is not None else time.time()
    keep_seconds = moment - SECONDS_KEPT
    for deployment in store.active_deployments():
        keep_seconds = min(keep_seconds, deployment.started_at)
    with store.tx() as c:
        removed = c.execute("DELETE FROM traffic WHERE second < ?", (int(keep_seconds),)).rowcount
        removed += c.execute(
            "DELETE FROM traffic_minutes WHERE minute < ?", (int(moment - MINUTES_KEPT),)
        ).rowcount
        c.execute("DELETE FROM ingest_losses WHERE second < ?", (int(moment - MINUTES_KEPT),))
    return int(removed)


def _release_order(release: str) -> int:
    digits = release[1:]
    return int(digits) if digits.isdigit() else 0
