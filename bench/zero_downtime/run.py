"""The run: slipway under load (steady, then deploy/rollback rounds), then the naive baseline
under the same load; every process started here is stopped here, also on error or Ctrl-C."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.zero_downtime.analysis import Timeline, Window
from bench.zero_downtime.boot import (
    AppCosts,
    instance_env,
    make_venv,
    measure_boots,
    run_build_command,
)
from bench.zero_downtime.control import Operation, Slipway, app_env, copy_hello
from bench.zero_downtime.cpu import CpuMonitor
from bench.zero_downtime.load import LoadProcess, LoadRun
from bench.zero_downtime.naive import NaiveDeploy, NaiveSite
from bench.zero_downtime.procs import Processes, free_port

REPO = Path(__file__).resolve().parents[2]
WARMUP_SECONDS = 2.0
QUIET_CHECK_SECONDS = 2.0  # how busy the machine is before we start, reported with the results


@dataclass(frozen=True)
class Options:
    rounds: int = 20
    rate: float = 400.0
    concurrency: int = 16
    steady_seconds: float = 10.0
    quiet_seconds: float = 2.0  # a steady slice at the end of every round, against drift
    settle_seconds: float = 1.0
    boot_runs: int = 10
    boot_seconds: float = 0.0
    client: str = "raw"  # the load generator's HTTP client: "raw" (light) or "httpx"


@dataclass
class SlipwayPart:
    steady: list[Window]  # before any deploy, then a quiet slice after every round
    status_calls: list[Window]  # control: `slipway status` calls, the CLI's start-up alone
    deploys: list[Operation]
    rollbacks: list[Operation]
    timeline: Timeline
    load: LoadRun
    ended: float  # when the load stopped
    sigkills: int  # instances SIGKILLed by their shim after stop_grace


@dataclass
class BaselinePart:
    steady: list[Window]
    deploys: list[NaiveDeploy]
    timeline: Timeline
    load: LoadRun
    floor: Timeline  # the noise floor: HAProxy answering by itself, same load
    floor_window: Window


@dataclass
class Results:
    options: Options
    started_at: float  # wall clock
    wall_offset: float  # time.time() - time.monotonic(): daemon times → the samples' clock
    costs: AppCosts
    slipway: SlipwayPart
    baseline: BaselinePart
    leftovers: list[str]
    cpu: CpuMonitor
    revision: str
    busy_before: float  # the machine's CPU busy share in the seconds before the run began


def revision() -> str:
    """The slipway source measured: the commit, and whether src/ had uncommitted changes."""

    def git(*args: str) -> str:
        try:
            proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        except OSError:
            return ""
        return proc.stdout.strip() if proc.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "src")
    return commit + (" with uncommitted changes in src/" if dirty else "")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pause(seconds: float) -> Window:
    began = time.monotonic()
    time.sleep(seconds)
    return Window("", began, time.monotonic())


class Bench:
    def __init__(self, options: Options, root: Path) -> None:
        self.o = options
        self.root = root
        self.procs = Processes()
        self.app_dir = copy_hello(root / "app")
        self.venv = root / "venv"
        self.slipway = Slipway(root, self.app_dir, free_port(), options.boot_seconds)
        self.load_env = dict(os.environ)

    def load(self, url: str, name: str) -> LoadProcess:
        out = self.root / f"{name}-samples.json"
        load = LoadProcess(self.procs, url, self.o.rate, self.o.concurrency, out, self.o.client)
        return load.start(self.load_env, REPO)

    def app_costs_without_boots(self) -> AppCosts:
        env = app_env("direct", self.o.boot_seconds)
        venv_seconds = make_venv(self.venv, env)
        build_seconds = run_build_command(self.venv, self.app_dir, env)
        return AppCosts(venv_seconds, build_seconds, [])

    def run_slipway(self, costs: AppCosts) -> SlipwayPart:
        s = self.slipway
        s.up()
        s.deploy("round 0")  # r1: the release every rollback returns to
        say(f"slipway serving on {s.url}; load {self.o.rate:g} req/s, {self.o.concurrency} conns")
        load = self.load(s.url, "slipway")
        pause(WARMUP_SECONDS)
        env = instance_env(self.venv, app_env("direct", self.o.boot_seconds), "direct")
        costs.boots.extend(
            measure_boots(self.procs, self.venv, self.app_dir, env, self.o.boot_runs)
        )
        say(f"app boot (direct, under load): median {costs.boot * 1000:.0f} ms")
        pause(1.0)
        steady = [pause(self.o.steady_seconds)]
        status_calls = []
        for _ in range(self.o.rounds):
            began = time.monotonic()
            s.cli("status", "--json")
            status_calls.append(Window("status", began, time.monotonic()))
            pause(self.o.settle_seconds)
        say(f"{len(status_calls)} `slipway status` calls (control) done")
        deploys, rollbacks = [], []
        for index in range(1, self.o.rounds + 1):
            deploy = s.deploy(f"round {index}")
            deploys.append(deploy)
            pause(self.o.settle_seconds)
            rollback = s.rollback()
            rollbacks.append(rollback)
            pause(self.o.settle_seconds)
            steady.append(pause(self.o.quiet_seconds))
            say(
                f"round {index}/{self.o.rounds}: deploy {deploy.seconds:.2f}s "
                f"(build {deploy.step_seconds('build'):.2f}s), rollback {rollback.seconds:.2f}s"
            )
        ended = time.monotonic()
        run = load.stop()
        return SlipwayPart(
            steady,
            status_calls,
            deploys,
            rollbacks,
            Timeline(run.samples),
            run,
            ended,
            s.sigkills(),
        )

    def run_baseline(self) -> BaselinePart:
        site = NaiveSite(
            self.procs, self.root, self.venv, self.app_dir, app_env("naive", self.o.boot_seconds)
        )
        site.start()
        say(f"noise floor: HAProxy answering by itself on {site.static_url}")
        floor_load = self.load(site.static_url, "floor")
        pause(WARMUP_SECONDS)
        floor_window = pause(self.o.steady_seconds)
        floor = floor_load.stop()
        say(f"baseline HAProxy on {site.url}")
        load = self.load(site.url, "baseline")
        pause(WARMUP_SECONDS + 1.0)
        steady = [pause(self.o.steady_seconds)]
        deploys = []
        for index in range(1, self.o.rounds + 1):
            deploy = site.deploy()
            deploys.append(deploy)
            pause(self.o.settle_seconds)
            steady.append(pause(self.o.quiet_seconds))
            say(
                f"naive {index}/{self.o.rounds}: stop+start {deploy.seconds:.2f}s, "
                f"routed again after {deploy.routed - deploy.started:.2f}s"
            )
        run = load.stop()
        site.stop()
        return BaselinePart(
            steady,
            deploys,
            Timeline(run.samples),
            run,
            Timeline(floor.samples),
            floor_window,
        )


def run(options: Options) -> Results:
    root = Path(tempfile.mkdtemp(prefix="swz-", dir="/tmp"))
    started_at = time.time()
    wall_offset = time.time() - time.monotonic()
    measured = revision()
    leftovers: list[str] = []
    cpu = CpuMonitor(str(root)).start()
    bench: Bench | None = None
    try:
        quiet = pause(QUIET_CHECK_SECONDS)
        busy_before = cpu.busy([(quiet.start, quiet.end)])[0]
        if busy_before > 0.15:
            say(f"warning: the machine is already {busy_before:.0%} busy; results will be noisy")
        bench = Bench(options, root)
        costs = bench.app_costs_without_boots()
        slipway = bench.run_slipway(costs)
        leftovers = bench.slipway.down_all()
        baseline = bench.run_baseline()
    finally:
        cpu.stop()
        if bench is not None:
            bench.procs.stop_all()
            leftovers += bench.slipway.down_all()
        shutil.rmtree(root, ignore_errors=True)
    return Results(
        options,
        started_at,
        wall_offset,
        costs,
        slipway,
        baseline,
        leftovers,
        cpu,
        measured,
        busy_before,
    )
