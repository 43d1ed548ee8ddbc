"""From the raw requests and looks to the tables: per second, each variant's p95 (counted from
when each request was due), failed requests and instances; per variant, the share of seconds
within the latency target after the first scale-up completes, and the instance-seconds
against the fixed `max` count's."""

from __future__ import annotations

import itertools
import math
import os
from collections import Counter
from dataclasses import dataclass

from bench.autoscale.run import Options, Results, Variant

LABELS = {"auto": "autoscaled", "max": "fixed max", "min": "fixed min"}
MAX_SEND_LAG_MS = 10.0  # the generator's own lateness (p99) above this: it measured itself
SHARE_TARGET = 0.95
COST_TARGET = 0.60
TIMELINE_EVERY = 10  # seconds per row of the timeline


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, the rest right-aligned (numbers)."""
    rule = "|" + "|".join([":--"] + ["--:"] * (len(head) - 1)) + "|"
    lines = ["| " + " | ".join(head) + " |", rule]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def p95(values: list[float]) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


@dataclass
class Seconds:
    """One variant, second by second from the ramp's start (by when requests were due)."""

    latency_ms: list[list[float]]
    failed: list[int]
    running: list[int]  # web instances with a process (what it costs)
    serving: list[int]  # of them, in rotation

    @classmethod
    def of(cls, variant: Variant, seconds: int) -> Seconds:
        latency: list[list[float]] = [[] for _ in range(seconds)]
        failed = [0] * seconds
        for due, _began, _sent, done, status, _error, _retried in variant.rows:
            index = int(due - variant.start)
            if 0 <= index < seconds:
                latency[index].append((done - due) * 1000)
                failed[index] += status == 0 or status >= 500
        running, serving, looks, k = [], [], variant.looks, 0
        for second in range(seconds):  # the last look before the second's middle
            middle = variant.start + second + 0.5
            while k + 1 < len(looks) and looks[k + 1].t <= middle:
                k += 1
            running.append(looks[k].running if looks else 0)
            serving.append(looks[k].serving if looks else 0)
        return cls(latency, failed, running, serving)

    def p95s(self) -> list[float]:
        return [p95(values) for values in self.latency_ms]


def first_scale_up(auto: Seconds) -> int | None:
    """The first second with more instances serving than at the start: the first scale-up
    has completed (new instances healthy and in rotation)."""
    return next((s for s, n in enumerate(auto.serving) if n > auto.serving[0]), None)


@dataclass
class Summary:
    name: str
    requests: int
    failed: int
    p95_all_ms: float
    within: int  # seconds with p95 within the target, from the first scale-up on
    counted: int  # seconds from the first scale-up on
    worst_ms: float
    instance_seconds: float
    fewest: int
    most: int
    send_lag_p99_ms: float
    kinds: Counter[str]  # what the failed requests got: an HTTP 5xx, or an error
    retried: int  # sent again once on a new connection (the kept-alive one closed unanswered)

    def failures(self) -> str:
        kinds = ", ".join(f"{kind} ×{n}" for kind, n in self.kinds.most_common()) or "none"
        return f"{kinds}; retried once on a new connection (not failed): {self.retried}"

    @property
    def share(self) -> float:
        return self.within / self.counted if self.counted else math.nan


def summarize(variant: Variant, seconds: Seconds, since: int, target_ms: float) -> Summary:
    p95s = seconds.p95s()[since:]
    counted = [v for v in p95s if not math.isnan(v)]
    latencies = [(r[3] - r[0]) * 1000 for r in variant.rows]
    lags = [(r[1] - r[0]) * 1000 for r in variant.rows]
    lag = sorted(lags)[int(0.99 * (len(lags) - 1))] if lags else math.nan
    kinds = Counter(
        f"HTTP {status}" if status else str(error)
        for _due, _began, _sent, _done, status, error, _retried in variant.rows
        if status == 0 or status >= 500
    )
    return Summary(
        LABELS[variant.name],
        len(variant.rows),
        sum(seconds.failed),
        p95(latencies),
        sum(1 for v in counted if v <= target_ms),
        len(counted),
        max(counted, default=math.nan),
        float(sum(seconds.running)),
        min(seconds.running, default=0),
        max(seconds.running, default=0),
        lag,
        kinds,
        sum(1 for r in variant.rows if r[6]),
    )


def ideal(options: Options, seconds: int) -> float:
    """Instance-seconds of the same rule with perfect knowledge and no lag: each second, just
    enough instances for the target, with in-flight requests = rate × service time (Little's
    law, no queueing). What no autoscaler reading a signal can beat at this target."""
    total = 0
    for second in range(seconds):
        inflight = options.ramp.rate(second + 0.5) * options.service_ms / 1000
        total += min(options.max, max(options.min, math.ceil(inflight / options.target - 1e-9)))
    return float(total)


def changes(variant: Variant) -> list[tuple[float, int, int]]:
    """The autoscaler's scale deployments: (seconds from the ramp's start, from, to)."""
    found = []
    for decision in reversed(variant.history):
        if str(decision.get("result", "")).startswith("scaling"):
            at = float(decision["at"]) - variant.wall_offset - variant.start
            found.append((at, int(decision["current"]), int(decision["desired"])))
    return found


def reversals(steps: list[tuple[float, int, int]]) -> int:
    """How often the direction of scaling changed (up then down counts once: a full cycle of
    the ramp is 1; more is flapping)."""
    signs = [1 if to > frm else -1 for _, frm, to in steps]
    return sum(1 for a, b in itertools.pairwise(signs) if a != b)


def fmt(value: float, digits: int = 0) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


@dataclass
class Report:
    options: Options
    seconds: int
    per: dict[str, Seconds]
    summaries: dict[str, Summary]
    since: int | None  # the first scale-up, in seconds from the start
    steps: list[tuple[float, int, int]]

    @classmethod
    def of(cls, results: Results) -> Report:
        options = results.options
        seconds = int(options.ramp.seconds)
        per = {v.name: Seconds.of(v, seconds) for v in results.variants}
        since = first_scale_up(per["auto"]) if "auto" in per else None
        start = since if since is not None else seconds  # never scaled up: nothing counted
        summaries = {
            v.name: summarize(v, per[v.name], start, options.latency_target_ms)
            for v in results.variants
        }
        auto = results.variant("auto")
        return cls(options, seconds, per, summaries, since, changes(auto) if auto else [])

    def fixed_max(self) -> float:
        """Fixed max's instance-seconds: measured, or max × seconds when it was not run."""
        fixed = self.summaries.get("max")
        return fixed.instance_seconds if fixed else float(self.options.max * self.seconds)

    def main_table(self) -> str:
        rows = []
        for s in self.summaries.values():
            ratio = s.instance_seconds / self.fixed_max()
            rows.append([
                s.name, f"{s.fewest}–{s.most}", f"{s.requests:,}", f"{s.failed:,}",
                fmt(s.p95_all_ms), f"{s.within}/{s.counted} ({s.share:.1%})",
                fmt(s.worst_ms), fmt(s.instance_seconds), f"{ratio:.0%}",
            ])  # fmt: skip
        if "auto" in self.summaries:
            best = ideal(self.options, self.seconds)
            rows.append(["(the rule with no lag, computed)", "", "", "", "", "", "", fmt(best),
                         f"{best / self.fixed_max():.0%}"])  # fmt: skip
        head = ["variant", "instances", "requests", "failed", "p95 ms (all)",
                f"seconds p95 ≤ {self.options.latency_target_ms:g} ms",
                "worst second's p95 ms", "instance-seconds", "vs fixed max"]  # fmt: skip
        return markdown_table(head, rows)

    def timeline_table(self) -> str:
        names = list(self.per)
        head = ["t (s)", "offered req/s"]
        for name in names:
            head += [f"{LABELS[name]}: instances", f"{LABELS[name]}: p95 ms"]
        head += ["failed (" + ", ".join(LABELS[n] for n in names) + ")"]
        rows = []
        for lo in range(0, self.seconds, TIMELINE_EVERY):
            hi = min(self.seconds, lo + TIMELINE_EVERY)
            rate = sum(self.options.ramp.rate(t + 0.5) for t in range(lo, hi)) / (hi - lo)
            row = [f"{lo}–{hi}", f"{rate:.0f}"]
            for name in names:
                data = self.per[name]
                counts = sorted(set(data.running[lo:hi]))
                shown = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
                values = [v for second in data.latency_ms[lo:hi] for v in second]
                row += [shown, fmt(p95(values))]
            row.append(", ".join(str(sum(self.per[n].failed[lo:hi])) for n in names))
            rows.append(row)
        return markdown_table(head, rows)

    def targets(self) -> list[str]:
        auto = self.summaries.get("auto")
        if auto is None:
            return []
        target = self.options.latency_target_ms

        def verdict(ok: bool) -> str:
            return "met" if ok else "MISSED"

        lines = [f"- failed requests, autoscaled: {auto.failed} (target 0): "
                 f"{verdict(auto.failed == 0)}"]  # fmt: skip
        if self.since is None:
            lines.append("- p95 within the target after the first scale-up: MISSED (no scale-up)")
        else:
            lines.append(
                f"- p95 ≤ {target:g} ms in {auto.within} of the {auto.counted} seconds from the "
                f"first scale-up on (t = {self.since} s): {auto.share:.1%} (target ≥ "
                f"{SHARE_TARGET:.0%}): {verdict(auto.share >= SHARE_TARGET)}"
            )
        ratio = auto.instance_seconds / self.fixed_max()
        lines.append(
            f"- instance-seconds: {auto.instance_seconds:,.0f} against fixed max's "
            f"{self.fixed_max():,.0f}: {ratio:.0%} (target ≤ {COST_TARGET:.0%}): "
            f"{verdict(ratio <= COST_TARGET)}"
        )
        for s in self.summaries.values():
            lines.append(f"- failed requests, {s.name}: {s.failures()}")
        return lines

    def decisions(self) -> str:
        if not self.steps:
            return "the autoscaler changed nothing"
        shown = ", ".join(f"{frm}→{to} at {at:.0f} s" for at, frm, to in self.steps)
        return (
            f"{len(self.steps)} scale deployments ({shown}); direction reversals: "
            f"{reversals(self.steps)} (1 is one up-and-down cycle)"
        )


def noise(results: Results, report: Report) -> str:
    top = ", ".join(f"{name} {sec:.1f} s" for name, sec in results.foreign_top if sec >= 0.05)
    lag = max((s.send_lag_p99_ms for s in report.summaries.values()), default=math.nan)
    verdict = "" if lag <= MAX_SEND_LAG_MS else " — NOISY: the generator fell behind its schedule"
    busy = ", ".join(f"{LABELS[v.name]} {v.busy:.0%}" for v in results.variants)
    steal = max((v.steal for v in results.variants), default=math.nan)
    return (
        f"other processes took {results.foreign_cpu:.0%} of one CPU on average"
        + (f" (most: {top})" if top else "")
        + f"; all CPUs busy during each ramp: {busy}; stolen by the hypervisor: "
        f"{steal:.1%} at most; the generator's send lag p99 (worst variant): {lag:.1f} ms" + verdict
    )


def render(results: Results) -> str:
    report = Report.of(results)
    o = results.options
    gen = results.variants[0] if results.variants else None
    load = ""
    if gen is not None:
        nice = "nice −10" if gen.prioritised else "normal priority"
        share = gen.load_cpu_seconds / o.ramp.seconds
        load = f"; the load generator (Python asyncio, open loop, {nice}) used {share:.0%} of a CPU"
    lines = [
        f"machine: {os.cpu_count()} CPUs; load average before the report "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}; the run took {results.seconds:.0f} s",
        f"noise: {noise(results, report)}",
        f"app: examples/hello with SLOTS={o.slots}, service time {o.service_ms:g} ms "
        f"({o.service_ms - o.work_ms:g} ms sleep + {o.work_ms:g} ms CPU): one instance serves "
        f"about {o.capacity:.0f} req/s",
        f"load: {o.ramp.describe()}; peak = {o.ramp.peak / o.capacity:.1f}× one instance{load}",
        f"autoscaled: [autoscale.web] min {o.min}, max {o.max}, signal {o.signal}, target "
        f"{o.target:g}, every {o.every:g} s, window {o.window:g} s, scale_down_after "
        f"{o.scale_down_after:g} s (other keys at their defaults); fixed min: web={o.min}, "
        f"fixed max: web={o.max}",
        f"latency target: p95 ≤ {o.latency_target_ms:g} ms per second, counted from when each "
        f"request was due",
        "",
        report.main_table(),
        "",
        "Targets (issue 16):",
        *report.targets(),
        "",
        f"autoscaler: {report.decisions()}",
        "",
        f"Timeline ({TIMELINE_EVERY} s rows; instances: web instances with a process, "
        "starting and retiring ones included):",
        "",
        report.timeline_table(),
    ]
    if results.leftovers:
        lines += ["", "leftover processes (killed): " + "; ".join(results.leftovers)]
    return "\n".join(lines) + "\n"
