"""The results as tables: plain text for the terminal, Markdown for bench/results/judge.md
and docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy  # type: ignore[import-untyped]

from bench.judge import mannwhitney_judge, slipway_judge, threshold_judge
from bench.judge.model import (
    CHECKED_QUANTILES,
    CONDITION,
    MEDIAN_MS,
    PRE_SECONDS,
    RATE,
    SIGMA,
    STABLE_ERROR_RATE,
    STATIONARY,
    STEPS,
    Condition,
)
from bench.judge.outcome import Floats
from bench.judge.run import NAMES, Results
from bench.machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = slipway_judge.NAME
THRESHOLD = threshold_judge.NAME
CPU_LIMIT = 0.001  # seconds of CPU per look
# The previous judge (docs/benchmarks.md, run of 2026-11-27, commit 484875e): candidate
# requests to detect, median over all runs; the new one must need at most half.
TODAY = {"err2@stationary": 34_260.0, "p50x1.2@stationary": 2_806.0}


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    left: int = 1  # the first columns are text (left-aligned) …
    last_text: bool = True  # … and so is the last, unless this is False

    def is_text(self, column: int) -> bool:
        return column < self.left or (self.last_text and column == len(self.headers) - 1)


def count(value: float) -> str:
    if math.isnan(value):
        return "–"
    return "never" if math.isinf(value) else f"{value:,.0f}"


def rate(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"


def interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.1%}, {bounds[1]:.1%}]"


def causes(counter: Counter[str]) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in counter.most_common()) or "–"


def evalue(value: float) -> str:
    if math.isnan(value):
        return "–"
    if value >= 1e4:
        return f"{value:.1e}"
    return f"{value:.3g}"


def micro(seconds: float) -> str:
    return "–" if math.isnan(seconds) else f"{seconds * 1e6:,.0f}"


def machine() -> str:
    model = cpu_model()
    versions = [f"numpy {np.__version__}", f"scipy {scipy.__version__}"]
    return (
        f"{os.cpu_count()} CPUs (nproc; {model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}, {', '.join(versions)}"
    )


def commit() -> str:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src", "bench/judge")
    return f"commit {head}" + (" with uncommitted changes in src/ or bench/judge/" if dirty else "")


def describe(condition: Condition) -> str:
    """What a condition does to both releases, in words."""
    parts = []
    if condition.rate_to is not None:
        parts.append(
            f"{condition.rate} req/s before the canary, then linearly to {condition.rate_to} "
            f"over {condition.ramp_seconds} s, then steady"
        )
    elif condition.rate != RATE:
        parts.append(f"{condition.rate} req/s in total")
    if condition.outage_step is not None:
        parts.append(
            f"{condition.outage_error_rate:.0%} errors and latency ×{condition.outage_latency:g} "
            f"for {condition.outage_seconds} s, from the {condition.outage_after}th second of "
            f"each judge's {STEPS[condition.outage_step]:.0%} step"
        )
    if condition.drift != 1.0:
        parts.append(f"every latency ×{condition.drift:g}^(t / 180 s), t from the canary's start")
    if condition.errors_per_minute:
        parts.append(
            f"error rate 1% + {condition.errors_per_minute * 100:g}pp per minute of canary"
        )
    if condition.burst_chance:
        parts.append(
            f"each second, with chance {condition.burst_chance:g}, "
            f"{condition.burst_error_rate:.0%} errors on both releases"
        )
    if condition.cluster > 1:
        parts.append(
            f"an error fails {condition.cluster} consecutive requests of one release "
            f"(same mean error rate, {condition.cluster}× fewer independent events)"
        )
    if condition.pareto:
        parts.append("latency Pareto: 20 ms × U^(−1/1.5), infinite variance")
    if condition.warmup_seconds:
        parts.append(
            f"the candidate's latency ×{condition.warmup_factor:g} in the canary's first "
            f"{condition.warmup_seconds} s (an A/A nonetheless: a regression of none)"
        )
    return "; ".join(parts) or "200 req/s, 1% errors, lognormal latency, all constant"


def context(results: Results) -> list[str]:
    options = results.options
    cpu = ", ".join(f"{name} {sec:.0f} s" for name, sec in results.judge_seconds.items())
    steps = " → ".join(f"{s:.0%}" for s in STEPS)
    varied = options.settings != slipway_judge.SETTINGS
    heavy_p99 = threshold_judge.limits(CONDITION["pareto"])[1]
    others = results.machine_busy - results.cpu_seconds
    lines = [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; slipway {commit()}",
        f"machine: {machine()}",
        f"run: {options.deployments} A/A deployments per condition, "
        f"{options.regression_runs} per regression or allowed difference, seed "
        f"{options.seed}; {len(results.cases)} cases; {results.seconds:.0f} s wall clock, "
        f"{results.cpu_seconds:.0f} s CPU on one core (CPU per judge, traffic generation "
        f"counted with the first, slipway: {cpu})",
        f"noise: other processes used {others:.0f} CPU-seconds during the run "
        f"({others / max(results.seconds, 1e-9):.2f} CPUs on average), the hypervisor stole "
        f"{results.machine_steal:.0f} CPU-seconds; 1-minute load average "
        f"{results.load[0]:.1f} at the start, {results.load[1]:.1f} at the end",
        f"traffic: {RATE} requests/s in total unless the condition says otherwise; candidate "
        f"share {steps} → 100% (promoted); stable error rate {STABLE_ERROR_RATE:.0%}; "
        f"latency of requests that did not fail lognormal, median {MEDIAN_MS:g} ms, sigma "
        f"{SIGMA:g}, unless the condition says otherwise; every judge sees the same requests "
        "(one random stream per deployment)",
        f"slipway: the real `Evidence.add_second` and `judge()` every second, after "
        f"{PRE_SECONDS} s of the stable's traffic through `Evidence.learn()`; "
        + ("**settings varied for a diagnosis**: " if varied else "defaults: ")
        + f"{options.settings}; steps advance after ≥ {slipway_judge.STEP_MIN_SECONDS:g} s "
        f"and ≥ {slipway_judge.STEP_MIN_REQUESTS} candidate requests without a rollback; "
        f"inconclusive for > {slipway_judge.STEP_TIMEOUT:g} s in a step aborts",
        f"threshold (Argo/Flagger): every {threshold_judge.INTERVAL} s the candidate's error "
        f"rate > the stable's before the canary + 0.5pp (1.5%) or its p99 > 1.10 × the "
        f"stable's true p99 before the canary ({threshold_judge.MAX_P99_MS:.0f} ms; "
        f"heavy-tailed: {heavy_p99:.0f} ms) fails the interval; rollback at the "
        f"{threshold_judge.FAILURES_TO_ROLLBACK}nd failure; a passed interval advances the "
        "step, a failed one holds it",
        f"Mann-Whitney (Kayenta): every {mannwhitney_judge.LOOK_EVERY} s, one-sided "
        f"Mann-Whitney on latencies and a one-sided two-proportion test on errors, each at "
        f"{mannwhitney_judge.ALPHA:g}, on all data since the canary began; slipway's steps",
    ]
    return lines


def conditions_table(results: Results) -> Table:
    table = Table(
        "Conditions: what both releases share (the candidate's difference comes on top)",
        ["condition", "what changes", "threshold judge's limits"],
        left=2,
    )
    seen: list[Condition] = []
    for case in results.cases:
        if case.condition in seen:
            continue
        seen.append(case.condition)
        errors, p99 = threshold_judge.limits(case.condition)
        table.rows.append(
            [case.condition.title, describe(case.condition), f"{errors:.1%}, p99 {p99:.0f} ms"]
        )
    table.notes.append(
        f"Before each canary, the stable's last {PRE_SECONDS} s (the condition at t = 0, all "
        "traffic on the stable) go to slipway's judge through `Evidence.learn()`. Errors of "
        "the candidate in a regression are the shared rate plus the regression's increase "
        "(+1pp, +4pp …), whatever the shared rate is at the moment; its latency is the "
        "regression's transform of the request's base draw, then the shared factor."
    )
    return table


def truth_table(results: Results) -> Table:
    names = [f"p{q * 100:g}" for q in CHECKED_QUANTILES]
    table = Table(
        "Ground truth, stationary condition: each scenario's candidate (latency in ms, "
        "measured on 4,000,000 draws)",
        ["scenario", "error rate", *names],
        left=2,
        last_text=False,
    )
    stable = results.truth[0].stable
    table.rows.append(["stable release", f"{STABLE_ERROR_RATE:.0%}", *(f"{v:.1f}" for v in stable)])
    for truth in results.truth:
        cells = [
            f"{c:.1f}" if abs(c / s - 1) < 0.001 else f"{c:.1f} (×{c / s:.2f})"
            for c, s in zip(truth.candidate, stable, strict=True)
        ]
        table.rows.append(
            [truth.scenario.title, f"{truth.scenario.candidate_error_rate:.1%}", *cells]
        )
    return table


def aa_table(results: Results) -> Table:
    table = Table(
        "A/A: false rollbacks per condition (the candidate is the stable release)",
        [
            "condition",
            "judge",
            "runs",
            "false rollbacks",
            "rate",
            "95% interval (Wilson)",
            "promoted",
            "aborted (inconclusive > 600 s)",
            "median s to promote",
            "rollbacks by cause; aborted: the checks not shown no worse",
        ],
        left=2,
    )
    for case in results.cases:
        if not case.aa:
            continue
        for name in NAMES:
            s = results.summaries[case.key][name]
            why = causes(s.causes)
            if s.aborted:
                why += "; aborted: " + causes(s.aborted_causes)
            table.rows.append(
                [
                    case.condition.title,
                    name,
                    f"{s.runs:,}",
                    f"{s.rollbacks:,}",
                    rate(s.rollback_rate),
                    interval(s.rollback_interval),
                    f"{s.promoted:,}",
                    f"{s.aborted:,}",
                    count(s.median_promote_seconds),
                    why,
                ]
            )
    table.notes.append(
        "The threshold and Mann-Whitney judges never hold a canary as inconclusive: they "
        "promote or roll back. Their limits are set from the stable before the canary and "
        "do not follow a shared change; slipway compares within the same seconds."
    )
    return table


def regression_table(results: Results) -> Table:
    table = Table(
        "Regressions: detection (rolled back before promotion) and requests to detect",
        [
            "regression",
            "judge",
            "detected",
            "median candidate requests",
            "median total requests",
            "median s",
            "median candidate requests, all runs",
            "rollbacks by cause",
        ],
        left=2,
    )
    table.notes.append(
        "Medians of requests and seconds are over the detected runs, counted at the "
        "rollback since the canary began; the next-to-last median counts every run, a missed "
        "one as never (so it is `never` when half or more were missed). The Mann-Whitney "
        "judge's detections include its A/A false-alarm rate; the threshold judge is given "
        "the stable's true p99."
    )
    for case in results.cases:
        if not case.scenario.regression:
            continue
        for name in NAMES:
            s = results.summaries[case.key][name]
            table.rows.append(
                [
                    case.title,
                    name,
                    f"{rate(s.rollback_rate)} ({s.rollbacks}/{s.runs})",
                    count(s.median_candidate_requests),
                    count(s.median_total_requests),
                    count(s.median_seconds),
                    count(s.median_candidate_requests_all),
                    causes(s.causes),
                ]
            )
    return table


def allowed_table(results: Results) -> Table:
    table = Table(
        "Differences within the allowed increase (+0.5pp errors, +10% latency): rollbacks "
        "here are false alarms by the operator's own margins",
        [
            "difference",
            "judge",
            "runs",
            "rolled back",
            "95% interval (Wilson)",
            "promoted",
            "held inconclusive, then aborted",
            "rollbacks by cause; aborted: the checks not shown no worse",
        ],
        left=2,
    )
    for case in results.cases:
        if not case.scenario.allowed:
            continue
        for name in NAMES:
            s = results.summaries[case.key][name]
            why = causes(s.causes)
            if s.aborted:
                why += "; aborted: " + causes(s.aborted_causes)
            table.rows.append(
                [
                    case.title,
                    name,
                    f"{s.runs:,}",
                    rate(s.rollback_rate),
                    interval(s.rollback_interval),
                    f"{s.promoted:,}",
                    f"{s.aborted:,}",
                    why,
                ]
            )
    return table


def evidence_table(results: Results) -> Table:
    settings = results.options.settings
    metrics = ["error rate", *(f"latency p{q * 100:g}" for q in settings.latency_quantiles)]
    needed = {"error rate": 1.0 / settings.error_alpha} | {
        m: 1.0 / settings.latency_alpha for m in metrics[1:]
    }
    table = Table(
        'slipway\'s evidence of a regression (e-value of "worse than allowed"): median when '
        "it promoted / 99th percentile over all runs of the highest it reached",
        [
            "case",
            "promoted runs",
            *(f"{m} (rollback at {needed[m]:g})" for m in metrics),
            "errors' φ (median)",
        ],
        last_text=False,
    )
    table.notes.append(
        "An e-value near 1 or below is no evidence; a rollback needs the value in the "
        "header (1/α of the check: α/2 for errors, α/2 shared by the watched quantiles). By "
        "Ville's inequality, with a candidate within the margins, the highest value over "
        "the whole canary reaches it in at most 1/that share of runs (2.5% for errors, "
        "0.83% per quantile), so the 99th percentile of the highest should stay below it. "
        "φ: the dispersion dividing each second's log-likelihood ratio of the error tests "
        "(1: independent errors; the larger of the splits' own and the stable's clustering), "
        "at the decision, median over all runs."
    )
    for case in results.cases:
        s = results.summaries[case.key][SLIPWAY]
        cells = [
            f"{evalue(s.promoted_worse.get(m, math.nan))} / "
            f"{evalue(s.worse_max_p99.get(m, math.nan))}"
            for m in metrics
        ]
        dispersion = "–" if math.isnan(s.median_dispersion) else f"{s.median_dispersion:.2f}"
        table.rows.append([case.title, f"{s.promoted}/{s.runs}", *cells, dispersion])
    return table


def cpu_table(results: Results) -> Table:
    table = Table(
        "slipway's judge CPU per look (process time of `Evidence.add_second` + `judge()`, "
        "traffic generation excluded), µs",
        ["case", "looks", "mean", "median", "p99", "max"],
        last_text=False,
    )
    every = []
    for case in results.cases:
        s = results.summaries[case.key][SLIPWAY]
        if s.look_cpu is None or not s.look_cpu.size:
            continue
        every.append(s.look_cpu)
        table.rows.append([case.title, f"{s.looks:,}", *_cpu_cells(s.look_cpu)])
    if every:
        joined = np.concatenate(every)
        table.rows.append(["all cases", f"{joined.size:,}", *_cpu_cells(joined)])
    table.notes.append(
        f"Default settings unless the run says otherwise ({len(STEPS)} steps, p50/p90/p99, "
        "1,700 latency buckets). Measured with `time.process_time_ns()` around the two calls; "
        "the other core was shared with whatever else ran (see the noise line)."
    )
    return table


def _cpu_cells(values: Floats) -> list[str]:
    return [
        micro(float(values.mean())),
        micro(float(np.median(values))),
        micro(float(np.quantile(values, 0.99))),
        micro(float(values.max())),
    ]


def targets(results: Results) -> Table:
    alpha = results.options.settings.alpha
    table = Table("Targets", ["target", "measured", "result"], left=2)
    for case in results.cases:
        if not case.aa:
            continue
        s = results.summaries[case.key][SLIPWAY]
        table.rows.append(
            [
                f"A/A, {case.condition.title}: false rollbacks ≤ α = {alpha:g} "
                "(95% upper bound ≤ 5%)",
                f"{s.rollbacks}/{s.runs} = {rate(s.rollback_rate)} {interval(s.rollback_interval)}",
                _pass(s.rollback_interval[1] <= alpha),
            ]
        )
    by_key = {case.key: case for case in results.cases}
    for key, today in TODAY.items():
        if key not in by_key:
            continue
        s = results.summaries[key][SLIPWAY]
        mine = s.median_candidate_requests_all
        table.rows.append(
            [
                f"{by_key[key].title}: candidate requests to detect ≤ half of today's "
                f"({count(today)} / 2 = {count(today / 2)})",
                f"{count(mine)} ({rate(s.rollback_rate)} detected; median total requests "
                f"of the detected: {count(s.median_total_requests)})",
                _pass(mine <= today / 2),
            ]
        )
    for case in results.cases:
        if not case.scenario.regression:
            continue
        row = results.summaries[case.key]
        mine = row[SLIPWAY].median_candidate_requests_all
        theirs = row[THRESHOLD].median_candidate_requests_all
        table.rows.append(
            [
                f"{case.title}: fewer candidate requests to detect than the threshold judge",
                f"slipway {count(mine)} ({rate(row[SLIPWAY].rollback_rate)} detected), "
                f"threshold {count(theirs)} ({rate(row[THRESHOLD].rollback_rate)} detected)",
                _pass(mine < theirs),
            ]
        )
    worst: tuple[float, str] = (-1.0, "")
    every = []
    for case in results.cases:
        cpu = results.summaries[case.key][SLIPWAY].look_cpu
        if cpu is not None and cpu.size:
            every.append(cpu)
            worst = max(worst, (float(cpu.mean()), case.title))
    if every:
        joined = np.concatenate(every)
        table.rows.append(
            [
                "judge CPU per look ≤ 1 ms at the default settings (mean, in every case)"
                + ("" if results.options.settings == slipway_judge.SETTINGS else " [VARIED]"),
                f"worst case's mean {micro(worst[0])} µs ({worst[1]}); all looks: mean "
                f"{micro(float(joined.mean()))} µs, p99 {micro(float(np.quantile(joined, 0.99)))}"
                f" µs, max {micro(float(joined.max()))} µs",
                _pass(worst[0] <= CPU_LIMIT),
            ]
        )
    table.notes.append(
        "Requests to detect: the median over all runs of the candidate requests served until "
        "the rollback, a missed regression counting as never. Today's: the previous judge's "
        "run of 2026-11-27 (commit 484875e) in docs/benchmarks.md."
    )
    return table


def _pass(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def tables(results: Results) -> list[Table]:
    out = [conditions_table(results)]
    if any(c.condition is STATIONARY and not c.aa for c in results.cases):
        out.append(truth_table(results))
    out.append(aa_table(results))
    if any(c.scenario.regression for c in results.cases):
        out.append(regression_table(results))
    if any(c.scenario.allowed for c in results.cases):
        out.append(allowed_table(results))
    out += [evidence_table(results), cpu_table(results), targets(results)]
    return out


def render_text(results: Results, all_tables: list[Table]) -> str:
    lines = ["Canary judge: simulated deployments with ground truth", *context(results), ""]
    for table in all_tables:
        rows = [table.headers, *table.rows]
        widths = [max(len(row[i]) for row in rows) for i in range(len(table.headers))]
        lines.append(table.title)
        for index, row in enumerate(rows):
            cells = [
                c.ljust(w) if table.is_text(i) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
            if index == 0:
                lines.append("  " + "  ".join("-" * w for w in widths))
        lines.extend(f"  {note}" for note in table.notes)
        lines.append("")
    return "\n".join(lines)


def render_markdown(results: Results, all_tables: list[Table]) -> str:
    lines = [*(f"- {line}" for line in context(results)), ""]
    for table in all_tables:
        lines += [f"**{table.title}**", ""]
        lines.append("| " + " | ".join(table.headers) + " |")
        marks = ("---" if table.is_text(i) else "---:" for i in range(len(table.headers)))
        lines.append("|" + "|".join(marks) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines += ["", *(f"{note}\n" for note in table.notes)]
    return "\n".join(lines).rstrip() + "\n"
