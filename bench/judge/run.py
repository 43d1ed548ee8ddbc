"""Runs every scenario: for each simulated deployment, one traffic stream judged by all
three judges."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.judge import mannwhitney_judge, slipway_judge, threshold_judge
from bench.judge.model import SCENARIOS, GroundTruth, Scenario, ground_truth
from bench.judge.outcome import Outcome, Summary, summarize
from bench.judge.traffic import Traffic

Judge = Callable[[Traffic], Outcome]
JUDGES: tuple[tuple[str, Judge], ...] = (
    (slipway_judge.NAME, slipway_judge.deploy),
    (threshold_judge.NAME, threshold_judge.deploy),
    (mannwhitney_judge.NAME, mannwhitney_judge.deploy),
)


@dataclass(frozen=True)
class Options:
    deployments: int = 1000  # A/A
    regression_runs: int = 200  # per regression
    seed: int = 1
    quick: bool = False


@dataclass
class Results:
    options: Options
    truth: list[GroundTruth]
    summaries: dict[str, dict[str, Summary]] = field(default_factory=dict)  # scenario, judge
    judge_seconds: dict[str, float] = field(default_factory=dict)  # CPU time per judge
    seconds: float = 0.0  # the whole run, wall clock


def runs_of(scenario: Scenario, options: Options) -> int:
    return options.deployments if scenario.key == "aa" else options.regression_runs


def run(options: Options, progress: bool = True) -> Results:
    started = time.perf_counter()
    results = Results(options, ground_truth())
    results.judge_seconds = {name: 0.0 for name, _ in JUDGES}
    for number, scenario in enumerate(SCENARIOS):
        outcomes: dict[str, list[Outcome]] = {name: [] for name, _ in JUDGES}
        for index in range(runs_of(scenario, options)):
            traffic = Traffic(scenario, seed=(options.seed, number, index))
            for name, deploy in JUDGES:
                before = time.process_time()
                outcomes[name].append(deploy(traffic))
                results.judge_seconds[name] += time.process_time() - before
        results.summaries[scenario.key] = {n: summarize(o) for n, o in outcomes.items()}
        if progress:
            print(
                f"  {scenario.title}: {runs_of(scenario, options)} deployments "
                f"({time.perf_counter() - started:.0f} s so far)",
                file=sys.stderr,
            )
    results.seconds = time.perf_counter() - started
    return results
