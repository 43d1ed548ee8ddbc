"""The results, rendered: plain text for the terminal, Markdown for docs, and the numbers
per deploy, rollback and naive deploy (plus a second-by-second timeline) as JSON."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from typing import Any

from bench.machine import cpu_model
from bench.zero_downtime.analysis import Timeline, Window
from bench.zero_downtime.load import PRIORITY
from bench.zero_downtime.measures import (
    accepted_at,
    client_switch,
    daemon_switch,
    finished_at,
    overhead,
)
from bench.zero_downtime.run import Results
from bench.zero_downtime.table import Table, lat, pct
from bench.zero_downtime.timings import tables

__all__ = [
    "markdown_tables",
    "raw",
    "render_markdown",
    "render_text",
    "tables",
    "text_tables",
]

# Above this, the generator could not keep its schedule even with nothing else going on.
MAX_STEADY_LAG_MS = 10.0


def machine() -> str:
    model = cpu_model()
    try:
        haproxy = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
        haproxy = " ".join(haproxy.split()[:3])
    except OSError:
        haproxy = "HAProxy ?"
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {haproxy}"
    )


def noise(results: Results) -> str:
    """Other processes' share of the machine, and whether the load generator kept its
    schedule in the steady state (if it did not, it measured itself)."""
    foreign, cpu = results.cpu.foreign, results.cpu
    share = foreign.seconds / cpu.seconds if cpu.seconds else math.nan
    top = ", ".join(
        f"{name} {sec:.1f} s" for name, sec in foreign.by_name.most_common(3) if sec >= 0.05
    )
    steal = cpu.busy([(cpu.times[0], cpu.times[-1])])[1] if cpu.times else math.nan
    lag = results.slipway.timeline.traffic(results.slipway.steady).lag_p99_ms
    kept = lag <= MAX_STEADY_LAG_MS
    quiet = results.busy_before <= 0.15 and share <= 0.05 and kept
    return (
        f"{pct(results.busy_before)} CPU busy just before the run; other processes used "
        f"{foreign.seconds:.1f} CPU-seconds during it ({pct(share)} of one CPU"
        f"{'; most: ' + top if top else ''}); CPU time stolen by the hypervisor: "
        f"{steal:.1%}; the load generator's send lag p99 in the "
        f"steady state: {lat(lag)} ms" + ("" if quiet else " — NOISY, do not trust")
    )


def context(results: Results) -> list[str]:
    o = results.options
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(results.started_at))}",
        f"slipway: commit {results.revision}",
        f"machine: {machine()}",
        f"noise: {noise(results)}",
        f"load: {o.rate:g} req/s fixed rate, {o.concurrency} connections, "
        f"{o.rounds} rounds (deploy, rollback), steady state {o.steady_seconds:g} s first "
        f"and {o.quiet_seconds:g} s after each round, "
        f"{o.settle_seconds:g} s between operations, app BOOT_SECONDS={o.boot_seconds:g}; "
        f"the load generator (Python, {o.client} HTTP client, its own process"
        f"{', at nice ' + str(PRIORITY) if results.slipway.load.prioritised else ''}) used "
        f"{results.slipway.load.cpu_share:.0%} of one CPU",
    ]


def plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def text_tables(all_tables: list[Table]) -> list[str]:
    """The tables as aligned plain text, each followed by its notes and a blank line."""
    lines = []
    for table in all_tables:
        rows = [table.headers, *([plain(c) for c in row] for row in table.rows)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(table.headers))]
        lines.append(table.title)
        for index, row in enumerate(rows):
            cells = [
                c.ljust(w) if table.aligned(i) == "l" else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
            if index == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines.extend(f"  {plain(note)}" for note in table.notes)
        lines.append("")
    return lines


def markdown_tables(all_tables: list[Table]) -> list[str]:
    """The tables as Markdown, each with a bold title and its notes as paragraphs."""
    lines = []
    for table in all_tables:
        lines += [f"**{table.title}**", ""]
        lines.append("| " + " | ".join(table.headers) + " |")
        lines.append(
            "|"
            + "|".join(
                "---" if table.aligned(i) == "l" else "---:" for i in range(len(table.headers))
            )
            + "|"
        )
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines += ["", *(f"{note}\n" for note in table.notes)]
    return lines


def text_page(title: str, said: list[str], all_tables: list[Table], leftovers: list[str]) -> str:
    """A benchmark's results as plain text: its title, what was measured how, the tables."""
    lines = [title, *said, "", *text_tables(all_tables)]
    if leftovers:
        lines.append(f"WARNING: processes left after `slipway down --all`: {leftovers}")
    return "\n".join(lines)


def markdown_page(said: list[str], all_tables: list[Table], leftovers: list[str]) -> str:
    lines = [*(f"- {line}" for line in said), "", *markdown_tables(all_tables)]
    if leftovers:
        lines.append(f"**Warning:** processes left after `slipway down --all`: {leftovers}\n")
    return "\n".join(lines).rstrip() + "\n"


def render_text(results: Results, all_tables: list[Table]) -> str:
    return text_page("Zero-downtime deploys", context(results), all_tables, results.leftovers)


def render_markdown(results: Results, all_tables: list[Table]) -> str:
    return markdown_page(context(results), all_tables, results.leftovers)


def raw(results: Results) -> dict[str, Any]:
    """Every operation's numbers, for a closer look than the tables give."""
    boot = results.costs.boot
    return {
        "options": vars(results.options),
        "boots": results.costs.boots,
        "deploys": [
            {
                "seconds": d.seconds,
                "daemon_seconds": d.daemon_seconds,
                "overhead": overhead(d, boot),
                "cli_startup": accepted_at(d, results) - d.started,
                "cli_return": d.ended - finished_at(d, results),
                "steps": {
                    e["step"]: e["data"]["seconds"]
                    for e in d.output["events"]
                    if e["status"] == "ok" and "seconds" in e["data"]
                },
                "to_release": d.deployment["to_release"],
            }
            for d in results.slipway.deploys
        ],
        "rollbacks": [
            {
                "seconds": r.seconds,
                "daemon_switch": daemon_switch(r),
                "client_switch_from_cli": client_switch(r, results) - r.started,
                "to_release": r.deployment["to_release"],
            }
            for r in results.slipway.rollbacks
        ],
        "naive": [vars(d) for d in results.baseline.deploys],
        "seconds": {
            "slipway": per_second(results, results.slipway.timeline),
            "naive": per_second(results, results.baseline.timeline),
        },
        "operations": [
            {"kind": o.kind, "started": o.started, "ended": o.ended}
            for o in results.slipway.deploys + results.slipway.rollbacks
        ]
        + [
            {"kind": "naive", "started": d.started, "ended": d.routed}
            for d in results.baseline.deploys
        ],
    }


def per_second(results: Results, timeline: Timeline) -> list[dict[str, Any]]:
    """The session second by second (monotonic start time, traffic, machine CPU busy)."""
    if not timeline.samples:
        return []
    first, last = timeline.times[0], timeline.times[-1]
    seconds = []
    for index in range(math.ceil(last - first)):
        start = first + index
        traffic = timeline.traffic([Window("s", start, start + 1.0)])
        seconds.append(
            {
                "t": round(start, 3),
                "requests": traffic.requests,
                "failed": traffic.failed,
                "p50_ms": round(traffic.p50_ms, 2),
                "p99_ms": round(traffic.p99_ms, 2),
                "max_ms": round(traffic.max_ms, 2),
                "cpu_busy": round(results.cpu.busy(traffic.windows)[0], 3),
                "p99_sent_ms": round(traffic.p99_sent_ms, 2),
                "send_lag_p99_ms": round(traffic.lag_p99_ms, 2),
            }
        )
    return seconds
