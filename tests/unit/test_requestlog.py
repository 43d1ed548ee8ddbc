"""Each app's request log on disk: appending, rotation by size, expiry by age, and queries."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from slipway.metrics.requestlog import (
    LOG_NAME,
    Query,
    RequestLogs,
    Retention,
    log_files,
    read,
    valid_status,
)

DAY = 86400.0
BASE = float(int(time.time()) - 3600)  # received an hour ago: files written now are newer


def line(
    status: int = 200,
    release: str = "r1",
    path: str = "/items",
    termination: str = "----",
    app: str = "hello",
) -> str:
    return (
        f"slipway app_{app} {release}-web-1 {status} 0 0 0 1 12 150 {termination} "
        f"10.0.0.7 GET {path}"
    )


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    for name in ("hello", "shop"):
        (tmp_path / "apps" / name).mkdir(parents=True)
    return tmp_path / "apps"


def request_logs(apps: Path) -> RequestLogs:
    return RequestLogs(lambda app: apps / app)


def statuses(directory: Path, query: Query) -> list[int]:
    return [entry.request.status for entry in read(directory, query)]


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- writing ---------------------------------------------------------------------------


def test_lines_go_to_their_apps_log_with_the_time_received(apps: Path) -> None:
    logs = request_logs(apps)
    logs.add(1714564800.1234, line(200))
    logs.add(1714564801.5, line(404, app="shop"))
    logs.add(1714564802.0, line(500))
    assert not (apps / "hello" / LOG_NAME).exists()  # written on flush, in batches
    logs.flush()
    assert (apps / "hello" / LOG_NAME).read_text() == (
        f"1714564800.123 {line(200)}\n1714564802.000 {line(500)}\n"
    )
    assert (apps / "shop" / LOG_NAME).read_text() == f"1714564801.500 {line(404, app='shop')}\n"
    logs.close()


def test_lines_of_unknown_apps_and_other_proxies_are_dropped(apps: Path) -> None:
    logs = request_logs(apps)
    logs.add(BASE, line(app="ghost"))  # no folder: not an app of ours (or removed)
    logs.add(BASE, "slipway stats <NOSRV> 200 0 0 0 1 2 150 ---- 127.0.0.1 GET /stats")
    logs.add(BASE, line())
    logs.close()
    assert not (apps / "ghost").exists()
    assert names(apps / "hello") == [LOG_NAME]
    assert names(apps / "shop") == []
    assert len(read(apps / "hello", Query())) == 1


def test_close_writes_what_is_pending(apps: Path) -> None:
    logs = request_logs(apps)
    logs.add(BASE, line(201))
    logs.close()
    assert statuses(apps / "hello", Query()) == [201]


def test_a_restarted_daemon_appends_to_the_same_log(apps: Path) -> None:
    first = request_logs(apps)
    first.add(BASE, line(200))
    first.close()
    second = request_logs(apps)
    second.add(BASE + 1, line(201))
    second.close()
    assert statuses(apps / "hello", Query()) == [200, 201]


# -- rotation and expiry ---------------------------------------------------------------


def test_logs_rotate_by_size_and_keep_only_the_newest_files(apps: Path) -> None:
    directory = apps / "hello"
    logs = request_logs(apps)
    logs.retention["hello"] = Retention(max_bytes=1, keep=2)  # every flush rotates
    for batch, status in enumerate((201, 202, 203)):
        logs.add(BASE + batch, line(status))
        logs.add(BASE + batch + 0.5, line(status))
        logs.flush()
    assert names(directory) == [f"{LOG_NAME}.1", f"{LOG_NAME}.2"]  # the first batch is gone
    assert [p.name for p in log_files(directory)] == [f"{LOG_NAME}.2", f"{LOG_NAME}.1"]
    logs.retention["hello"] = Retention(max_bytes=10_000, keep=2)
    logs.add(BASE + 10, line(204))
    logs.flush()
    # oldest first, across rotated files and the live one
    assert statuses(directory, Query()) == [202, 202, 203, 203, 204]
    logs.close()


def test_rotation_waits_for_the_size_limit(apps: Path) -> None:
    directory = apps / "hello"
    logs = request_logs(apps)
    one_line = len(f"{BASE:.3f} {line()}\n")
    logs.retention["hello"] = Retention(max_bytes=3 * one_line, keep=3)
    for i in range(2):
        logs.add(BASE + i, line())
        logs.flush()
    assert names(directory) == [LOG_NAME]
    logs.add(BASE + 3, line())
    logs.flush()  # now at the limit
    assert names(directory) == [f"{LOG_NAME}.1"]
    logs.add(BASE + 4, line())
    logs.flush()
    assert names(directory) == [LOG_NAME, f"{LOG_NAME}.1"]
    assert len(read(directory, Query())) == 4
    logs.close()


def test_keep_zero_keeps_no_rotated_files(apps: Path) -> None:
    logs = request_logs(apps)
    logs.retention["hello"] = Retention(max_bytes=1, keep=0)
    logs.add(BASE, line())
    logs.flush()
    assert names(apps / "hello") == []
    logs.close()


def rotated_three_times(apps: Path, max_age: float) -> RequestLogs:
    """hello: requests.log.2 and .1 (rotated) and requests.log (live)."""
    logs = request_logs(apps)
    logs.retention["hello"] = Retention(max_bytes=1, keep=5, max_age=max_age)
    for i in range(2):
        logs.add(BASE + i, line(200 + i))
        logs.flush()
    logs.retention["hello"] = Retention(max_bytes=10_000, keep=5, max_age=max_age)
    logs.add(BASE + 5, line(205))
    logs.flush()
    return logs


def set_age(path: Path, now: float, age: float) -> None:
    os.utime(path, (now - age, now - age))


def test_expire_deletes_rotated_files_older_than_max_age(apps: Path) -> None:
    directory = apps / "hello"
    logs = rotated_three_times(apps, max_age=7 * DAY)
    now = time.time()
    set_age(directory / f"{LOG_NAME}.2", now, 8 * DAY)
    set_age(directory / f"{LOG_NAME}.1", now, 6 * DAY)
    set_age(directory / LOG_NAME, now, 30 * DAY)  # the live file is never expired
    logs.expire(now)
    assert names(directory) == [LOG_NAME, f"{LOG_NAME}.1"]
    # the same files later: .1 is now past its age too
    logs.expire(now + 2 * DAY)
    assert names(directory) == [LOG_NAME]
    logs.close()


def test_expire_follows_each_apps_own_retention(apps: Path) -> None:
    logs = request_logs(apps)
    logs.retention["hello"] = Retention(max_bytes=1, keep=3, max_age=DAY)
    logs.retention["shop"] = Retention(max_bytes=1, keep=3, max_age=30 * DAY)
    for app in ("hello", "shop"):
        for i in range(2):
            logs.add(BASE + i, line(app=app))
            logs.flush()
    now = time.time()
    for app in ("hello", "shop"):
        for path in (apps / app).iterdir():
            set_age(path, now, 2 * DAY)
    logs.expire(now)
    assert names(apps / "shop") == [f"{LOG_NAME}.1", f"{LOG_NAME}.2"]
    assert names(apps / "hello") != names(apps / "shop")
    assert f"{LOG_NAME}.2" not in names(apps / "hello")
    logs.close()


def test_expire_deletes_an_old_rotated_file_of_an_idle_app(apps: Path) -> None:
    directory = apps / "hello"
    logs = request_logs(apps)
    logs.retention["hello"] = Retention(max_bytes=1, keep=3, max_age=DAY)
    logs.add(BASE, line())
    logs.flush()  # rotated at once; the app then gets no more requests
    assert names(directory) == [f"{LOG_NAME}.1"]
    now = time.time()
    set_age(directory / f"{LOG_NAME}.1", now, 10 * DAY)
    logs.expire(now)
    assert names(directory) == []  # requests (client addresses) kept past max_age
    logs.close()


# -- queries ---------------------------------------------------------------------------

MIXED = [
    line(200, "r1", "/items"),
    line(404, "r1", "/missing"),
    line(500, "r2", "/items/3"),
    line(503, "r2", "/items/4", "SC--"),  # HAProxy could not connect
    line(-1, "r2", "/slow", "----"),  # no answer at all
    line(200, "r1", "/items", "CD--"),  # the client went away
    line(302, "r1", "/login"),
]


@pytest.fixture
def mixed(apps: Path) -> Path:
    logs = request_logs(apps)
    for i, text in enumerate(MIXED):
        logs.add(BASE + i, text)
    logs.close()
    return apps / "hello"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, [200, 404, 500, 503, -1, 200, 302]),
        ("5xx", [500, 503, -1]),
        ("error", [500, 503, -1]),
        ("4xx", [404]),
        ("404", [404]),
        ("2xx", [200, 200]),
        ("3xx", [302]),
        ("302", [302]),
        ("201", []),
    ],
)
def test_query_by_status(mixed: Path, status: str | None, expected: list[int]) -> None:
    assert statuses(mixed, Query(status=status)) == expected


def test_query_by_release_path_and_time(mixed: Path) -> None:
    assert statuses(mixed, Query(release="r2")) == [500, 503, -1]
    assert [e.request.path for e in read(mixed, Query(path="/items"))] == [
        "/items",
        "/items/3",
        "/items/4",
        "/items",
    ]
    assert statuses(mixed, Query(since=BASE + 5)) == [200, 302]
    assert statuses(mixed, Query(release="r1", status="error")) == []
    assert statuses(mixed, Query(path="/items", status="5xx")) == [500, 503]


def test_query_keeps_the_newest_matches_oldest_first(mixed: Path) -> None:
    entries = read(mixed, Query(limit=2))
    assert [e.request.status for e in entries] == [200, 302]
    assert entries[0].time < entries[1].time
    assert entries[1].time == pytest.approx(BASE + 6, abs=0.001)
    assert entries[1].request.release == "r1"
    assert read(mixed, Query(limit=0)) == []


def test_query_skips_corrupt_lines(apps: Path) -> None:
    directory = apps / "hello"
    (directory / LOG_NAME).write_text(
        f"{BASE:.3f} {line(200)}\n"
        "garbage\n"
        f"notatime {line(500)}\n"
        f"{BASE + 1:.3f} {line(201)}"  # a last line cut short of its newline
    )
    assert statuses(directory, Query()) == [200, 201]


def test_query_of_an_app_without_a_log(apps: Path) -> None:
    assert read(apps / "shop", Query()) == []


@pytest.mark.parametrize(
    "status", ["error", "1xx", "2xx", "3xx", "4xx", "5xx", "100", "404", "599"]
)
def test_valid_statuses(status: str) -> None:
    assert valid_status(status)


@pytest.mark.parametrize(
    "status", ["", "6xx", "0xx", "xxx", "5XX", "5xxx", "4x", "99", "600", "abc", "errors", "-1"]
)
def test_invalid_statuses(status: str) -> None:
    assert not valid_status(status)
