"""Times the CLI as a user runs it: one process per call, wall time around the whole
subprocess, every command in turn (the order rotated each round) so the machine's noise lands
on all of them alike."""

from __future__ import annotations

import os
import pty
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.zero_downtime.control import Slipway, copy_hello
from bench.zero_downtime.procs import free_port

PYTHON = sys.executable
SCRIPT = str(Path(sys.executable).parent / "slipway")  # the console script, as installed
BASELINE = "python -c pass"


@dataclass(frozen=True)
class Options:
    runs: int = 50
    warmup: int = 3
    app: bool = True  # deploy the hello example first, so status and ps show an app


@dataclass
class Timing:
    name: str
    argv: list[str]
    terminal: bool = False  # stdout and stderr a pseudo-terminal instead of pipes
    seconds: list[float] = field(default_factory=list)
    sample: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p90(self) -> float:
        return statistics.quantiles(self.seconds, n=10, method="inclusive")[-1]


@dataclass
class Results:
    options: Options
    timings: list[Timing]
    source: str  # where the measured processes imported slipway from
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    started: float
    leftovers: list[str]


def commands() -> list[Timing]:
    return [
        Timing(BASELINE, [PYTHON, "-c", "pass"]),
        Timing("slipway --version", [SCRIPT, "--version"]),
        Timing("slipway --help", [SCRIPT, "--help"]),
        Timing("slipway status", [SCRIPT, "status"]),
        Timing("slipway ps", [SCRIPT, "ps"]),
        Timing("slipway hosts", [SCRIPT, "hosts"]),
        Timing("python -m slipway status", [PYTHON, "-m", "slipway", "status"]),
        Timing("slipway status (terminal)", [SCRIPT, "status"], terminal=True),
    ]


def once(timing: Timing, env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """One run: wall seconds from spawn to exit, and what it wrote to stdout."""
    if timing.terminal:
        return on_terminal(timing.argv, env, cwd)
    started = time.perf_counter()
    proc = subprocess.run(timing.argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{timing.name} exited {proc.returncode}: {proc.stderr}")
    return seconds, proc.stdout


def on_terminal(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """As `once`, stdout and stderr a pseudo-terminal (read after the exit: the output of
    these commands fits the terminal's buffer)."""
    primary, secondary = pty.openpty()
    try:
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, cwd=cwd, stdout=secondary, stderr=secondary)
        seconds = time.perf_counter() - started
        os.close(secondary)
        secondary = -1
        output = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal is empty and closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {output!r}")
    return seconds, output.decode(errors="replace")


def source(env: dict[str, str]) -> str:
    """The slipway the measured processes import, with its checkout's commit."""
    code = "import slipway; print(slipway.__file__)"
    init = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True)
    folder = Path(init.stdout.strip()).parent
    commit = subprocess.run(
        ["git", "-C", str(folder), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return f"{folder} at {commit or '?'}{' (uncommitted changes)' if dirty else ''}"


def measure(options: Options) -> Results:
    root = Path(tempfile.mkdtemp(prefix="swcli-", dir="/tmp"))
    slipway = Slipway(root, copy_hello(root / "app"), free_port(), boot_seconds=0)
    leftovers: list[str] = []
    try:
        slipway.up()
        if options.app:
            slipway.deploy("hello")
        env = slipway.env
        timings = commands()
        load_before = os.getloadavg()
        started = time.time()
        for timing in timings:  # warm the page cache and the .pyc files
            for _ in range(options.warmup):
                once(timing, env, root)
        for round_ in range(options.runs):
            shift = round_ % len(timings)
            for timing in timings[shift:] + timings[:shift]:
                seconds, output = once(timing, env, root)
                timing.seconds.append(seconds)
                timing.sample = timing.sample or output
        return Results(
            options, timings, source(env), load_before, os.getloadavg(), started, leftovers
        )
    finally:
        leftovers += slipway.down_all()
        if not leftovers:
            shutil.rmtree(root, ignore_errors=True)
