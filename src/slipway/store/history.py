"""Reads of the traffic history at each resolution it is kept at (rows of 1 s, 1 min and 1 h,
written by `traffic.add_seconds`), and its pruning."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from slipway.judge.histogram import quantiles_ms
from slipway.metrics.ingest import Second
from slipway.store import traffic
from slipway.store.store import Store

# seconds per row of each table, finest first: (1, 60, 3600)
RESOLUTIONS = tuple(size for _, _, size in traffic.TIERS)
_TABLES = {size: (table, column) for table, column, size in traffic.TIERS}


@dataclass(frozen=True)
class TrafficRow:
    """One release's traffic over one row of a resolution."""

    at: int  # the unix time the row's second, minute or hour starts
    release: str
    traffic: Second


@dataclass(frozen=True)
class QuantileRow:
    """One release's counts and latency quantiles (p50, p90, p99 in ms) over one row."""

    at: int
    release: str
    requests: int
    errors: int
    client_aborts: int
    quantiles: list[float | None]


def _where(
    resolution: int, app: str, low: int, high: int, release: str | None
) -> tuple[str, str, str, list[Any]]:
    """The table of the resolution, its time column and the condition on its rows: the
    app's, from low up to (not including) high, of one release or all."""
    table, column = _TABLES[resolution]
    where = f"WHERE app = ? AND {column} >= ? AND {column} < ?"
    args: list[Any] = [app, low, high]
    if release is not None:
        where += " AND release = ?"
        args.append(release)
    return table, column, where, args


def traffic_rows(
    store: Store, resolution: int, app: str, low: int, high: int, release: str | None = None
) -> Iterator[TrafficRow]:
    """The app's rows of `resolution` seconds that start in [low, high), of one release or
    all, histograms decoded. Read as they are iterated, so a long span is never all in
    memory at once."""
    table, column, where, args = _where(resolution, app, low, high, release)
    sql = f"SELECT {column}, release, {traffic.COLUMNS} FROM {table} {where}"
    for row in store.conn.execute(sql, args):
        yield TrafficRow(row[0], row[1], traffic.decode(row[2:]))


def quantile_rows(
    store: Store, resolution: int, app: str, low: int, high: int, release: str | None = None
) -> Iterator[QuantileRow]:
    """As `traffic_rows`, but only counts and quantiles: the quantiles stored with each row
    are used as they are, so no histogram is decoded (unless a row has none)."""
    table, column, where, args = _where(resolution, app, low, high, release)
    sql = (
        f"SELECT {column}, release, requests, errors, client_aborts, quantiles, latency "
        f"FROM {table} {where}"
    )
    for at, name, requests, errors, aborts, stored, latency in store.conn.execute(sql, args):
        # rows written before quantiles were stored have none: computed once here
        qs = json.loads(stored) if stored else quantiles_ms(traffic.decode_latency(latency))
        yield QuantileRow(at, name, requests, errors, aborts, qs)


def first_second(store: Store, app: str) -> int | None:
    """The oldest second of the app's traffic still kept at 1 s, if any."""
    row = store.fetch_one("SELECT MIN(second) FROM traffic WHERE app = ?", app)
    return row[0] if row else None


def prune(store: Store, *, seconds_before: int, rollups_before: int) -> int:
    """Drop the rows of seconds before `seconds_before`, and those of minutes, hours and
    ingest losses before `rollups_before`, in one transaction. Returns how many traffic rows
    were dropped (losses not counted)."""
    with store.tx() as c:
        removed = c.execute("DELETE FROM traffic WHERE second < ?", (seconds_before,)).rowcount
        removed += c.execute(
            "DELETE FROM traffic_minutes WHERE minute < ?", (rollups_before,)
        ).rowcount
        removed += c.execute("DELETE FROM traffic_hours WHERE hour < ?", (rollups_before,)).rowcount
        c.execute("DELETE FROM ingest_losses WHERE second < ?", (rollups_before,))
    return int(removed)
