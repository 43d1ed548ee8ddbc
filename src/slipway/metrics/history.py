"""The embedded metrics history: each release's traffic at 1 s for the last hour, 1 min and
1 h for 30 days, in slipway's own SQLite, bounded by pruning. No other service needed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from slipway.judge.histogram import quantiles_ms
from slipway.metrics.ingest import Second
from slipway.store import history as stored
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


def resolution_for(step: int) -> int:
    """The coarsest resolution kept whose rows divide the step."""
    return next(r for r in reversed(stored.RESOLUTIONS) if step % r == 0)


def tier_for(step: int) -> tuple[str, str, int]:
    """The (table, time column, seconds per row) of `resolution_for(step)`. Slipway itself
    asks only for the resolution; bench/history counts the rows a chart reads with this."""
    return next(t for t in traffic.TIERS if t[2] == resolution_for(step))


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
    resolution = resolution_for(step)
    start = int(since) // step * step
    points = _points(store, app, resolution, start, end, release, step)
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
    resolution: int,
    start: int,
    end: int,
    release: str | None,
    step: int,
) -> dict[str, dict[int, Point]]:
    """One point per release per step from start to end (inclusive). At the resolution's own
    step the stored quantiles are used as they are; coarser steps merge the rows'
    histograms."""
    out: dict[str, dict[int, Point]] = {}
    if step == resolution:
        for q in stored.quantile_rows(store, resolution, app, start, end + 1, release):
            out.setdefault(q.release, {})[q.at] = Point(
                q.requests, q.errors, q.client_aborts, q.quantiles
            )
        return out
    merged: dict[str, dict[int, Second]] = {}
    for row in stored.traffic_rows(store, resolution, app, start, end + 1, release):
        per_release = merged.setdefault(row.release, {})
        per_release.setdefault(row.at // step * step, Second()).add(row.traffic)
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
    kept = stored.first_second(store, app)
    first_second = kept if kept is not None else end + 1
    for resolution, low, high in _cover(start, end + 1, stored.RESOLUTIONS[::-1], first_second):
        for row in stored.traffic_rows(store, resolution, app, low, high, release):
            out.setdefault(row.release, Second()).add(row.traffic)
    return dict(sorted(out.items(), key=lambda item: _release_order(item[0])))


def _cover(
    low: int, high: int, resolutions: tuple[int, ...], first_second: int
) -> list[tuple[int, int, int]]:
    """[low, high) as (resolution, low, high) spans of whole rows of each resolution, coarsest
    first (resolutions coarse → fine). Seconds before the first one kept are gone: the
    minutes they fall in stand in."""
    if low >= high:
        return []
    size, finer = resolutions[0], resolutions[1:]
    if not finer:
        if low < first_second:
            return [(60, low // 60 * 60, high)]
        return [(size, low, high)]
    first, last = -(-low // size) * size, high // size * size
    if first >= last:
        return _cover(low, high, finer, first_second)
    return [
        *_cover(low, first, finer, first_second),
        (size, first, last),
        *_cover(last, high, finer, first_second),
    ]


def window(store: Store, app: str, seconds: float, now: float | None = None) -> dict[str, Second]:
    """Each release's traffic over the last `seconds` complete seconds (for alert rules): the
    second in progress and the one just ended (its datagrams may be in flight) are left out."""
    end = int(now if now is not None else time.time()) - 1
    start = end - int(seconds)
    resolution = 1
    if seconds > SECONDS_KEPT:
        resolution, start = 60, -(-start // 60) * 60
    out: dict[str, Second] = {}
    for row in stored.traffic_rows(store, resolution, app, start, end):
        out.setdefault(row.release, Second()).add(row.traffic)
    return out


def prune(store: Store, now: float | None = None) -> int:
    """Drop history past its retention; per-second rows a running canary still needs stay."""
    moment = now if now is not None else time.time()
    keep_seconds = moment - SECONDS_KEPT
    for deployment in store.active_deployments():
        keep_seconds = min(keep_seconds, deployment.started_at)
    return stored.prune(
        store, seconds_before=int(keep_seconds), rollups_before=int(moment - MINUTES_KEPT)
    )


def _release_order(release: str) -> int:
    digits = release[1:]
    return int(digits) if digits.isdigit() else 0
