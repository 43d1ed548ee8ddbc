"""The run: an empty-home daemon (the memory baseline), the fill, the store's size, a real
daemon on the filled home (memory, timed queries), the query profiled in-process, then the
minute table extended to 30 days and queried again. Everything under one temp folder in
/tmp, deleted at the end; every daemon stopped with `slipway down --all`."""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.history import fill
from bench.history.daemon import Daemon, Memory, Timing
from bench.history.traffic import AppModel
from slipway.daemon import insight
from slipway.metrics import history
from slipway.paths import Home
from slipway.store.store import Store

BASE = "/v1/apps/{app}/metrics"


@dataclass(frozen=True)
class Options:
    hours: float = 24.0
    rounds: int = 4  # warm rounds; each queries every app once per kind
    days: int = 30  # the extended store
    profile_runs: int = 10
    seed: int = 1
    quick: bool = False


@dataclass
class DaemonRun:
    start_seconds: float = 0.0
    memory_start: Memory | None = None
    memory_after: Memory | None = None
    timings: dict[str, Timing] = field(default_factory=dict)
    cold: Timing | None = None  # the very first 24 h query
    first_per_app: Timing | None = None  # the first 24 h query of each app
    pid_gone: bool = False
    leftovers: list[str] = field(default_factory=list)


@dataclass
class Profile:
    """`history.series` and `insight.metrics` for 24 h, in this process, on the same file."""

    series_ms: list[float] = field(default_factory=list)
    metrics_ms: list[float] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)  # the JSON body, as Starlette does
    tier: str = ""  # the table a 24 h chart's points come from
    rows: int = 0  # its rows in the 24 h window, one app
    top: list[tuple[str, int, float, float]] = field(default_factory=list)  # fn, calls, tot, cum
    total_profiled: float = 0.0


@dataclass
class Results:
    options: Options
    started: float = 0.0
    finished: float = 0.0
    empty: DaemonRun = field(default_factory=DaemonRun)
    filled: fill.Filled | None = None
    apps: list[AppModel] = field(default_factory=list)
    size: fill.Size | None = None
    daemon: DaemonRun = field(default_factory=DaemonRun)
    profile: Profile = field(default_factory=Profile)
    extended_rows: int = 0
    extend_seconds: float = 0.0
    size_extended: fill.Size | None = None
    extended: DaemonRun = field(default_factory=DaemonRun)


def kinds(options: Options) -> list[tuple[str, str]]:
    """(label, query) per kind of query, for an app."""
    return [
        ("status", "/v1/status"),
        ("1s (the route's floor)", "?since=1s"),
        ("15m", "?since=15m"),
        ("1h", "?since=1h"),
        ("59m, step=1s", "?since=59m&step=1s"),
        ("24h", "?since=24h"),
        ("7d", "?since=7d"),
    ]


def path_of(query: str, app: str) -> str:
    return query if query.startswith("/") else BASE.format(app=app) + query


def run_empty(root: Path, rounds: int, result: DaemonRun) -> None:
    daemon = Daemon(Home.resolve(root / "e"))
    try:
        daemon.start()
        result.start_seconds = daemon.start_seconds
        result.memory_start = daemon.memory()
        status = result.timings.setdefault("status", Timing("status", "/v1/status"))
        for _ in range(rounds * 10):
            daemon.measure(status)
        result.memory_after = daemon.memory()
    finally:
        result.leftovers = daemon.stop()
        result.pid_gone = not _alive(daemon.pid)


def run_filled(home: Home, apps: list[str], options: Options, result: DaemonRun) -> None:
    daemon = Daemon(home)
    try:
        daemon.start()
        result.start_seconds = daemon.start_seconds
        result.memory_start = daemon.memory()
        result.cold = Timing("24h, first query", path_of("?since=24h", apps[0]))
        daemon.measure(result.cold, raw=False)
        result.first_per_app = Timing("24h, first per app", "")
        result.first_per_app.times.append(result.cold.times[0])
        for app in apps[1:]:
            first = Timing("24h", path_of("?since=24h", app))
            daemon.measure(first, raw=False)
            result.first_per_app.times.append(first.times[0])
        for _ in range(options.rounds):
            for app in apps:
                for label, query in kinds(options):
                    timing = result.timings.setdefault(label, Timing(label, query))
                    timing.path = path_of(query, app)
                    daemon.measure(timing)
        result.memory_after = daemon.memory()
    finally:
        result.leftovers = daemon.stop()
        result.pid_gone = not _alive(daemon.pid)


def run_extended(home: Home, apps: list[str], options: Options, result: DaemonRun) -> None:
    daemon = Daemon(home)
    try:
        daemon.start()
        result.start_seconds = daemon.start_seconds
        result.memory_start = daemon.memory()
        queries = [("24h", "?since=24h"), ("7d", "?since=7d"), ("30d", "?since=30d")]
        for _ in range(max(1, options.rounds // 2)):
            for app in apps:
                for label, query in queries:
                    timing = result.timings.setdefault(label, Timing(label, query))
                    timing.path = path_of(query, app)
                    daemon.measure(timing)
        result.memory_after = daemon.memory()
    finally:
        result.leftovers = daemon.stop()
        result.pid_gone = not _alive(daemon.pid)


def _alive(pid: int) -> bool:
    import psutil

    if not pid:
        return False
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def profile(db: Path, apps: list[str], runs: int) -> Profile:
    out = Profile()
    store = Store(db)
    try:
        now = time.time()
        since = now - 86400
        step = history.step_for(since, now, now)
        table, column, _ = history.tier_for(step)
        out.tier = table
        out.rows = int(
            store.conn.execute(
                f"SELECT COUNT(*) FROM {table} WHERE app = ? AND {column} >= ?",
                (apps[0], int(since) // step * step),
            ).fetchone()[0]
        )
        for i in range(runs):
            app = apps[i % len(apps)]
            t0 = time.perf_counter()
            history.series(store, app, time.time() - 86400)
            out.series_ms.append((time.perf_counter() - t0) * 1000)
            t1 = time.perf_counter()
            body = insight.metrics(store, app, {"since": "24h"})
            out.metrics_ms.append((time.perf_counter() - t1) * 1000)
            t2 = time.perf_counter()
            json.dumps(
                body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
            )
            out.encode_ms.append((time.perf_counter() - t2) * 1000)
        profiler = cProfile.Profile()
        profiler.enable()
        insight.metrics(store, apps[0], {"since": "24h"})
        profiler.disable()
    finally:
        store.close()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    out.total_profiled = float(stats.total_tt)  # type: ignore[attr-defined]
    entries = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    for (filename, line, name), (_, calls, tottime, cumtime, _) in ranked:
        where = f"{Path(filename).name}:{line}" if line else filename
        out.top.append((f"{name} ({where})", int(calls), float(tottime), float(cumtime)))
    return out


def run(options: Options) -> Results:
    results = Results(options, started=time.time())
    root = Path(tempfile.mkdtemp(prefix="swh-", dir="/tmp"))
    try:
        print("daemon on an empty home (memory baseline)", flush=True)
        run_empty(root, options.rounds, results.empty)
        home = Home.resolve(root / "h")
        print(f"filling {options.hours:g} simulated hours for 10 apps", flush=True)
        results.filled, results.apps = fill.fill(home, options.hours, options.seed)
        results.size = fill.size(home.db)
        names = [a.name for a in results.apps]
        print("daemon on the filled home: memory and queries", flush=True)
        run_filled(home, names, options, results.daemon)
        print("24 h query in-process: timing and cProfile", flush=True)
        results.profile = profile(home.db, names, options.profile_runs)
        print(f"minute table extended to {options.days} days", flush=True)
        results.extended_rows, results.extend_seconds = fill.extend_to_days(home.db, options.days)
        results.size_extended = fill.size(home.db)
        run_extended(home, names, options, results.extended)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results.finished = time.time()
    return results
