"""Driving slipway the way a user does: the real CLI (`python -m slipway`) in a throwaway home,
with the hello example copied to a short app folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

APP_NAME = "hello"
HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello"
# Builds and instances never reach for PyPI: no pip self-check, no index, no virtualenv
# periodic update (the daemon hands its environment to `virtualenv`).
OFFLINE_ENV = {
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_INDEX": "1",
    "VIRTUALENV_NO_PERIODIC_UPDATE": "1",
}
BUILD_COMMAND = "pip install -q -r requirements.txt"
STOP_GRACE_SECONDS = 3.0  # SIGTERM → SIGKILL, for slipway's instances and the naive baseline's


def app_env(greeting: str, boot_seconds: float) -> dict[str, str]:
    """The [env] of the benchmark's app (also used for the app started directly)."""
    env = {"GREETING": greeting} | OFFLINE_ENV
    if boot_seconds:
        env["BOOT_SECONDS"] = f"{boot_seconds:g}"
    return env


def app_toml(port: int, env: dict[str, str], gates: str | None = None) -> str:
    """Fast settings, as in the integration tests: two web instances, nothing else; the
    scans off unless `gates` (the [gates] tables) says otherwise."""
    env_lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in env.items())
    return f"""name = "{APP_NAME}"

[listen]
address = "127.0.0.1"
port = {port}

[processes]
web = "python app.py --port $PORT"

[build]
command = "{BUILD_COMMAND}"

[healthcheck]
path = "/up"
interval = "500ms"
timeout = "1s"
healthy_threshold = 2

[scale]
web = 2

[env]
{env_lines}

[deploy]
strategy = "bluegreen"
health_timeout = "20s"
drain_timeout = "5s"
stop_grace = "{STOP_GRACE_SECONDS:g}s"
keep_warm = "10m"
{GATES_OFF if gates is None else gates}"""


# The gates have their own benchmark (bench/gates); these benchmarks time the traffic switch.
GATES_OFF = """
[gates.secrets]
enabled = false
[gates.code]
enabled = false
[gates.dependencies]
enabled = false
"""


def copy_hello(dest: Path) -> Path:
    shutil.copytree(HELLO, dest, ignore=shutil.ignore_patterns("__pycache__", "slipway.toml"))
    return dest


@dataclass(frozen=True)
class Operation:
    """One `slipway deploy|rollback --json`: monotonic times around the CLI call, and its
    output ({"deployment": ..., "events": [...]}; times in it are wall-clock)."""

    kind: str
    started: float
    ended: float
    output: dict[str, Any]

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def deployment(self) -> dict[str, Any]:
        value: dict[str, Any] = self.output["deployment"]
        return value

    def event(self, step: str, status: str = "ok") -> dict[str, Any]:
        for event in self.output["events"]:
            if event["step"] == step and event["status"] == status:
                found: dict[str, Any] = event
                return found
        raise KeyError(f"{self.kind}: no '{step}' {status} event in {self.output['events']}")

    def step_seconds(self, step: str) -> float:
        return float(self.event(step)["data"]["seconds"])

    @property
    def daemon_seconds(self) -> float:
        """The deployment as the daemon recorded it: accepted → finished."""
        dep = self.deployment
        return float(dep["finished_at"]) - float(dep["started_at"])


class Slipway:
    def __init__(self, root: Path, app_dir: Path, public_port: int, boot_seconds: float) -> None:
        self.root = root
        self.home = root / "home"
        self.app_dir = app_dir
        self.port = public_port
        self.boot_seconds = boot_seconds
        self.env = (
            dict(os.environ)
            | OFFLINE_ENV
            | {"SLIPWAY_HOME": str(self.home), "SLIPWAY_HTTP": "127.0.0.1:0"}
        )
        self.started = False
        self.stopped = False
        self.prefix: list[str] = []  # e.g. `ip netns exec NS`: the CLI (and so the daemon) there

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*self.prefix, sys.executable, "-m", "slipway", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"slipway {' '.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n"
                f"--- stderr\n{proc.stderr}\n--- daemon log (tail)\n{self.daemon_log_tail()}"
            )
        return proc

    def timed(self, kind: str, *args: str) -> Operation:
        started = time.monotonic()
        proc = self.cli(*args, "--json")
        ended = time.monotonic()
        return Operation(kind, started, ended, json.loads(proc.stdout))

    def up(self) -> None:
        self.started = True
        self.cli("up")

    def deploy(self, greeting: str) -> Operation:
        env = app_env(greeting, self.boot_seconds)
        self.app_dir.joinpath("slipway.toml").write_text(app_toml(self.port, env))
        return self.timed("deploy", "deploy", "--app", str(self.app_dir))

    def rollback(self) -> Operation:
        return self.timed("rollback", "rollback", "--app", APP_NAME)

    def down_all(self) -> list[str]:
        """`slipway down --all` (starting the daemon first if it is not running), then the
        processes of this home still alive, if any (described, then killed by PID)."""
        if not self.started or self.stopped or not self.home.exists():
            return []
        self.stopped = True
        try:
            if not (self.home / "daemon.pid").exists():
                self.cli("up", timeout=120)
            self.cli("down", "--all", timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"warning: slipway down --all failed: {exc}", file=sys.stderr)
        deadline = time.monotonic() + 5
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        described = []
        for proc in self.leftovers():
            try:
                described.append(f"{proc.pid} {' '.join(proc.cmdline())}")
                proc.kill()
            except psutil.Error:
                pass
        return described

    def leftovers(self) -> list[psutil.Process]:
        """Processes of this (unique, temporary) home: daemon, HAProxy, shims, instances."""
        home, found = str(self.home), []
        for proc in psutil.process_iter():
            try:  # field by field: an exiting process can raise FileNotFoundError for cwd
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = " ".join(proc.cmdline())
                cwd = proc.cwd()
            except (psutil.Error, OSError):
                continue
            if home in cmdline or cwd.startswith(home):
                found.append(proc)
        return found

    def sigkills(self) -> int:
        """Instances the shims had to SIGKILL after their stop_grace, from their logs."""
        count = 0
        for log in self.home.glob("apps/*/instances/*/output.log*"):
            with open(log, encoding="utf-8", errors="replace") as lines:
                count += sum(1 for line in lines if "sending SIGKILL" in line)
        return count

    def daemon_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.home / "daemon.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"
