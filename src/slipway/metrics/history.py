"""The embedded metrics history: each release's traffic at 1 s for the last hour, 1 min and
1 h for 30 days, in slipway's own SQLite, bounded by pruning. No other service needed."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from slipway.judge.histogram import quantiles_ms
from slipway.metrics.ingest import Second
from slipway.store import traffic
from slipway.store.store import Store

SECONDS_KEPT = 3600
MINUTES_KEPT = 30 * 86400
MAX_POINTS = 1500  # per chart: more points than pixels help nobody


def step_for(since: float, until: float, now: float) -> int:
    """1 s while the whole span is within the last hour, else whole minutes, else whole hours,
    coarse enough that a chart has at most MAX_POINTS points."""
    span = max(1, int(until - since))
    if since >= now - SECONDS_KEPT and span <= MAX_POINTS:
        return 1
    if span <= 60 * MAX_POINTS:
        return 60 * max(1, -(-span // (60 * MAX_POINTS)))
    return 3600 * max(1, -(-span // (3600 * MAX_POINTS)))


def tier_for(step: int) -> tuple[str, str, int]:
    """The coarsest table whose rows divide the step."""
    return next(t for t in reversed(traffic.TIERS) if step % t[2] == 0)


@dataclass
class Series:
    """Per release, one value per step on a common time grid (None where there was no data)."""

    t: list[int]
    step: int
    releases: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    totals: dict[str, Second] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "step": self.step, "releases": self.releases}


@dataclass
class Point:
    requests: int
    errors: int
    client_aborts: int
    quantiles: list[float | None]


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
    table, column, size = tier_for(step)
    start = int(since) // step * step
    points = _points(store, app, table, column, start, end, release, step, size)
    grid = list(range(start, end // step * step + 1, step))
    result = Series(grid, step)
    for name in sorted(points, key=_release_order):
        values: dict[str, list[float | None]] = {
            k: [] for k in ("rps", "error_rate", "p50", "p90", "p99")
        }
        for at in grid:
            point = points[name].get(at)
            if point is None:
                for column_values in values.values():
                    column_values.append(None)
                continue
            values["rps"].append(round(point.requests / step, 3))
            judged = point.requests - point.client_aborts
            values["error_rate"].append(round(point.errors / judged, 5) if judged else None)
            for key, q in zip(("p50", "p90", "p99"), point.quantiles, strict=True):
                values[key].append(q)
        result.releases[name] = values
    result.totals = totals(store, app, start, end, release)
    return result


def _points(
    store: Store,
    app: str,
    table: str,
    column: str,
    start: int,
    end: int,
    release: str | None,
    step: int,
    size: int,
) -> dict[str, dict[int, Point]]:
    """One point per release per step. At the table's own resolution the stored quantiles
    are used as they are; coarser steps merge the rows' histograms."""
    where = f"WHERE app = ? AND {column} >= ? AND {column} <= ?"
    args: list[Any] = [app, start, end]
    if release is not None:
        where += " AND release = ?"
        args.append(release)
    out: dict[str, dict[int, Point]] = {}
    if step == size:
        sql = f"SELECT {column}, release, requests, errors, client_aborts, quantiles, latency "
        for at, name, requests, errors, aborts, stored, latency in store.conn.execute(
            sql + f"FROM {table} {where}", args
        ):
            # rows written before quantiles were stored have none: computed once here
            qs = json.loads(stored) if stored else quantiles_ms(traffic.decode_latency(latency))
            out.setdefault(name, {})[at] = Point(requests, errors, aborts, qs)
        return out
    merged: dict[str, dict[int, Second]] = {}
    sql = f"SELECT {column}, release, {traffic.COLUMNS} FROM {table} {where}"
    for row in store.conn.execute(sql, args):
        per_release = merged.setdefault(row[1], {})
        per_release.setdefault(row[0] // step * step, Second()).add(traffic.decode(row[2:]))
    for name, seconds in merged.items():
        out[name] = {
            at: Point(d.requests, d.errors, d.client_aborts, quantiles_ms(d.latency))
            for at, d in seconds.items()
        }
    return out


def totals(
    store: Store, app: str, start: int, end: int, release: str | None = None
) -> dict[str, Second]:
    """Each release's traffic from start to end (inclusive), read from the coarsest rows that
    lie within it: whole hours, then whole minutes, then seconds at the edges."""
    out: dict[str, Second] = {}
    oldest = store.conn.execute("SELECT MIN(second) FROM traffic WHERE app = ?", (app,))
    kept = oldest.fetchone()[0]
    first_second = kept if kept is not None else end + 1
    for table, column, low, high in _cover(start, end + 1, traffic.TIERS[::-1], first_second):
        sql = (
            f"SELECT release, {traffic.COLUMNS} FROM {table} "
            f"WHERE app = ? AND {column} >= ? AND {column} < ?"
        )
        args: list[Any] = [app, low, high]
        if release is not None:
            sql += " AND release = ?"
            args.append(release)
        for row in store.conn.execute(sql, args):
            out.setdefault(row[0], Second()).add(traffic.decode(row[1:]))
    return dict(sorted(out.items(), key=lambda item: _release_order(item[0])))


def _cover(
    low: int, high: int, tiers: tuple[tuple[str, str, int], ...], first_second: int
) -> list[tuple[str, str, int, int]]:
    """[low, high) as spans of whole rows of each tier, coarsest first (tiers coarse → fine).
    Seconds before the first one kept are gone: the minutes they fall in stand in."""
    if low >= high:
        return []
    (table, column, size), finer = tiers[0], tiers[1:]
    if not finer:
        if low < first_second:
            return [("traffic_minutes", "minute", low // 60 * 60, high)]
        return [(table, column, low, high)]
    first, last = -(-low // size) * size, high // size * size
    if first >= last:
        return _cover(low, high, finer, first_second)
    return [
        *_cover(low, first, finer, first_second),
        (table, column, first, last),
        *_cover(last, high, finer, first_second),
    ]


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
        removed += c.execute(
            "DELETE FROM traffic_hours WHERE hour < ?", (int(moment - MINUTES_KEPT),)
        ).rowcount
        c.execute("DELETE FROM ingest_losses WHERE second < ?", (int(moment - MINUTES_KEPT),))
    return int(removed)


def _release_order(release: str) -> int:
    digits = release[1:]
    return int(digits) if digits.isdigit() else 0
