"""Runs every case: for each simulated deployment, one traffic stream judged by all three
judges."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from bench.judge import mannwhitney_judge, slipway_judge, threshold_judge
from bench.judge.model import CASES, Case, GroundTruth, ground_truth
from bench.judge.outcome import Outcome, Summary, summarize
from bench.judge.traffic import Traffic
from slipway.judge.verdict import Settings

Judge = Callable[[Traffic], Outcome]


@dataclass(frozen=True)
class Options:
    deployments: int = 1000  # A/A, per condition
    regression_runs: int = 200  # per regression (and per allowed difference)
    seed: int = 1
    quick: bool = False
    cases: tuple[str, ...] = ()  # only these case keys (all when empty)
    settings: Settings = slipway_judge.SETTINGS  # slipway's, for a diagnosis

    @property
    def selected(self) -> list[tuple[int, Case]]:
        """(number, case): the number seeds the case's traffic, so a subset of the cases
        sees the same requests as the full run."""
        return [(n, c) for n, c in enumerate(CASES) if not self.cases or c.key in self.cases]


@dataclass
class Results:
    options: Options
    truth: list[GroundTruth]
    cases: list[Case] = field(default_factory=list)
    summaries: dict[str, dict[str, Summary]] = field(default_factory=dict)  # case, judge
    judge_seconds: dict[str, float] = field(default_factory=dict)  # CPU time per judge
    seconds: float = 0.0  # the whole run, wall clock
    cpu_seconds: float = 0.0  # the whole run, process CPU time
    machine_busy: float = 0.0  # CPU-seconds the whole machine was busy meanwhile (all CPUs)
    machine_steal: float = 0.0  # CPU-seconds stolen by the hypervisor meanwhile
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average at the start, at the end


def cpu_times() -> tuple[float, float]:
    """(busy, stolen) CPU-seconds of the whole machine since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


def judges(options: Options) -> tuple[tuple[str, Judge], ...]:
    return (
        (slipway_judge.NAME, partial(slipway_judge.deploy, settings=options.settings)),
        (threshold_judge.NAME, threshold_judge.deploy),
        (mannwhitney_judge.NAME, mannwhitney_judge.deploy),
    )


NAMES = (slipway_judge.NAME, threshold_judge.NAME, mannwhitney_judge.NAME)


def runs_of(case: Case, options: Options) -> int:
    return options.deployments if case.aa else options.regression_runs


def run(options: Options, progress: bool = True) -> Results:
    started, cpu_started = time.perf_counter(), time.process_time()
    busy_started, steal_started = cpu_times()
    load_started = os.getloadavg()[0]
    results = Results(options, ground_truth())
    all_judges = judges(options)
    results.judge_seconds = {name: 0.0 for name, _ in all_judges}
    for number, case in options.selected:
        outcomes: dict[str, list[Outcome]] = {name: [] for name, _ in all_judges}
        for index in range(runs_of(case, options)):
            traffic = Traffic(case, seed=(options.seed, number, index))
            for name, deploy in all_judges:
                before = time.process_time()
                outcomes[name].append(deploy(traffic))
                results.judge_seconds[name] += time.process_time() - before
        results.cases.append(case)
        results.summaries[case.key] = {n: summarize(o) for n, o in outcomes.items()}
        if progress:
            mine = results.summaries[case.key][slipway_judge.NAME]
            print(
                f"  {case.title}: {runs_of(case, options)} deployments, slipway rolled back "
                f"{mine.rollbacks}, promoted {mine.promoted}, aborted {mine.aborted} "
                f"({time.perf_counter() - started:.0f} s so far)",
                file=sys.stderr,
                flush=True,
            )
    results.seconds = time.perf_counter() - started
    results.cpu_seconds = time.process_time() - cpu_started
    busy, steal = cpu_times()
    results.machine_busy, results.machine_steal = busy - busy_started, steal - steal_started
    results.load = (load_started, os.getloadavg()[0])
    return results
