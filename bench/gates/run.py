"""The run: a daemon in a temporary home, a stable release of hello, then `slipway check`
in every configuration, interleaved round-robin, and the performance gate alone; then the
performance gate while a neighbour app saturates the machine through HAProxy (part 3)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gates import osvdb
from bench.zero_downtime import control
from bench.zero_downtime.control import OFFLINE_ENV, Slipway, copy_hello
from bench.zero_downtime.cpu import CpuMonitor
from bench.zero_downtime.procs import free_port
from slipway.gates import osv

STEPS = ("build", "gates", "start", "health", "perf", "cleanup")
SCANS_OFF = control.GATES_OFF
UNIT = '[[gates.test]]\nname = "unit"\ncommand = "python -m unittest discover -s tests -q"\n'
PERFORMANCE = "[gates.performance]\n"  # the defaults: 2000 requests, 20 at a time, ["/"]
LABELS = {
    "baseline": "(a) baseline: no gate",
    "scans": "(b) scans: secrets, code, dependencies",
    "all": "(c) all: scans, unit tests, performance",
    "perf": "performance gate only",
    "same0": "under load: hello, identical",
    "same20": "under load: hello +20 ms, identical",
    "slower": "under load: hello +20 ms → +30 ms (×1.5)",
}
UNDER_LOAD = ("same0", "same20", "slower")
SLOW_MS, SLOWER_MS = 20, 30  # EXTRA_LATENCY_MS of the slow app's stable and its ×1.5 release
NEIGHBOUR_CONCURRENCY = 48  # closed loop, no rate cap: all the machine can serve
USERS_RATE = 50.0  # requests/s of the apps under test's own users, through HAProxy
LOAD_MAX_SECONDS = 4 * 3600  # the loads stop by themselves if the benchmark is gone


class Failed(Exception):
    """A check failed for another reason than the performance gate: the run is broken."""


def gates_toml(config: str, database: Path) -> str:
    scans = f'[gates.dependencies]\ndatabase = "{database}"\n'  # secrets and code: on by default
    return {
        "baseline": SCANS_OFF,
        "scans": scans,
        "all": scans + UNIT + PERFORMANCE,
        "perf": SCANS_OFF + PERFORMANCE,
    }[config]


def app_toml(port: int, gates: str) -> str:
    """hello's code and env never change, so every release is identical but for its gates."""
    return control.app_toml(port, {"GREETING": "hi"} | OFFLINE_ENV, gates)


@dataclass
class Check:
    config: str
    round: int
    wall: float  # around the CLI call
    steps: dict[str, float]  # the daemon's step times, from the ok events
    gates: list[dict[str, Any]]  # `slipway gates RELEASE --json`
    ok: bool
    busy: float = float("nan")  # share of all CPUs busy during the check (part 3)
    window: tuple[float, float] | None = None  # monotonic start and end (part 3)

    def gate(self, name: str) -> dict[str, Any] | None:
        return next((g for g in self.gates if g["gate"] == name), None)


@dataclass
class Results:
    started_at: float
    runs: int
    noise_runs: int
    osv_records: int = 0
    osv_bytes: int = 0
    osv_load_seconds: float = 0.0  # loading the database in this process, once
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0
    foreign_cpu: float = float("nan")  # other processes' CPU, as a share of one core
    leftovers: list[str] = field(default_factory=list)
    load_rounds: int = 0
    load_seconds: float = 0.0
    saturate: list[dict[str, Any]] = field(default_factory=list)  # each load's closing line


def check(sw: Slipway, config: str, index: int, app: tuple[Path, str] | None = None) -> Check:
    app_dir, name = app or (sw.app_dir, control.APP_NAME)
    command = [sys.executable, "-m", "slipway", "check", "--app", str(app_dir), "--json"]
    began = time.monotonic()
    proc = subprocess.run(command, cwd=sw.root, env=sw.env, capture_output=True, text=True)
    wall = time.monotonic() - began
    said = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    try:
        output = json.loads(proc.stdout)
        release = output["deployment"]["to_release"]
    except (ValueError, KeyError):
        raise Failed(f"slipway check exited {proc.returncode}\n{said}") from None
    listed = sw.cli("gates", release, "--app", name, "--json").stdout
    gates: list[dict[str, Any]] = json.loads(listed) if listed.strip() else []
    steps = {
        e["step"]: float(e["data"]["seconds"])
        for e in output["events"]
        if e["status"] == "ok" and e["step"] in STEPS and "seconds" in (e.get("data") or {})
    }
    result = Check(config, index, wall, steps, gates, proc.returncode == 0)
    failed = [g["gate"] for g in gates if g["status"] == "failed"]
    # Only the performance gate may fail an identical release: that is what is measured.
    if not result.ok and failed != ["performance"]:
        raise Failed(f"{LABELS[config]}: check of {release} failed ({failed})\n{said}")
    note = "".join(
        f"; {g['gate']} failed: {g['summary']}" for g in gates if g["status"] == "failed"
    )
    if config in UNDER_LOAD and (perf := result.gate("performance")) is not None:
        evidence = perf["evidence"]
        note += f"; {evidence.get('decision')} after {evidence.get('pairs')} pairs"
    print(f"  {LABELS[config]}, run {index + 1}: {wall:.1f} s{note}", file=sys.stderr)
    return result


def run(runs: int, noise_runs: int, osv_records: int, load_rounds: int = 0) -> Results:
    results = Results(time.time(), runs, noise_runs, load_rounds=load_rounds)
    root = Path(tempfile.mkdtemp(prefix="slipway-gates-", dir="/tmp"))
    app_dir = copy_hello(root / "app")
    sw = Slipway(root, app_dir, free_port(), boot_seconds=0)
    monitor = CpuMonitor(str(root))
    began = time.monotonic()
    try:
        database = root / "osv"
        results.osv_bytes = osvdb.generate(database, osv_records)
        loading = time.monotonic()
        results.osv_records = osv.load_database(database).records
        results.osv_load_seconds = time.monotonic() - loading
        monitor.start()
        sw.up()
        app_dir.joinpath("slipway.toml").write_text(app_toml(sw.port, gates_toml("baseline", root)))
        sw.timed("deploy", "deploy", "--app", str(app_dir))  # the stable release
        print(f"part 1: {runs} round(s) of (a), (b), (c)", file=sys.stderr)
        for index in range(runs):
            for config in ("baseline", "scans", "all"):
                toml = app_toml(sw.port, gates_toml(config, database))
                app_dir.joinpath("slipway.toml").write_text(toml)
                results.checks.append(check(sw, config, index))
        print(f"part 2: {noise_runs} check(s) with the performance gate only", file=sys.stderr)
        app_dir.joinpath("slipway.toml").write_text(app_toml(sw.port, gates_toml("perf", root)))
        for index in range(noise_runs):
            results.checks.append(check(sw, "perf", index))
        if load_rounds:
            under_load(sw, root, load_rounds, results)
    finally:
        monitor.stop()
        # Read once the monitor has stopped: while it runs, its two lists grow one at a time.
        for done in results.checks:
            if done.window is not None:
                done.busy = monitor.busy([done.window])[0]
        results.seconds = time.monotonic() - began
        if monitor.seconds:
            results.foreign_cpu = monitor.foreign.seconds / monitor.seconds
        results.leftovers = sw.down_all()
        shutil.rmtree(root, ignore_errors=True)
    return results


def other_app(sw: Slipway, root: Path, name: str, env: dict[str, str]) -> tuple[Path, int]:
    """Another copy of hello in the same daemon, on its own public port; deployed without
    gates. Returns its folder and port."""
    folder = copy_hello(root / name)
    port = free_port()
    write_app(folder, name, port, env, SCANS_OFF)
    sw.timed("deploy", "deploy", "--app", str(folder))
    return folder, port


def write_app(folder: Path, name: str, port: int, env: dict[str, str], gates: str) -> None:
    toml = control.app_toml(port, env | OFFLINE_ENV, gates)
    folder.joinpath("slipway.toml").write_text(
        toml.replace('name = "hello"', f'name = "{name}"', 1)
    )


def start_load(
    url: str, concurrency: int, rate: float | None, sw: Slipway
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.gates.saturate", url, "--concurrency", str(concurrency)]
    command += ["--max-seconds", str(LOAD_MAX_SECONDS)] + (["--rate", str(rate)] if rate else [])
    proc = subprocess.Popen(
        command, cwd=Path(__file__).resolve().parents[2], env=sw.env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "started":
        proc.kill()
        raise RuntimeError(f"the load on {url} did not start")
    return proc


def stop_load(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    try:
        line = proc.stdout.readline()
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {}
    return dict(json.loads(line)) if line.strip() else {}


def under_load(sw: Slipway, root: Path, rounds: int, results: Results) -> None:
    """Part 3: a neighbour app takes all the traffic the machine can serve, through HAProxy,
    while hello (as in the issue: its stable answers in about a millisecond when idle) and a
    slower copy of it (+20 ms a request) are checked, round-robin: each identical to its
    stable release, and the slow one also 1.5× slower (+30 ms)."""
    _, n_port = other_app(sw, root, "neighbour", {"GREETING": "busy"})
    slow_env = {"GREETING": "hi", "EXTRA_LATENCY_MS": str(SLOW_MS)}
    slow, s_port = other_app(sw, root, "slow", slow_env)
    perf = SCANS_OFF + PERFORMANCE
    sw.app_dir.joinpath("slipway.toml").write_text(app_toml(sw.port, perf))
    plan = {
        "same0": ((sw.app_dir, control.APP_NAME), None),
        "same20": ((slow, "slow"), slow_env),
        "slower": ((slow, "slow"), slow_env | {"EXTRA_LATENCY_MS": str(SLOWER_MS)}),
    }
    print(f"part 3: {rounds} round(s) of {', '.join(UNDER_LOAD)} under load", file=sys.stderr)
    loads = [start_load(f"http://127.0.0.1:{n_port}/", NEIGHBOUR_CONCURRENCY, None, sw)]
    began = time.monotonic()
    try:
        for port in (sw.port, s_port):  # the apps under test serve their own users too
            loads.append(start_load(f"http://127.0.0.1:{port}/", 4, USERS_RATE, sw))
        time.sleep(2)  # the machine is busy before the first check
        for index in range(rounds):
            for config in UNDER_LOAD:
                app, env = plan[config]
                if env is not None:
                    write_app(app[0], app[1], s_port, env, perf)
                started = time.monotonic()
                result = check(sw, config, index, app)
                result.window = (started, time.monotonic())
                results.checks.append(result)
    finally:
        results.load_seconds = time.monotonic() - began
        results.saturate = [stop_load(proc) for proc in loads]
