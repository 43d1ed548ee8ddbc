"""The results as tables: plain text for the terminal, Markdown for bench/results/judge.md
and docs/benchmarks.md."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.judge import mannwhitney_judge, slipway_judge, threshold_judge
from bench.judge.model import (
    CHECKED_QUANTILES,
    MEDIAN_MS,
    RATE,
    SCENARIOS,
    SIGMA,
    STABLE_ERROR_RATE,
    STEPS,
)
from bench.judge.outcome import Summary
from bench.judge.run import JUDGES, Results

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = slipway_judge.NAME
REFERENCES = (threshold_judge.NAME, mannwhitney_judge.NAME)
FAR_ABOVE = 2.0  # "far above alpha": at least twice alpha, and its interval above alpha


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


def causes(summary: Summary) -> str:
    return ", ".join(f"{cause} {n}" for cause, n in summary.causes.most_common()) or "–"


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")),
                model,
            )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (nproc; {model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        except OSError:
            return ""
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return f"commit {head}" + (" with uncommitted changes in src/" if dirty else "")


def context(results: Results) -> list[str]:
    options = results.options
    cpu = ", ".join(f"{name} {sec:.0f} s" for name, sec in results.judge_seconds.items())
    steps = " → ".join(f"{s:.0%}" for s in STEPS)
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; slipway {commit()}",
        f"machine: {machine()}",
        f"run: {options.deployments} A/A deployments, {options.regression_runs} per "
        f"regression, seed {options.seed}; {results.seconds:.0f} s wall clock on one core "
        f"(CPU per judge, traffic generation counted with slipway's: {cpu})",
        f"traffic: {RATE} requests/s in total; candidate share {steps} → 100% (promoted); "
        f"stable error rate {STABLE_ERROR_RATE:.0%}; latency of requests that did not fail "
        f"lognormal, median {MEDIAN_MS:g} ms, sigma {SIGMA:g}; every judge sees the same "
        "requests (one random stream per deployment)",
        f"slipway: the real `judge()` every second, defaults: {slipway_judge.SETTINGS}; "
        f"steps advance after ≥ {slipway_judge.STEP_MIN_SECONDS:g} s and "
        f"≥ {slipway_judge.STEP_MIN_REQUESTS} candidate requests without a rollback",
        f"threshold (Argo/Flagger): every {threshold_judge.INTERVAL} s the candidate's error "
        f"rate > {threshold_judge.MAX_ERROR_RATE:.1%} or p99 > "
        f"{threshold_judge.MAX_P99_MS:.0f} ms (1.10 × the stable's true p99) fails the "
        f"interval; rollback at the {threshold_judge.FAILURES_TO_ROLLBACK}nd failure; a passed "
        "interval advances the step, a failed one holds it",
        f"Mann-Whitney (Kayenta): every {mannwhitney_judge.LOOK_EVERY} s, one-sided "
        f"Mann-Whitney on latencies and a one-sided two-proportion test on errors, each at "
        f"{mannwhitney_judge.ALPHA:g}, on all data since the canary began; slipway's steps",
    ]


def truth_table(results: Results) -> Table:
    names = [f"p{q * 100:g}" for q in CHECKED_QUANTILES]
    table = Table(
        "Ground truth: each scenario's candidate (latency in ms, measured on 4,000,000 draws)",
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
            [truth.scenario.title, f"{truth.scenario.candidate_error_rate:.0%}", *cells]
        )
    return table


def aa_table(results: Results) -> Table:
    table = Table(
        "A/A: false rollbacks (the candidate is the stable release)",
        [
            "judge",
            "deployments",
            "false rollbacks",
            "rate",
            "95% interval (Wilson)",
            "median s to rollback",
            "median s to promote",
            "rollbacks by cause",
        ],
    )
    for name, _ in JUDGES:
        s = results.summaries["aa"][name]
        table.rows.append(
            [
                name,
                f"{s.runs:,}",
                f"{s.rollbacks:,}",
                rate(s.rollback_rate),
                interval(s.rollback_interval),
                count(s.median_seconds),
                count(s.median_promote_seconds),
                causes(s),
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
            "rollbacks by cause",
        ],
        left=2,
    )
    for scenario in SCENARIOS:
        if not scenario.allowed:
            continue
        for name, _ in JUDGES:
            s = results.summaries[scenario.key][name]
            table.rows.append(
                [
                    scenario.title,
                    name,
                    f"{s.runs:,}",
                    rate(s.rollback_rate),
                    interval(s.rollback_interval),
                    f"{s.promoted:,}",
                    f"{s.aborted:,}",
                    causes(s),
                ]
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
        "rollback since the canary began; the last median counts every run, a missed one as "
        "never (so it is `never` when half or more were missed). Without a rollback, "
        "the Mann-Whitney judge promotes at 90 s, the threshold judge at 180–240 s, slipway "
        "once the last partial step has shown the candidate no worse (A/A: see above). "
        "The Mann-Whitney judge's detections include its A/A false-alarm rate (a rollback "
        "for errors in the p99 scenario is one); the threshold judge is given the stable's "
        "true p99."
    )
    for scenario in SCENARIOS:
        if not scenario.regression:
            continue
        for name, _ in JUDGES:
            s = results.summaries[scenario.key][name]
            table.rows.append(
                [
                    scenario.title,
                    name,
                    f"{rate(s.rollback_rate)} ({s.rollbacks}/{s.runs})",
                    count(s.median_candidate_requests),
                    count(s.median_total_requests),
                    count(s.median_seconds),
                    count(s.median_candidate_requests_all),
                    causes(s),
                ]
            )
    return table


def evidence_table(results: Results) -> Table:
    settings = slipway_judge.SETTINGS
    metrics = ["error rate", *(f"latency p{q * 100:g}" for q in settings.latency_quantiles)]
    table = Table(
        "slipway's evidence when it promoted: how far each check's lower bound stayed below "
        "its rollback limit (median)",
        ["scenario", "promoted runs", *metrics],
        last_text=False,
    )
    table.notes.append(
        "At the promoting look. Errors: the lower bound of the error-rate increase minus the "
        "allowed increase. Latency at quantile p: the lower bound of the share of candidate "
        "requests slower than 1.1 × the stable's p-quantile (its upper bound) minus 1 − p. "
        "A rollback needs a value above zero; promotion also needs every upper bound below "
        "its limit."
    )
    for scenario in SCENARIOS:
        s = results.summaries[scenario.key][SLIPWAY]
        cells = []
        for metric in metrics:
            value = s.promoted_lower_bounds.get(metric, math.nan)
            cells.append("–" if math.isnan(value) else f"{value * 100:+.2f}pp")
        table.rows.append([scenario.title, f"{s.promoted}/{s.runs}", *cells])
    return table


def targets(results: Results) -> Table:
    alpha = slipway_judge.SETTINGS.alpha
    table = Table("Targets", ["target", "measured", "result"], left=2)
    ours = results.summaries["aa"][SLIPWAY]
    table.rows.append(
        [
            f"slipway's false-rollback rate ≤ α = {alpha:g}",
            f"{rate(ours.rollback_rate)} {interval(ours.rollback_interval)} "
            f"over {ours.runs:,} A/A deployments",
            "met" if ours.rollback_rate <= alpha else "missed",
        ]
    )
    kayenta = results.summaries["aa"][mannwhitney_judge.NAME]
    far = kayenta.rollback_rate >= FAR_ABOVE * alpha and kayenta.rollback_interval[0] > alpha
    table.rows.append(
        [
            "the Mann-Whitney (Kayenta-style) judge's false-rollback rate far above α",
            f"{rate(kayenta.rollback_rate)} {interval(kayenta.rollback_interval)}",
            "met" if far else "missed",
        ]
    )
    for scenario in SCENARIOS:
        if not scenario.regression:
            continue
        row = results.summaries[scenario.key]
        mine = row[SLIPWAY].median_candidate_requests_all
        best = min(row[r].median_candidate_requests_all for r in REFERENCES)
        measured = "; ".join(
            f"{name}: {count(row[name].median_candidate_requests_all)} "
            f"({rate(row[name].rollback_rate)} detected)"
            for name, _ in JUDGES
        )
        table.rows.append(
            [
                f"{scenario.title}: slipway detects in fewer candidate requests than both",
                measured,
                "met" if mine < best else "missed",
            ]
        )
    table.notes.append(
        "Requests to detect: the median over all runs of the candidate requests served until "
        "the rollback, a missed regression counting as never. Far above α: at least "
        f"{FAR_ABOVE:g}α, with the whole 95% interval above α."
    )
    return table


def tables(results: Results) -> list[Table]:
    return [
        truth_table(results),
        aa_table(results),
        regression_table(results),
        allowed_table(results),
        evidence_table(results),
        targets(results),
    ]


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
