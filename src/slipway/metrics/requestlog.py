"""Each app's request log: HAProxy's per-request lines as received, with the time the daemon
got them, rotated by size and deleted by age. Queried by `slipway requests`.

A line is "<unix time> <LOG_FORMAT line>": appending the raw line costs next to nothing at
tens of thousands of requests per second; it is parsed only when queried."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from slipway.metrics.ingest import BACKEND_PREFIX, Request, parse

LOG_NAME = "requests.log"


@dataclass(frozen=True)
class Retention:
    max_bytes: int = 10 * 1024 * 1024
    keep: int = 3
    max_age: float = 7 * 86400.0


class RequestLogs:
    """Appends lines to each app's request log; `flush()` writes them out and rotates."""

    def __init__(self, directory_of: Callable[[str], Path]) -> None:
        self.directory_of = directory_of
        self.retention: dict[str, Retention] = {}
        self.files: dict[str, IO[str]] = {}
        self.pending: dict[str, list[str]] = {}

    def add(self, at: float, line: str) -> None:
        # the app name without parsing the whole line: "slipway app_<name> …"
        start = line.find(BACKEND_PREFIX)
        if start < 0:
            return
        start += len(BACKEND_PREFIX)
        app = line[start : line.find(" ", start)]
        if app:
            self.pending.setdefault(app, []).append(f"{at:.3f} {line}\n")

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for app, lines in pending.items():
            directory = self.directory_of(app)
            if not directory.is_dir():
                continue  # not an app of ours (or removed)
            handle = self.files.get(app)
            if handle is None:
                handle = self.files[app] = open(directory / LOG_NAME, "a", encoding="utf-8")  # noqa: SIM115
            handle.writelines(lines)
            handle.flush()
            if handle.tell() >= self.retention.get(app, Retention()).max_bytes:
                handle.close()
                del self.files[app]
                rotate(directory, self.retention.get(app, Retention()).keep)

    def expire(self, now: float | None = None) -> None:
        """Delete rotated files older than each app's max_age."""
        moment = now if now is not None else time.time()
        for app, retention in self.retention.items():
            for path in log_files(self.directory_of(app)):
                if path.name != LOG_NAME and path.stat().st_mtime < moment - retention.max_age:
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        self.flush()
        for handle in self.files.values():
            handle.close()
        self.files.clear()


def rotate(directory: Path, keep: int) -> None:
    current = directory / LOG_NAME
    for index in range(keep - 1, 0, -1):
        older = directory / f"{LOG_NAME}.{index}"
        if older.exists():
            os.replace(older, directory / f"{LOG_NAME}.{index + 1}")
    if keep > 0:
        os.replace(current, directory / f"{LOG_NAME}.1")
    else:
        current.unlink(missing_ok=True)
    for extra in directory.glob(f"{LOG_NAME}.*"):
        suffix = extra.suffix[1:]
        if suffix.isdigit() and int(suffix) > keep:
            extra.unlink(missing_ok=True)


def log_files(directory: Path) -> list[Path]:
    """Oldest first; the live file last."""
    rotated = [p for p in directory.glob(f"{LOG_NAME}.*") if p.suffix[1:].isdigit()]
    rotated.sort(key=lambda p: int(p.suffix[1:]), reverse=True)
    current = directory / LOG_NAME
    return [*rotated, current] if current.exists() else rotated


@dataclass(frozen=True)
class Entry:
    time: float
    request: Request


@dataclass(frozen=True)
class Query:
    since: float = 0.0
    status: str | None = None  # "5xx", "404", "error" (5xx and failed connections)
    release: str | None = None
    path: str | None = None  # a substring of the path
    limit: int = 100

    def matches(self, entry: Entry) -> bool:
        request = entry.request
        if entry.time < self.since:
            return False
        if self.release is not None and request.release != self.release:
            return False
        if self.path is not None and self.path not in request.path:
            return False
        return self.status is None or status_matches(self.status, request)


def status_matches(wanted: str, request: Request) -> bool:
    failed = request.termination[:1] == "S" or request.status < 0
    if wanted == "error":
        return failed or request.status >= 500
    if len(wanted) == 3 and wanted.endswith("xx") and wanted[0].isdigit():
        return request.status // 100 == int(wanted[0]) or (wanted == "5xx" and failed)
    return str(request.status) == wanted


def valid_status(wanted: str) -> bool:
    if wanted == "error":
        return True
    if len(wanted) == 3 and wanted.endswith("xx"):
        return wanted[0] in "12345"
    return wanted.isdigit() and 100 <= int(wanted) <= 599


def read(directory: Path, query: Query) -> list[Entry]:
    """The newest `limit` matching requests, oldest first."""
    found: deque[Entry] = deque(maxlen=query.limit)
    for path in log_files(directory):
        try:
            if path.stat().st_mtime < query.since:
                continue  # nothing in it is recent enough
        except OSError:
            continue
        for entry in _entries(path):
            if query.matches(entry):
                found.append(entry)
    return list(found)


def _entries(path: Path) -> Iterator[Entry]:
    try:
        handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError:
        return
    with handle:
        for raw in handle:
            at, _, line = raw.rstrip("\n").partition(" ")
            request = parse(line)
            if request is None:
                continue
            try:
                yield Entry(float(at), request)
            except ValueError:
                continue
