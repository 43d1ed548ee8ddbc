"""The results: one table per part, as Markdown with padded columns (for the terminal and
for bench/results/gates.md alike)."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from functools import reduce
from typing import Any

from scipy.stats import beta  # type: ignore[import-untyped]

from bench.gates.run import LABELS, STEPS, UNDER_LOAD, Check, Results
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

    def load(key: str) -> list[float]:
        """From the (first) measurement's closing line."""
        return [float(e["load"][0][key]) for e in evidence if e.get("load")]

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
        row("pairs measured (stops once decided)", pick("pairs"), "{:.0f}"),
        row("generator rate (req/s, both releases)", load("rate"), "{:.0f}"),
        row("generator CPU (share of one core)", load("cpu"), "{:.0%}"),
        row("load (s)", load("seconds")),
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
        f"here, {also_failed} of {len(also)} in part 1 (c) → **{verdict(ok)}** (defaults: "
        f"a budget of {DEFAULTS.requests} pairs after {DEFAULTS.warmup} warm-up, "
        f"{DEFAULTS.concurrency} at a time, path /, alpha {DEFAULTS.alpha}, on_inconclusive = "
        f"{DEFAULTS.on_inconclusive}). p95 ratios in part 1 (c): "
        + ", ".join(
            f"{(g['evidence'].get('ratios') or {}).get('p95') or float('nan'):.3f}" for g in also
        )
    )
    table.notes += failures(results, ("baseline", "scans", "all", "perf"))
    return table


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate: k events in n trials."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(beta.ppf(confidence, k + 1, n - k))


def lower_bound(k: int, n: int, confidence: float = 0.95) -> float:
    if n == 0 or k == 0:
        return 0.0
    return float(beta.ppf(1 - confidence, k, n - k + 1))


def decisions(gates: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(g["evidence"].get("decision")) for g in gates)


def load_table(results: Results) -> Table:
    table = Table(
        f"Part 3 — the performance gate while a neighbour app saturates the machine through "
        f"HAProxy, {results.load_rounds} rounds",
        ["", "checks", "pass", "fail", "inconclusive", "pairs used: min / median / max",
         "gate s: median (max)", "p95 candidate / stable, ms (median)",
         "block ratio p95 (median of medians)", "CPU busy (median)"],
        align="lrrrrrrrrr",
    )  # fmt: skip
    for config in UNDER_LOAD:
        checks = of(results.checks, config)
        gates = [g for c in checks if (g := c.gate("performance")) is not None]
        counted = decisions(gates)
        pairs = [float(g["evidence"]["pairs"]) for g in gates]
        seconds = [float(g["seconds"]) for g in gates if g["seconds"] is not None]
        p95 = [c for g in gates for c in g["evidence"]["checks"] if c["metric"] == "latency p95"]
        cand = [float(c["candidate_ms"]) for c in p95]
        stab = [float(c["stable_ms"]) for c in p95]
        ratio = [float(c["block_ratio_median"]) for c in p95 if c["block_ratio_median"]]
        busy = [c.busy for c in checks if c.busy == c.busy]
        table.rows.append([
            f"**{LABELS[config]}**", str(len(gates)), str(counted["pass"]), str(counted["fail"]),
            str(counted["inconclusive"]),
            " / ".join(f"{v:.0f}" for v in (min(pairs), statistics.median(pairs), max(pairs)))
            if pairs else "-",
            f"{statistics.median(seconds):.2f} ({max(seconds):.2f})" if seconds else "-",
            f"{statistics.median(cand):.1f} / {statistics.median(stab):.1f}" if p95 else "-",
            f"{statistics.median(ratio):.3f}" if ratio else "-",
            f"{statistics.median(busy):.0%}" if busy else "-",
        ])  # fmt: skip
    same = [g for cfg in ("same0", "same20") for c in of(results.checks, cfg)
            if (g := c.gate("performance")) is not None]  # fmt: skip
    slower = [g for c in of(results.checks, "slower") if (g := c.gate("performance")) is not None]
    false_fail = sum(g["status"] == "failed" for g in same)
    detected = sum(g["status"] == "failed" for g in slower)
    upper = upper_bound(false_fail, len(same))
    lower = lower_bound(detected, len(slower))
    e_max = max(
        (c["e_slower"] or math.inf for g in same for c in g["evidence"]["checks"]
         if c["metric"].startswith("latency")), default=math.nan,
    )  # fmt: skip
    detect_ok = bool(slower) and detected / len(slower) >= 0.95
    fail_at = (len(DEFAULTS.watched()) + 1) / DEFAULTS.alpha
    table.notes += [
        f"**Target 1**: no identical release fails, and at most 1% with 95% confidence: "
        f"{false_fail} of {len(same)} failed; one-sided 95% upper bound (Clopper-Pearson) "
        f"{upper:.2%} → **{verdict(false_fail == 0 and upper <= 0.01)}**. The largest e-value "
        f'for "slower" an identical release reached: {e_max:.3g} (a gate fails at '
        f"{fail_at:g}).",
        f"**Target 2**: the ×1.5 release detected (gate failed) in at least 95% of checks: "
        f"{detected} of {len(slower)} ({detected / max(1, len(slower)):.1%}); one-sided 95% "
        f"lower bound {lower:.1%} → **{verdict(detect_ok)}**.",
        "The load: "
        + "; ".join(
            f"{name} {s.get('requests', 0) / max(s.get('seconds', 1), 1e-9):.0f} req/s "
            f"(p50 {s.get('p50_ms', math.nan):.1f} ms, p99 {s.get('p99_ms', math.nan):.1f} ms, "
            f"{s.get('failed', 0)} failed)"
            for name, s in zip(
                ("neighbour (48 at a time, no cap)", "hello's users", "slow's users"),
                results.saturate,
                strict=False,
            )
        )
        + ".",  # fmt: skip
    ]
    return table


def failures(results: Results, configs: tuple[str, ...]) -> list[str]:
    """Every failed gate of these configurations, with its summary (the numbers that
    failed it)."""
    return [
        f"- failed: {LABELS[c.config]}, run {c.round + 1}, gate {g['gate']}: {g['summary']}"
        for c in results.checks
        for g in c.gates
        if g["status"] == "failed" and c.config in configs
    ]


def context(results: Results) -> list[str]:
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(results.started_at))}",
        f"machine: {machine()}",
        f"noise: other processes used {results.foreign_cpu:.0%} of one core during the run",
        f"app: examples/hello, web=2; (a), (b), (c) interleaved round-robin, then the "
        f"performance gate alone, then under load (part 3, "
        f"{results.load_seconds / 60:.1f} min); the run took {results.seconds / 60:.1f} min",
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
