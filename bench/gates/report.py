"""The results: one table per part, as Markdown with padded columns (for the terminal and
for bench/results/gates.md alike)."""

from __future__ import annotations

import statistics
import time
from functools import reduce

from bench.gates.run import LABELS, STEPS, Check, Results
from bench.zero_downtime.report import machine
from bench.zero_downtime.table import Table, verdict
from slipway.config.gates import PerformanceGate

DEFAULTS = PerformanceGate()

SCANS_TARGET = 10.0  # seconds, the `gates` step with every scan on


def of(checks: list[Check], config: str) -> list[Check]:
    return [c for c in checks if c.config == config]


def row(name: str, values: list[float], fmt: str = "{:.2f}", *extra: str) -> list[str]:
    if not values:
        return [name, "-", "-", "-", *extra]
    low, mid, high = min(values), statistics.median(values), max(values)
    return [name, *(fmt.format(v) for v in (low, mid, high)), *extra]


def overhead(results: Results, config: str) -> str:
    """Median (min..max) of the per-round differences from the baseline's check."""
    base = {c.round: c.wall for c in of(results.checks, "baseline")}
    diffs = [c.wall - base[c.round] for c in of(results.checks, config) if c.round in base]
    if config == "baseline" or not diffs:
        return ""
    return f"{statistics.median(diffs):+.2f} s ({min(diffs):+.2f}..{max(diffs):+.2f})"


def overhead_table(results: Results) -> Table:
    table = Table(
        f"Part 1 — `slipway check` per configuration, {results.runs} runs each (seconds)",
        ["", "min", "median", "max", "overhead vs (a), per round", "status"],
        align="lrrrll",
    )
    for config in ("baseline", "scans", "all"):
        checks = of(results.checks, config)
        failed = sum(not c.ok for c in checks)
        status = f"{failed} of {len(checks)} failed" if failed else "ok"
        table.rows.append(
            row(
                f"**{LABELS[config]}**: check (CLI)",
                [c.wall for c in checks],
                "{:.2f}",
                overhead(results, config),
                status,
            )  # fmt: skip
        )
        for step in STEPS:
            values = [c.steps[step] for c in checks if step in c.steps]
            if values:
                table.rows.append(row(f"  step {step}", values, "{:.2f}", "", ""))
        for name in [g["gate"] for g in checks[0].gates] if checks else []:
            found = [g for c in checks if (g := c.gate(name)) is not None]
            statuses = "/".join(sorted({g["status"] for g in found}))
            seconds = [float(g["seconds"]) for g in found if g["seconds"] is not None]
            table.rows.append(row(f"    gate {name}", seconds, "{:.2f}", "", statuses))
    scans = [c.steps["gates"] for c in of(results.checks, "scans") if "gates" in c.steps]
    ok = bool(scans) and max(scans) < SCANS_TARGET
    table.notes.append(
        f"**Target**: the scans (step `gates` of (b)) under {SCANS_TARGET:g} s in every run: "
        f"max {max(scans, default=float('nan')):.2f} s → **{verdict(ok)}**. The scans run "
        "together (gate times overlap); the unit test gate runs after them, the performance "
        "gate in step `perf` once the candidate is healthy."
    )
    return table


def noise_table(results: Results) -> Table:
    checks = of(results.checks, "perf")
    found = [(c, g) for c in checks if (g := c.gate("performance")) is not None]
    evidence = [g["evidence"] for _, g in found if g["evidence"].get("stable")]

    def pick(*keys: str) -> list[float]:
        return [float(reduce(lambda d, k: d[k], keys, e)) for e in evidence]

    def ratio(q: str) -> list[float]:
        return [e["candidate"][q] / e["stable"][q] for e in evidence if e["stable"][q] > 0]

    table = Table(
        f"Part 2 — the performance gate alone on an identical release, {len(checks)} checks",
        ["", "min", "median", "max"],
    )
    table.rows = [
        row("p50 ratio (candidate / stable)", ratio("p50"), "{:.3f}"),
        row("**p95 ratio** (candidate / stable)", ratio("p95"), "{:.3f}"),
        row("p99 ratio (candidate / stable)", ratio("p99"), "{:.3f}"),
        row("stable p95 (ms)", pick("stable", "p95")),
        row("candidate p95 (ms)", pick("candidate", "p95")),
        row("generator rate (req/s, both releases)", pick("load", "rate"), "{:.0f}"),
        row("generator CPU (share of one core)", pick("load", "cpu"), "{:.0%}"),
        row("load (s)", pick("load", "seconds")),
        row("gate (s)", [float(g["seconds"]) for _, g in found]),
        row("step perf (s)", [c.steps["perf"] for c in checks if "perf" in c.steps]),
        row("check (CLI, s)", [c.wall for c in checks]),
    ]
    failed = sum(g["status"] == "failed" for _, g in found)
    # (c)'s releases are identical to the stable one too: their performance gates count.
    also = [g for c in of(results.checks, "all") if (g := c.gate("performance")) is not None]
    also_failed = sum(g["status"] == "failed" for g in also)
    ok = failed == also_failed == 0 and len(found) == len(checks)
    table.notes.append(
        f"**Target**: no failed gate on an identical release: {failed} of {len(found)} failed "
        f"here, {also_failed} of {len(also)} in part 1 (c) → **{verdict(ok)}** (it fails when "
        f"p95 exceeds the stable's by more than 20% and 2 ms twice in a row; defaults: "
        f"{DEFAULTS.requests} requests per release after {DEFAULTS.warmup} warmup, "
        f"{DEFAULTS.concurrency} at a time, path /). p95 ratios in part 1 (c): "
        + ", ".join(f"{g['evidence'].get('ratios', {}).get('p95', float('nan')):.3f}" for g in also)
    )
    table.notes += failures(results)
    return table


def failures(results: Results) -> list[str]:
    """Every failed gate of the run, with its summary (the numbers that failed it)."""
    return [
        f"- failed: {LABELS[c.config]}, run {c.round + 1}, gate {g['gate']}: {g['summary']}"
        for c in results.checks
        for g in c.gates
        if g["status"] == "failed"
    ]


def context(results: Results) -> list[str]:
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(results.started_at))}",
        f"machine: {machine()}",
        f"noise: other processes used {results.foreign_cpu:.0%} of one core during the run",
        f"app: examples/hello, web=2; (a), (b), (c) interleaved round-robin, then the "
        f"performance gate alone; the run took {results.seconds / 60:.1f} min",
        f"OSV database: {results.osv_records} synthetic PyPI records, one file each, "
        f"{results.osv_bytes / 1e6:.0f} MB; loading it once in-process took "
        f"{results.osv_load_seconds:.2f} s",
    ]


def render(results: Results, tables: list[Table]) -> str:
    lines = [f"- {c}" for c in context(results)] + [""]
    for table in tables:
        grid = [table.headers, *table.rows]
        widths = [max(len(r[i]) for r in grid) for i in range(len(table.headers))]
        rules = ["-" * (w - 1) + ("-" if table.aligned(i) == "l" else ":")
                 for i, w in enumerate(widths)]  # fmt: skip
        lines += [f"**{table.title}**", ""]
        for r in [table.headers, rules, *table.rows]:
            cells = [c.ljust(w) if table.aligned(i) == "l" else c.rjust(w)
                     for i, (c, w) in enumerate(zip(r, widths, strict=True))]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *table.notes, ""]
    if results.leftovers:
        lines.append(f"**WARNING**: processes left after `slipway down --all`: {results.leftovers}")
    return "\n".join(lines).rstrip() + "\n"
