"""The run: a daemon in a temporary home, a stable release of hello, then `slipway check`
in every configuration, interleaved round-robin, and the performance gate alone."""

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
}


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


def check(sw: Slipway, config: str, index: int) -> Check:
    command = [sys.executable, "-m", "slipway", "check", "--app", str(sw.app_dir), "--json"]
    began = time.monotonic()
    proc = subprocess.run(command, cwd=sw.root, env=sw.env, capture_output=True, text=True)
    wall = time.monotonic() - began
    said = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    try:
        output = json.loads(proc.stdout)
        release = output["deployment"]["to_release"]
    except (ValueError, KeyError):
        raise Failed(f"slipway check exited {proc.returncode}\n{said}") from None
    listed = sw.cli("gates", release, "--app", control.APP_NAME, "--json").stdout
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
    print(f"  {LABELS[config]}, run {index + 1}: {wall:.1f} s{note}", file=sys.stderr)
    return result


def run(runs: int, noise_runs: int, osv_records: int) -> Results:
    results = Results(time.time(), runs, noise_runs)
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
    finally:
        monitor.stop()
        results.seconds = time.monotonic() - began
        if monitor.seconds:
            results.foreign_cpu = monitor.foreign.seconds / monitor.seconds
        results.leftovers = sw.down_all()
        shutil.rmtree(root, ignore_errors=True)
    return results
