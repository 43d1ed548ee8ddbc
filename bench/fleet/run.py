"""The run: a fleet of 2 lb and 8 app hosts on this machine; the deploy sweep over 1, 2, 4 and
8 app hosts (interleaved with the app's own boot on as many hosts, measured directly); then
deploys and warm rollbacks of an app on 3 app hosts under a steady load through both lb
hosts; every switch watched on every lb host's admin socket. Every process, namespace and
the bridge started here are stopped here, also on error or Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.fleet.boot import boot_together
from bench.fleet.files import Shipping
from bench.fleet.fleet import Fleet, FleetApp
from bench.fleet.ship import install_together, pack
from bench.fleet.watch import Switch, TierWatch
from bench.zero_downtime.analysis import Timeline, Window
from bench.zero_downtime.boot import make_venv, run_build_command
from bench.zero_downtime.control import Operation, app_env, copy_hello
from bench.zero_downtime.cpu import CpuMonitor, ForeignCpu
from bench.zero_downtime.load import LoadProcess, LoadRun
from bench.zero_downtime.procs import Processes, free_port
from bench.zero_downtime.run import REPO, pause, revision, say

LBS = ["lb1", "lb2"]
APP_HOSTS = [f"app{i}" for i in range(1, 9)]
SIZES = [1, 2, 4, 8]
LOADED_HOSTS = 3  # the app deployed under load runs on app1..app3
QUIET_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class Options:
    rounds: int = 10  # deploys and as many rollbacks under load
    sweep_rounds: int = 5  # deploys per fleet size
    rate: float = 100.0  # requests per second through each lb host
    concurrency: int = 4  # connections per lb host
    steady_seconds: float = 10.0
    quiet_seconds: float = 2.0
    settle_seconds: float = 1.0
    boot_runs: int = 5  # direct boots on the 3 hosts under load


QUICK = Options(rounds=2, sweep_rounds=1, steady_seconds=3.0, quiet_seconds=1.0, boot_runs=2)


@dataclass(frozen=True)
class Watched:
    """An operation and the switch it made, seen on every lb host."""

    op: Operation
    switch: Switch
    gaps: list[float]  # seconds between consecutive looks at one lb host
    shipping: Shipping | None  # deploys: the release packed, copied and installed
    added: dict[str, list[float]]  # per lb host: when each new server appeared in it

    @property
    def adding(self) -> float:
        """The first new server → the last one in HAProxy, on the slowest lb host."""
        spans = [max(t) - min(t) for t in self.added.values() if t]
        return max(spans, default=0.0)


@dataclass
class LoadPart:
    steady: list[Window]
    deploys: list[Watched]
    rollbacks: list[Watched]
    boots: list[float]  # the app's boot on the 3 hosts at once, under the same load
    timelines: dict[str, Timeline]  # per lb host
    loads: dict[str, LoadRun]
    ended: float

    @property
    def timeline(self) -> Timeline:
        return Timeline(s for t in self.timelines.values() for s in t.samples)


@dataclass
class Results:
    options: Options
    started_at: float
    wall_offset: float
    revision: str
    busy_before: float
    setup_seconds: float  # the testbed, `slipway up` and adding the 10 hosts
    sweep: dict[int, list[Watched]] = field(default_factory=dict)
    boots: dict[int, list[float]] = field(default_factory=dict)
    installs: dict[int, list[float]] = field(default_factory=dict)
    packs: list[float] = field(default_factory=list)
    load: LoadPart | None = None
    cpu: CpuMonitor | None = None
    leftovers: list[str] = field(default_factory=list)


class FleetForeignCpu(ForeignCpu):
    """Also ours: any process in one of the testbed's network namespaces (sshd's sessions)."""

    def __init__(self, marker: str) -> None:
        super().__init__(marker)
        self.namespaces: set[int] = set()

    def is_ours(self, proc: psutil.Process, key: tuple[int, float]) -> bool:
        if key not in self.ours and self.namespaces:
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{proc.pid}/ns/net")  # net:[INODE]
                if int(link.split("[")[1].rstrip("]")) in self.namespaces:
                    self.ours[key] = True
        return super().is_ours(proc, key)


class Bench:
    def __init__(self, options: Options, root: Path, cpu: CpuMonitor) -> None:
        self.o = options
        self.root = root
        self.cpu = cpu
        self.procs = Processes()
        self.fleet = Fleet(root, LBS, APP_HOSTS)
        self.direct = copy_hello(root / "direct")
        self.venv = self.direct / ".venv"  # the direct copy is a built release
        self.serial = 0

    def greeting(self) -> str:
        self.serial += 1
        return f"g{self.serial}"

    def setup(self) -> float:
        began = time.monotonic()
        self.fleet.up()
        assert isinstance(self.cpu.foreign, FleetForeignCpu)
        self.cpu.foreign.namespaces = self.fleet.netns_inodes()
        hosts = self.fleet.hosts()
        lost = [h["name"] for h in hosts if not (h["reachable"] and h["agent"])]
        if lost:
            raise RuntimeError(f"hosts not ready after `hosts add`: {lost}")
        seconds = time.monotonic() - began
        env = app_env("direct", 0)
        make_venv(self.venv, env)
        run_build_command(self.venv, self.direct, env)
        return seconds

    def watched(self, app: FleetApp, kind: str) -> Watched:
        sockets = {lb: self.fleet.admin_socket(lb) for lb in LBS}
        if kind == "rollback":
            with TierWatch(sockets, app.name) as watch:
                op = self.fleet.rollback(app)
            return Watched(op, watch.switch(), watch.gaps(), None, watch.added())
        with TierWatch(sockets, app.name) as watch, self.fleet.ship_watch(app) as ship:
            op = self.fleet.deploy(app, self.greeting())
        return Watched(op, watch.switch(), watch.gaps(), ship.shipping(), watch.added())

    def run_sweep(self, results: Results) -> None:
        apps = {n: self.fleet.add_app(f"n{n}", free_port(), n, APP_HOSTS[:n]) for n in SIZES}
        for n, app in apps.items():
            self.fleet.deploy(app, self.greeting())  # the first: adds its backend everywhere
            say(f"n{n}: first deploy on {n} app host(s) done")
        results.sweep = {n: [] for n in SIZES}
        results.boots = {n: [] for n in SIZES}
        results.installs = {n: [] for n in SIZES}
        archive = self.root / "direct.tar.gz"
        seconds, digest = pack(self.direct, archive)  # what N hosts install, directly
        results.packs.append(seconds)
        for index in range(self.o.sweep_rounds):
            order = SIZES[index % len(SIZES) :] + SIZES[: index % len(SIZES)]
            for n in order:  # rotated, so a drifting machine hits every size alike
                boot = boot_together(self.fleet, self.procs, self.venv, self.direct, APP_HOSTS[:n])
                results.boots[n].append(boot)
                installed = install_together(archive, digest, self.root / "installs", n)
                results.installs[n].append(installed)
                pause(self.o.settle_seconds)
                watched = self.watched(apps[n], "deploy")
                results.sweep[n].append(watched)
                pause(self.o.settle_seconds)
                say(
                    f"sweep {index + 1}/{self.o.sweep_rounds}, {n} host(s): deploy "
                    f"{watched.op.seconds:.2f}s, direct boot {boot:.2f}s, "
                    f"install {installed:.2f}s, "
                    f"lb skew {watched.switch.skew * 1000:.1f} ms"
                )

    def load(self, url: str, name: str) -> LoadProcess:
        out = self.root / f"{name}-samples.json"
        proc = LoadProcess(self.procs, url, self.o.rate, self.o.concurrency, out)
        return proc.start(dict(os.environ), REPO)

    def run_load(self) -> LoadPart:
        app = self.fleet.add_app("hello", free_port(), LOADED_HOSTS, APP_HOSTS[:LOADED_HOSTS])
        self.fleet.deploy(app, self.greeting())  # r1: the release every rollback returns to
        loads = {lb: self.load(self.fleet.url(lb, app), lb) for lb in LBS}
        say(f"load: {self.o.rate:g} req/s through each of {', '.join(LBS)}")
        pause(2.0)
        hosts = APP_HOSTS[:LOADED_HOSTS]
        boots = []
        for _ in range(self.o.boot_runs):
            boots.append(boot_together(self.fleet, self.procs, self.venv, self.direct, hosts))
            pause(0.5)
        pause(1.0)
        steady = [pause(self.o.steady_seconds)]
        deploys, rollbacks = [], []
        for index in range(self.o.rounds):
            deploys.append(self.watched(app, "deploy"))
            pause(self.o.settle_seconds)
            rollbacks.append(self.watched(app, "rollback"))
            pause(self.o.settle_seconds)
            steady.append(pause(self.o.quiet_seconds))
            say(
                f"round {index + 1}/{self.o.rounds}: deploy {deploys[-1].op.seconds:.2f}s, "
                f"rollback {rollbacks[-1].op.seconds:.2f}s, lb skew "
                f"{rollbacks[-1].switch.skew * 1000:.1f} ms"
            )
        ended = time.monotonic()
        runs = {lb: load.stop() for lb, load in loads.items()}
        return LoadPart(
            steady,
            deploys,
            rollbacks,
            boots,
            {lb: Timeline(run.samples) for lb, run in runs.items()},
            runs,
            ended,
        )


def run(options: Options) -> Results:
    root = Path(tempfile.mkdtemp(prefix="swbf-", dir="/tmp"))
    root.chmod(0o755)
    started_at = time.time()
    wall_offset = time.time() - time.monotonic()
    cpu = CpuMonitor(str(root))
    cpu.foreign = FleetForeignCpu(str(root))
    cpu.start()
    bench: Bench | None = None
    leftovers: list[str] = []
    try:
        quiet = pause(QUIET_CHECK_SECONDS)
        busy_before = cpu.busy([(quiet.start, quiet.end)])[0]
        if busy_before > 0.15:
            say(f"warning: the machine is already {busy_before:.0%} busy; results will be noisy")
        bench = Bench(options, root, cpu)
        results = Results(options, started_at, wall_offset, revision(), busy_before, 0.0)
        results.setup_seconds = bench.setup()
        say(
            f"fleet of {len(LBS)} lb + {len(APP_HOSTS)} app hosts up "
            f"in {results.setup_seconds:.1f}s"
        )
        bench.run_sweep(results)
        results.load = bench.run_load()
    finally:
        cpu.stop()
        if bench is not None:
            bench.procs.stop_all()
            leftovers = bench.fleet.down()
        shutil.rmtree(root, ignore_errors=True)
    results.cpu = cpu
    results.leftovers = leftovers
    return results
