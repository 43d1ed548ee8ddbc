"""The run: a daemon in a temporary home, hello with a worker pool (SLOTS) and a service time,
and the same open-loop ramp three times: autoscaled, then a fixed `max` count, then a fixed
`min` count (the overloaded baseline last, so its backlog cannot spill into the others)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.autoscale.ramp import Ramp
from bench.autoscale.watch import Look, Watch
from bench.zero_downtime import control
from bench.zero_downtime.control import OFFLINE_ENV, Slipway, copy_hello
from bench.zero_downtime.cpu import CpuMonitor
from bench.zero_downtime.load import READY, READY_NORMAL
from bench.zero_downtime.procs import Processes, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("auto", "max", "min")
SETTLE_SECONDS = 3.0  # idle between a variant's deploy and its ramp


@dataclass(frozen=True)
class Options:
    slots: int  # hello's SLOTS: requests served at once per instance
    service_ms: float  # a request's service time in its slot: EXTRA_LATENCY_MS + WORK_MS
    work_ms: float  # of it, CPU work (WORK_MS); the rest is a sleep
    ramp: Ramp
    min: int
    max: int
    signal: str
    target: float  # the autoscaler's target, in the signal's unit
    every: float
    window: float
    scale_down_after: float
    latency_target_ms: float  # the benchmark's p95 target

    @property
    def capacity(self) -> float:
        """One instance's requests/s at full use of its slots."""
        return self.slots * 1000 / self.service_ms

    def autoscale_toml(self) -> str:
        return (
            f'\n[autoscale.web]\nmin = {self.min}\nmax = {self.max}\nsignal = "{self.signal}"\n'
            f'target = {self.target:g}\nevery = "{self.every:g}s"\nwindow = "{self.window:g}s"\n'
            f'scale_down_after = "{self.scale_down_after:g}s"\n'
        )

    def env(self) -> dict[str, str]:
        sleep_ms = self.service_ms - self.work_ms
        return {"GREETING": "hi", "SLOTS": str(self.slots), "WORK_MS": f"{self.work_ms:g}",
                "EXTRA_LATENCY_MS": f"{sleep_ms:g}"} | OFFLINE_ENV  # fmt: skip


@dataclass
class Variant:
    name: str  # auto | max | min
    start: float  # monotonic: the ramp's t = 0
    rows: list[list[Any]]  # the load's requests (bench.autoscale.load.Row)
    looks: list[Look]
    connections: int
    load_cpu_seconds: float
    prioritised: bool
    deploy_seconds: float
    busy: float = float("nan")  # share of all CPUs busy during the ramp
    steal: float = float("nan")
    history: list[dict[str, Any]] = field(default_factory=list)  # autoscaler decisions
    wall_offset: float = 0.0  # time.time() - time.monotonic(), for the decisions' times


@dataclass
class Results:
    options: Options
    started_at: float
    variants: list[Variant] = field(default_factory=list)
    seconds: float = 0.0
    foreign_cpu: float = float("nan")  # other processes' CPU, as a share of one core
    foreign_top: list[tuple[str, float]] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)


def app_toml(sw: Slipway, options: Options, variant: str) -> str:
    toml = control.app_toml(sw.port, options.env())
    count = {"auto": options.min, "max": options.max, "min": options.min}[variant]
    for old, new in (("[scale]\nweb = 2\n", f"[scale]\nweb = {count}\n"),
                     ('keep_warm = "10m"', 'keep_warm = "0s"')):  # fmt: skip
        assert old in toml, f"control.app_toml changed: no {old!r}"
        toml = toml.replace(old, new)
    return toml + (options.autoscale_toml() if variant == "auto" else "")


def deploy(sw: Slipway, options: Options, variant: str, watch: Watch) -> float:
    """Deploys the variant's config and waits until exactly its count serves; its seconds."""
    count = {"auto": options.min, "max": options.max, "min": options.min}[variant]
    sw.app_dir.joinpath("slipway.toml").write_text(app_toml(sw, options, variant))
    began = time.monotonic()
    sw.timed("deploy", "deploy", "--app", str(sw.app_dir))
    apps = json.loads(sw.cli("status", "--json").stdout)["apps"]
    status = next(a for a in apps if a["name"] == control.APP_NAME)
    if int(status["formation"]["web"]) != count:  # a deploy may keep an autoscaled count
        sw.cli("scale", f"web={count}", "--app", control.APP_NAME)
    wait_for(lambda: (look := watch.look()).running == count and look.serving == count, 120,
             f"{count} web instances serving, no other")  # fmt: skip
    return time.monotonic() - began


def ramp_once(sw: Slipway, procs: Processes, options: Options, variant: str, out: Path,
              deploy_seconds: float) -> Variant:  # fmt: skip
    watch = Watch(sw.home, control.APP_NAME)
    print(f"{variant}: ramp of {options.ramp.seconds:g} s", file=sys.stderr)
    argv = [sys.executable, "-m", "bench.autoscale.load", sw.url,
            "--ramp", json.dumps(asdict(options.ramp)), "--out", str(out)]  # fmt: skip
    proc = procs.spawn(argv, env=sw.env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line not in (READY, READY_NORMAL):
        raise RuntimeError(f"the load generator did not start: {line!r}")
    watch.start()
    try:
        proc.wait(timeout=options.ramp.seconds + 60)
    finally:
        looks = watch.stop()
        procs.reap(proc, 5)
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator exited with {proc.returncode}")
    data = json.loads(out.read_text())
    result = Variant(variant, float(data["start"]), data["rows"], looks,
                     int(data["connections"]), float(data["cpu_seconds"]),
                     bool(data["prioritised"]), deploy_seconds,
                     wall_offset=time.time() - time.monotonic())  # fmt: skip
    if variant == "auto":
        shown = sw.cli("autoscale", "--app", control.APP_NAME, "--history", "500", "--json")
        result.history = list(json.loads(shown.stdout)["history"])
    return result


def run(options: Options, variants: tuple[str, ...] = VARIANTS, log: Path | None = None) -> Results:
    """`log`: where to copy the daemon's log to (the temporary home is removed)."""
    results = Results(options, time.time())
    # A short folder: the daemon's unix sockets must fit AF_UNIX's 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="slipway-as-", dir="/tmp"))
    sw = Slipway(root, copy_hello(root / "app"), free_port(), boot_seconds=0)
    procs = Processes()
    monitor = CpuMonitor(str(root))
    began = time.monotonic()
    try:
        monitor.start()
        sw.up()
        watch = Watch(sw.home, control.APP_NAME)
        for variant in variants:
            seconds = deploy(sw, options, variant, watch)
            time.sleep(SETTLE_SECONDS)
            out = root / f"load-{variant}.json"
            results.variants.append(ramp_once(sw, procs, options, variant, out, seconds))
    finally:
        procs.stop_all()
        monitor.stop()
        # Read once the monitor has stopped: while it runs, its two lists grow one at a time.
        for done in results.variants:
            window = (done.start, done.start + options.ramp.seconds)
            done.busy, done.steal = monitor.busy([window])
        results.seconds = time.monotonic() - began
        if monitor.seconds:
            results.foreign_cpu = monitor.foreign.seconds / monitor.seconds
            results.foreign_top = [(n, float(s)) for n, s in monitor.foreign.by_name.most_common(3)]
        results.leftovers = sw.down_all()
        if log is not None and (sw.home / "daemon.log").exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sw.home / "daemon.log", log)
        shutil.rmtree(root, ignore_errors=True)
    return results
