"""The embedded metrics history in a real SQLite store: seconds and minute rollups, chart
series, alert windows, retention."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipway.config.load import parse_config
from slipway.judge.histogram import bucket_of, quantiles_ms
from slipway.metrics.history import (
    MAX_POINTS,
    MINUTES_KEPT,
    SECONDS_KEPT,
    series,
    step_for,
    totals,
    window,
)
from slipway.metrics.history import prune as prune_history
from slipway.metrics.ingest import Second
from slipway.store import traffic
from slipway.store.store import Store

T0 = 28_333_333 * 60  # a whole minute (Nov 2023)
MINIMAL = 'name = "hello"\n[processes]\nweb = "python app.py --port $PORT"\n'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "state.db")
    yield db
    db.close()


def sec(
    requests: int = 0,
    errors: int = 0,
    aborts: int = 0,
    latencies: tuple[float, ...] = (),
) -> Second:
    """A second of traffic: `latencies` are the successful requests' times in ms."""
    latency: dict[int, int] = {}
    for ms in latencies:
        latency[bucket_of(ms)] = latency.get(bucket_of(ms), 0) + 1
    classes = {"2xx": requests - errors - aborts, "5xx": errors, "abort": aborts}
    return Second(requests, errors, 0, aborts, latency, {k: v for k, v in classes.items() if v})


def rows_in(store: Store, table: str) -> int:
    return int(store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def close_to(value: float | None, expected: float, rel: float = 0.01) -> bool:
    return value is not None and abs(value - expected) <= rel * expected


# -- recording -------------------------------------------------------------------------


def test_seconds_are_recorded_and_rolled_up_per_minute(store: Store) -> None:
    traffic.add_seconds(
        store,
        [
            ("hello", "r1", T0, sec(10, 1)),
            ("hello", "r1", T0 + 59, sec(5)),
            ("hello", "r1", T0 + 60, sec(7)),
            ("hello", "r2", T0 + 1, sec(3, 3)),
        ],
    )
    assert rows_in(store, "traffic") == 4
    minutes = store.conn.execute(
        "SELECT release, minute, requests, errors FROM traffic_minutes ORDER BY release, minute"
    ).fetchall()
    assert [tuple(r) for r in minutes] == [
        ("r1", T0, 15, 1),
        ("r1", T0 + 60, 7, 0),
        ("r2", T0, 3, 3),
    ]


def test_a_late_part_of_a_second_is_merged_not_lost(store: Store) -> None:
    traffic.add_seconds(store, [("hello", "r1", T0, sec(10, 1, latencies=(5.0,) * 9))])
    traffic.add_seconds(store, [("hello", "r1", T0, sec(4, 0, 1, latencies=(50.0,) * 3))])
    [(second, data)] = traffic.seconds_after(store, "hello", "r1", T0 - 1)
    assert second == T0
    assert (data.requests, data.errors, data.client_aborts) == (14, 1, 1)
    assert data.latency == {bucket_of(5.0): 9, bucket_of(50.0): 3}
    assert data.classes == {"2xx": 12, "5xx": 1, "abort": 1}
    requests = store.conn.execute("SELECT requests FROM traffic_minutes").fetchall()
    assert [r[0] for r in requests] == [14]


# -- series ----------------------------------------------------------------------------


def test_series_at_one_second_has_a_point_per_second_and_gaps_as_none(store: Store) -> None:
    traffic.add_seconds(
        store,
        [
            ("hello", "r1", T0, sec(10, 1, 1, latencies=(100.0,) * 8)),
            ("hello", "r1", T0 + 3, sec(4, latencies=(20.0,) * 4)),
            ("hello", "r1", T0 + 20, sec(99)),  # after `until`
            ("other", "r1", T0 + 1, sec(50)),  # another app
        ],
    )
    result = series(store, "hello", since=T0, until=T0 + 4, step=1)
    assert result.step == 1
    assert result.t == [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4]
    r1 = result.releases["r1"]
    assert r1["rps"] == [10.0, None, None, 4.0, None]
    # a client abort is nobody's fault: 1 error of 9 judged requests
    assert r1["error_rate"] == [round(1 / 9, 5), None, None, 0.0, None]
    assert close_to(r1["p50"][0], 100.0) and close_to(r1["p99"][0], 100.0)
    assert close_to(r1["p90"][3], 20.0)
    assert r1["p50"][1] is None
    assert result.totals["r1"].requests == 14
    assert list(result.releases) == ["r1"]
    assert result.to_json() == {"t": result.t, "step": 1, "releases": result.releases}


def test_series_orders_releases_by_number_and_filters_by_release(store: Store) -> None:
    traffic.add_seconds(
        store,
        [("hello", release, T0, sec(1)) for release in ("r10", "r2", "r9")],
    )
    assert list(series(store, "hello", T0, T0, step=1).releases) == ["r2", "r9", "r10"]
    only = series(store, "hello", T0, T0, release="r9", step=1)
    assert list(only.releases) == ["r9"]


def test_series_merges_seconds_into_coarser_steps(store: Store) -> None:
    traffic.add_seconds(
        store,
        [("hello", "r1", T0 + i, sec(2, 1 if i == 7 else 0)) for i in range(20)],
    )
    result = series(store, "hello", T0, T0 + 19, step=10)
    assert result.t == [T0, T0 + 10]
    assert result.releases["r1"]["rps"] == [2.0, 2.0]
    assert result.releases["r1"]["error_rate"] == [0.05, 0.0]


def test_series_by_minute_reads_the_rollups(store: Store) -> None:
    traffic.add_seconds(store, [("hello", "r1", T0 + i, sec(3)) for i in range(120)])
    # the per-second rows are gone (retention): minutes still answer
    store.conn.execute("DELETE FROM traffic")
    result = series(store, "hello", T0, T0 + 179, step=60)
    assert result.t == [T0, T0 + 60, T0 + 120]
    assert result.releases["r1"]["rps"] == [3.0, 3.0, None]
    assert result.totals["r1"].requests == 360


def test_series_of_the_last_minutes_is_per_second(store: Store) -> None:
    now = int(time.time())
    traffic.add_seconds(store, [("hello", "r1", now - 100, sec(5))])
    result = series(store, "hello", since=now - 120, until=now)
    assert result.step == 1
    assert result.releases["r1"]["rps"][result.t.index(now - 100)] == 5.0


def test_series_of_last_week_is_per_minute_with_bounded_points(store: Store) -> None:
    now = int(time.time())
    old = now - 3 * 86400
    traffic.add_seconds(store, [("hello", "r1", old, sec(600))])
    result = series(store, "hello", since=now - 7 * 86400, until=now)
    assert result.step % 60 == 0
    assert len(result.t) <= MAX_POINTS + 1
    assert result.totals["r1"].requests == 600
    assert sum(v for v in result.releases["r1"]["rps"] if v is not None) == pytest.approx(
        600 / result.step, abs=1e-3
    )


# -- step_for --------------------------------------------------------------------------


def test_step_is_one_second_for_short_recent_spans() -> None:
    now = float(T0)
    assert step_for(now - 600, now, now) == 1
    assert step_for(now - MAX_POINTS, now, now) == 1


def test_step_is_whole_minutes_for_long_or_old_spans() -> None:
    now = float(T0)
    assert step_for(now - MAX_POINTS - 1, now, now) == 60
    assert step_for(now - SECONDS_KEPT, now, now) == 60
    # short, but older than the seconds kept: only minutes exist there
    assert step_for(now - SECONDS_KEPT - 600, now - SECONDS_KEPT, now) == 60


@pytest.mark.parametrize("days", [1, 7, 30])
def test_long_spans_never_give_more_points_than_a_chart_can_show(days: int) -> None:
    now = float(T0)
    span = days * 86400
    step = step_for(now - span, now, now)
    assert span / step <= MAX_POINTS
    if days == 1:  # a day at one point a minute, straight from the minute rows
        assert step == 60
    else:  # beyond, one point an hour, straight from the hour rows
        assert step == 3600


# -- quantiles -------------------------------------------------------------------------


def test_quantiles_of_an_empty_histogram_are_unknown() -> None:
    assert quantiles_ms({}) == [None, None, None]
    assert quantiles_ms({}, (0.5,)) == [None]


def test_quantiles_are_within_one_percent() -> None:
    histogram = sec(100, latencies=tuple(float(ms) for ms in range(1, 101))).latency
    p50, p90, p99 = quantiles_ms(histogram)
    assert close_to(p50, 50.0)
    assert close_to(p90, 90.0)
    assert close_to(p99, 99.0)
    [p999] = quantiles_ms(histogram, (0.999,))
    assert close_to(p999, 100.0)


def test_quantiles_of_one_slow_request_in_a_hundred() -> None:
    histogram = sec(100, latencies=(10.0,) * 99 + (5000.0,)).latency
    p50, p90, p99 = quantiles_ms(histogram)
    assert close_to(p50, 10.0) and close_to(p90, 10.0) and close_to(p99, 10.0)
    assert close_to(quantiles_ms(histogram, (0.995,))[0], 5000.0)


# -- window ----------------------------------------------------------------------------


def test_window_sums_each_release_over_the_last_seconds(store: Store) -> None:
    traffic.add_seconds(
        store,
        [("hello", "r1", T0 + i, sec(1, 1 if i % 2 else 0)) for i in range(100)]
        + [("hello", "r2", T0 + 95, sec(7, 7)), ("other", "r1", T0 + 99, sec(100))],
    )
    last = window(store, "hello", 10, now=T0 + 100)
    assert set(last) == {"r1", "r2"}
    assert (last["r1"].requests, last["r1"].errors) == (10, 5)
    assert (last["r2"].requests, last["r2"].errors) == (7, 7)
    assert window(store, "hello", 10, now=T0 + 200) == {}


def test_long_windows_read_the_minute_rollups(store: Store) -> None:
    traffic.add_seconds(store, [("hello", "r1", T0 + i * 60, sec(6)) for i in range(180)])
    store.conn.execute("DELETE FROM traffic")  # past the hour of seconds kept
    end = T0 + 180 * 60
    assert window(store, "hello", 2 * 3600, now=end)["r1"].requests == 120 * 6


# -- retention -------------------------------------------------------------------------


def make_app(store: Store) -> None:
    store.ensure_app("hello", "/src/hello")
    config = parse_config(MINIMAL)
    store.new_release(
        "hello",
        source="/src/hello",
        source_kind="dir",
        git_sha=None,
        config_json=config.model_dump_json(),
        config_hash="x",
    )


def seconds_left(store: Store) -> list[int]:
    return [r[0] for r in store.conn.execute("SELECT second FROM traffic ORDER BY second")]


def minutes_left(store: Store) -> list[int]:
    return [r[0] for r in store.conn.execute("SELECT minute FROM traffic_minutes ORDER BY minute")]


def test_prune_keeps_an_hour_of_seconds_and_thirty_days_of_minutes(store: Store) -> None:
    now = T0
    ancient = now - MINUTES_KEPT - 120
    month = now - MINUTES_KEPT + 120
    traffic.add_seconds(
        store,
        [
            ("hello", "r1", second, sec(1))
            for second in (ancient, month, now - 3601, now - 3600, now - 5)
        ],
    )
    removed = prune_history(store, now)
    assert seconds_left(store) == [now - 3600, now - 5]
    assert minutes_left(store) == [month, now - 3660, now - 3600, now - 60]
    assert removed == 3 + 1 + 1  # seconds, the ancient minute and its hour
    # nothing more to do the second time
    assert prune_history(store, now) == 0


def test_prune_keeps_the_seconds_a_running_deployment_is_judged_on(store: Store) -> None:
    make_app(store)
    now = T0
    traffic.add_seconds(store, [("hello", "r1", now - s, sec(1)) for s in (9000, 7000, 4000, 10)])
    deployment = store.start_deployment(
        "hello",
        kind="deploy",
        from_release=None,
        to_release="r1",
        formation={"web": 1},
        who="test",
        state="canary",
    )
    store.update_deployment(deployment.id, started_at=now - 7200)
    prune_history(store, now)
    assert seconds_left(store) == [now - 7000, now - 4000, now - 10]
    # once it is over, the usual hour applies
    store.finish_deployment(deployment.id, "promoted")
    prune_history(store, now)
    assert seconds_left(store) == [now - 10]


def test_prune_drops_ingest_losses_older_than_thirty_days(store: Store) -> None:
    now = T0
    traffic.add_loss(store, now - MINUTES_KEPT - 1, 5, "kernel: receive buffer full")
    traffic.add_loss(store, now - 86400, 2, "HAProxy: DroppedLogs")
    prune_history(store, now)
    assert traffic.losses_since(store, 0) == [(now - 86400, 2, "HAProxy: DroppedLogs")]


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 9000), (17, 8999), (3599, 3601), (61, 7261), (3600, 7199), (100, 159)],
)
def test_totals_from_hours_minutes_and_seconds_equal_the_sum_of_the_seconds(
    store: Store, start: int, end: int
) -> None:
    base = T0 // 3600 * 3600
    traffic.add_seconds(store, [("hello", "r1", base + s, sec(1 + s % 7)) for s in range(9001)])
    got = totals(store, "hello", base + start, base + end)["r1"].requests
    assert got == sum(1 + s % 7 for s in range(start, end + 1))
