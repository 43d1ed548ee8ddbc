"""The app's own costs, measured in the same run without slipway: making a virtualenv, running
the build command, and booting (spawn → first 200 on /up), so a deploy's time can be split
into what the app needs and what the control plane adds."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.zero_downtime.control import BUILD_COMMAND
from bench.zero_downtime.procs import Processes, free_port, http_status
from slipway.releases.build import base_env

POLL_EVERY = 0.005


@dataclass(frozen=True)
class AppCosts:
    virtualenv_seconds: float
    build_command_seconds: float
    boots: list[float]

    @property
    def boot(self) -> float:
        return statistics.median(self.boots)


def make_venv(venv: Path, env: dict[str, str]) -> float:
    """The same `virtualenv` call slipway's build makes; returns seconds."""
    began = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "virtualenv", "-q", str(venv)],
        env=dict(os.environ) | env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - began


def run_build_command(venv: Path, app_dir: Path, env: dict[str, str]) -> float:
    began = time.monotonic()
    subprocess.run(
        ["/bin/sh", "-c", BUILD_COMMAND],
        cwd=app_dir,
        env=base_env(venv) | env,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - began


def instance_env(venv: Path, env: dict[str, str], release: str) -> dict[str, str]:
    """What slipway gives an instance: a clean env with the release's venv first on PATH."""
    return base_env(venv) | env | {"SLIPWAY_RELEASE": release}


def start_app(
    procs: Processes, venv: Path, app_dir: Path, port: int, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    return procs.spawn(
        [venv / "bin" / "python", "app.py", "--port", str(port)], env=env, cwd=app_dir
    )


def wait_up(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while http_status(port, "/up", timeout=1.0) != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the app on port {port} did not answer /up within {timeout:g}s")
        time.sleep(POLL_EVERY)


def boot_once(procs: Processes, venv: Path, app_dir: Path, env: dict[str, str]) -> float:
    port = free_port()
    began = time.monotonic()
    proc = start_app(procs, venv, app_dir, port, env)
    try:
        wait_up(port)
        return time.monotonic() - began
    finally:
        procs.stop(proc)


def measure_boots(
    procs: Processes, venv: Path, app_dir: Path, env: dict[str, str], runs: int
) -> list[float]:
    return [boot_once(procs, venv, app_dir, env) for _ in range(runs)]
