"""The results as Markdown: the fill, the store's size, the queries against a real daemon,
its memory, where a 24 h query spends its time, and the verdict."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time

from bench.history.daemon import REPO, SETTLE, Memory, Timing
from bench.history.run import DaemonRun, Results
from bench.history.traffic import APPS, CANARY_STEPS, STEP_SECONDS, TROUGH
from bench.machine import cpu_model
from slipway.metrics.history import MAX_POINTS, MINUTES_KEPT, SECONDS_KEPT

TARGET_MS = 100.0
HISTORY_PATH = ("src/slipway/metrics/", "src/slipway/store/", "src/slipway/daemon/insight.py")


def machine() -> str:
    model = cpu_model()
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def revision() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.rstrip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    files = sorted({ln[3:] for ln in git("status", "--porcelain").splitlines()})
    if not files:
        return head
    named = [f for f in files if f.startswith(HISTORY_PATH)]
    return (
        f"{head} + {len(files)} uncommitted files, among them on the history path: "
        f"{', '.join(named) or 'none'}"
    )


def mb(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def kb(value: float) -> str:
    return f"{value / 2**10:.0f} KiB" if value < 2**20 else mb(value)


def ms(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def mem(value: Memory | None) -> tuple[str, str]:
    if value is None:
        return "–", "–"
    return mb(value.rss), (mb(value.uss) if value.uss is not None else "n/a")


def verdict(results: Results) -> tuple[bool, str]:
    timing = results.daemon.timings.get("24h")
    if timing is None or not timing.times:
        return False, "no 24 h query was measured"
    median = timing.median() * 1000
    return median < TARGET_MS, (
        f"warm median {median:.1f} ms over {len(timing.times)} queries across "
        f"{len(results.apps)} apps (p95 {timing.p95() * 1000:.1f} ms, first query "
        f"{ms(results.daemon.cold.times[0]) if results.daemon.cold else '–'})"
    )


def fill_lines(results: Results) -> list[str]:
    f = results.filled
    assert f is not None
    return [
        "| fill | value |",
        "|---|---:|",
        f"| simulated span | {f.seconds / 3600:.2f} h (ends at the real time the fill ended) |",
        f"| requests simulated / of them errors | {f.requests:,} / {f.errors:,} "
        f"({f.errors / max(1, f.requests):.2%}) |",
        f"| deployments recorded (canary, failed canary, blue-green, rollback) | {f.deployments} |",
        f"| `add_seconds` calls (one per simulated second) / rows handed in | "
        f"{f.write_calls:,} / {f.rows:,} |",
        f"| fill wall time | {f.wall:.0f} s |",
        f"| · in `add_seconds` | {f.write:.0f} s: {f.write / max(1, f.write_calls) * 1000:.2f} "
        f"ms per call (slowest {f.slowest_write * 1000:.0f} ms), i.e. "
        f"{f.write / max(1, f.seconds):.2%} of a core in a daemon recording this traffic |",
        f"| · in `history.prune` (every simulated minute) | {f.prune:.1f} s |",
        f"| · simulating the traffic (numpy) | {f.generate:.0f} s |",
    ]


TABLE_LABELS = {
    "traffic": f"1 s, last {SECONDS_KEPT // 3600} h kept",
    "traffic_minutes": f"1 min, {MINUTES_KEPT // 86400} days kept",
    "traffic_hours": f"1 h, {MINUTES_KEPT // 86400} days kept",
}


def size_lines(results: Results) -> list[str]:
    s, f = results.size, results.filled
    assert s is not None and f is not None
    apps = len(results.apps)
    days = f.seconds / 86400
    seconds_b = s.table_bytes.get("traffic", 0)
    growing = sum(b for t, b in s.table_bytes.items() if t != "traffic")
    other = s.total - sum(s.table_bytes.values())
    per_app_day = growing / (apps * days)
    kept_days = MINUTES_KEPT / 86400
    projected = seconds_b + per_app_day * apps * kept_days + other
    lines = [
        "| store | rows | bytes | per row |",
        "|---|---:|---:|---:|",
        f"| `state.db` + `-wal` after `wal_checkpoint(TRUNCATE)` | | {mb(s.total)} "
        f"(wal {kb(s.wal_bytes)}) | |",
    ]
    for table, rows in s.tables.items():
        used = s.table_bytes[table]
        lines.append(
            f"| · `{table}` ({TABLE_LABELS.get(table, '')}), with its indexes | {rows:,} | "
            f"{mb(used)} | {used / max(1, rows):.0f} B |"
        )
    lines += [
        f"| · everything else (apps, releases, deployments, free pages {kb(s.free_bytes)}) | | "
        f"{kb(other)} | |",
        f"| bytes per app-day: whole store ÷ (apps × simulated days) / minute + hour history "
        f"| | {kb(s.total / (apps * days))} / {kb(per_app_day)} | |",
        f"| **at {kept_days:g} days, extrapolated** (1 h of seconds + {kept_days:g} × the minute "
        f"and hour history per day, {apps} apps) | | **{mb(projected)}** | |",
    ]
    e = results.size_extended
    if e is not None:
        lines.append(
            f"| at {results.options.days} days, measured: minute and hour rows copied back in "
            f"time (+{results.extended_rows:,} rows in {results.extend_seconds:.0f} s, not the "
            f"write path) | {sum(e.tables.values()):,} | {mb(e.total)} | |"
        )
    return lines


HEADER = [
    "| `GET /v1/apps/<app>/metrics` | queries | step × points | releases | body | "
    "httpx: median | p95 | max | no stall: median | p95 | vs 15m | vs 1s | target < 100 ms |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
]


def query_rows(run: DaemonRun, base: Timing | None, floor: Timing | None) -> list[str]:
    rows = []
    for label, t in run.timings.items():
        raw = t.median(raw=True)
        vs_base = f"{raw / base.median(raw=True):.1f}×" if base and base.raw_times else "–"
        vs_floor = f"{raw / floor.median(raw=True):.1f}×" if floor and floor.raw_times else "–"
        target = ""
        if label == "24h":
            target = "PASS" if t.median() * 1000 < TARGET_MS else "FAIL"
        shape = f"{t.step} s × {t.points:,}" if t.points else "–"
        rows.append(
            f"| {label} | {len(t.times)} | {shape} | {t.releases or '–'} | {kb(t.bytes)} | "
            f"{ms(t.median())} | {ms(t.p95())} | {ms(t.worst())} | {ms(raw)} | "
            f"{ms(t.p95(raw=True))} | {vs_base} | {vs_floor} | {target} |"
        )
    return rows


def query_lines(results: Results) -> list[str]:
    d = results.daemon
    base, floor = d.timings.get("15m"), d.timings.get("1s (the route's floor)")
    lines = list(HEADER)
    if d.cold is not None:
        c = d.cold
        lines.append(
            f"| 24h, the daemon's first query (cold) | 1 | {c.step} s × {c.points:,} | "
            f"{c.releases} | {kb(c.bytes)} | {ms(c.times[0])} | | | | | | | "
            f"{'PASS' if c.times[0] * 1000 < TARGET_MS else 'FAIL'} |"
        )
    if d.first_per_app is not None:
        t = d.first_per_app
        lines.append(
            f"| 24h, first query of each app | {len(t.times)} | | | | {ms(t.median())} | "
            f"{ms(t.p95())} | {ms(t.worst())} | | | | | |"
        )
    lines += query_rows(d, base, floor)
    empty = results.empty.timings.get("status")
    if empty is not None and empty.times:
        lines.append(
            f"| status, on the empty home's daemon | {len(empty.times)} | – | – | "
            f"{kb(empty.bytes)} | {ms(empty.median())} | {ms(empty.p95())} | "
            f"{ms(empty.worst())} | {ms(empty.median(raw=True))} | {ms(empty.p95(raw=True))} "
            "| | | |"
        )
    ext = results.extended
    if ext.timings:
        lines += [
            "",
            f"On the store extended to {results.options.days} days (same daemon code, "
            "restarted on the extended file; ratios against the filled home's 15m and 1s):",
            "",
            *HEADER,
            *query_rows(ext, base, floor),
        ]
    return lines


def memory_lines(results: Results) -> list[str]:
    rows = [
        "| daemon memory | RSS | USS |",
        "|---|---:|---:|",
    ]
    for name, run, after in (
        ("empty home (baseline)", results.empty, "after its status queries"),
        ("filled home", results.daemon, "after the queries"),
        (f"{results.options.days}-day home", results.extended, "after the queries"),
    ):
        if run.memory_start is None:
            continue
        rss, uss = mem(run.memory_start)
        rows.append(f"| {name}: {SETTLE:g} s after start | {rss} | {uss} |")
        rss, uss = mem(run.memory_after)
        rows.append(f"| {name}: {after} | {rss} | {uss} |")
    e, f = results.empty, results.daemon
    if e.memory_after and f.memory_after and e.memory_start and f.memory_start:
        rows.append(
            f"| filled − empty, after start / after queries (RSS) | "
            f"{(f.memory_start.rss - e.memory_start.rss) / 2**20:+.1f} / "
            f"{(f.memory_after.rss - e.memory_after.rss) / 2**20:+.1f} MiB | |"
        )
    return rows


def profile_lines(results: Results) -> list[str]:
    p = results.profile
    if not p.series_ms:
        return []
    med = sorted(p.series_ms)[len(p.series_ms) // 2]
    med_metrics = sorted(p.metrics_ms)[len(p.metrics_ms) // 2]
    med_encode = sorted(p.encode_ms)[len(p.encode_ms) // 2]
    lines = [
        f"In the benchmark's process, on the same file, {len(p.series_ms)} runs across apps "
        f"(median): `history.series(24h)` {med:.1f} ms, `insight.metrics(since=24h)` "
        f"{med_metrics:.1f} ms, encoding its JSON body {med_encode:.1f} ms. A 24 h chart's "
        f"points come from `{p.tier}` ({p.rows:,} rows for one app).",
        "",
        f"cProfile of one `insight.metrics(since=24h)` ({p.total_profiled * 1000:.0f} ms under "
        "the profiler), by own time:",
        "",
        "| function | calls | own time | cumulative |",
        "|---|---:|---:|---:|",
    ]
    for name, calls, tottime, cumtime in p.top:
        lines.append(
            f"| `{name}` | {calls:,} | {tottime * 1000:.1f} ms | {cumtime * 1000:.1f} ms |"
        )
    return lines


STALL = 0.02  # s: httpx slower than the raw client by this much on the floor route


def stall_note(results: Results) -> str:
    """httpx against the raw client on the route's floor: a delayed-ACK stall shows as a
    constant ~40 ms on small answers."""
    floor = results.daemon.timings.get("1s (the route's floor)")
    text = (
        "**httpx** is what a client sees. **No stall**: the same query from a raw socket "
        "client that acknowledges every segment at once (TCP_QUICKACK), so a response whose "
        "body waits in Nagle's algorithm for the ACK of its headers (a listener without "
        "TCP_NODELAY; the client's kernel delays that ACK by up to 40 ms) is not held up. "
    )
    if floor is None or not floor.raw_times:
        return text
    gap = floor.median() - floor.median(raw=True)
    if gap > STALL:
        return text + (
            f"Here httpx was {gap * 1000:.0f} ms slower on the floor route: the daemon's "
            "TCP listener stalls small answers; check TCP_NODELAY on its accepted sockets "
            "(`daemon/web.py` `bind()`). Ratios (vs 15m, vs 1s) use the no-stall medians."
        )
    return text + (
        f"Here the two agree within {abs(gap) * 1000:.1f} ms on the floor route: no stall "
        "(the listener sets TCP_NODELAY since 8db32b6; before, every small answer took "
        "~44 ms). Ratios (vs 15m, vs 1s) use the no-stall medians."
    )


def render(results: Results, command: str, others: list[str]) -> str:
    ok, why = verdict(results)
    f = results.filled
    assert f is not None
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.started))
    peaks = [p for _, p, _, _ in APPS]
    releases = sum(len(a.releases) for a in results.apps)
    leftovers = results.empty.leftovers + results.daemon.leftovers + results.extended.leftovers
    runs = [r for r in (results.empty, results.daemon, results.extended) if r.memory_start]
    gone = all(r.pid_gone for r in runs)
    steps = ", ".join(f"{s:.0%}" for s in CANARY_STEPS)
    lines = [
        "# The embedded metrics history after 24 h of traffic for 10 apps",
        "",
        f"- date: {started}, {results.finished - results.started:.0f} s",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- revision: {revision()}",
        f"- traffic: {len(results.apps)} apps peaking at {min(peaks):g}–{max(peaks):g} req/s "
        f"(daily cosine, trough {TROUGH:.0%} of the peak at 04:00 UTC, Poisson per second), "
        f"{releases} releases; each app's r2 by a canary ({steps}, {STEP_SECONDS // 60} min "
        "each: two releases share traffic), some a "
        "third release (promoted, failed in its canary at 5% errors, or blue-green then rolled "
        "back by hand); 5xx 0.05–0.6% per release, 4xx 3%, aborts 0.3%; lognormal latencies "
        "in whole ms, medians 12–250 ms, slower at the peak",
        "- written through the daemon's own path: `traffic.add_seconds` once per simulated "
        "second with every app's rows, `history.prune(now=simulated)` every simulated minute",
        f"- queries: the real daemon (`slipway up --http 127.0.0.1:0`, HAProxy running), httpx "
        f"with keep-alive over its TCP listener, the body read in full; "
        f"{results.options.rounds} rounds, each every app × every kind in turn",
        f"- target: a 24 h chart query under {TARGET_MS:g} ms: **{'PASS' if ok else 'FAIL'}** "
        f"({why})",
        f"- daemons stopped with `slipway down --all`; PIDs gone: "
        f"{'yes' if gone else 'NO'}; killed afterwards: {'; '.join(leftovers) or 'none'}",
    ]
    if others:
        lines.append(f"- other benchmarks running at the start: {'; '.join(others)}")
    if f.seconds < 86400:
        lines.append(
            f"- **a short run**: only {f.seconds / 3600:.1f} simulated hours, so the 24 h and "
            "7 d queries of the filled home read that much history; see the extended store "
            "for full days"
        )
    lines += [
        "",
        *fill_lines(results),
        "",
        *size_lines(results),
        "",
        *query_lines(results),
        "",
        "Rows: `status` is `GET /v1/status`, the floor of an API round trip; `1s` the metrics "
        "route with next to no data (the app, its deployment markers, one second), the floor "
        "of this route. "
        f"Step and points are the daemon's own choice (`history.step_for`: 1 s only while the "
        f"span is within the last hour and at most {MAX_POINTS} points, as 15m; then whole "
        "minutes, then whole hours); `59m, step=1s` is the finest chart the seconds table "
        "gives (3,540 points). Cold: the first query after the daemon started, with the file "
        "in the OS page cache (it was just written) but not in SQLite's.",
        "",
        stall_note(results),
        "",
        *memory_lines(results),
        "",
        *profile_lines(results),
    ]
    return "\n".join(lines)
