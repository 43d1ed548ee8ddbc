"""Integration fixtures: a real daemon in a throwaway home, real HAProxy, real app processes.

Every test gets its own home and app folder on short paths (unix sockets are limited to 107
bytes), and ends with `slipway down --all`; any process of ours still alive after that is
killed by pid and fails the test."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


@dataclass
class App:
    dir: Path
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def write_config(self, **sections: dict[str, Any] | str) -> None:
        self.dir.joinpath("slipway.toml").write_text(app_toml(self.name, self.port, **sections))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def app_toml(name: str, port: int, **sections: dict[str, Any] | str) -> str:
    """slipway.toml for the hello example, fast settings for tests; sections override."""
    base: dict[str, dict[str, Any]] = {
        "listen": {"address": "127.0.0.1", "port": port},
        "processes": {"web": "python app.py --port $PORT"},
        # hello needs only the standard library: no build command, so no pip start-up
        # (~1 s a deploy, 2-4 s on a busy machine); the tests of builds set their own
        "build": {},
        "healthcheck": {
            "path": "/up",
            "interval": "500ms",
            "timeout": "1s",
            "healthy_threshold": 2,
        },
        "scale": {"web": 2},
        "env": {"GREETING": "hello"},
        "deploy": {
            "health_timeout": "20s",
            "drain_timeout": "5s",
            "stop_grace": "3s",
            "keep_warm": "5m",
        },
        # The scans are on by default; tests of other things keep deploys fast without them
        # (test_gates.py turns them on).
        "gates.secrets": {"enabled": False},
        "gates.code": {"enabled": False},
        "gates.dependencies": {"enabled": False},
    }
    lines = [f'name = "{name}"', ""]
    extra = ""
    for section, values in sections.items():
        if isinstance(values, str):
            extra += values + "\n"
        elif section in ("processes", "scale", "env"):
            base[section] = dict(values)
        else:
            base[section] = base.get(section, {}) | values
    for section, values in base.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        lines.append("")
    return "\n".join(lines) + extra


@dataclass
class Slipway:
    home: Path
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        base = {"SLIPWAY_HOME": str(self.home), "SLIPWAY_HTTP": "127.0.0.1:0"}
        return os.environ | base | self.extra_env | extra

    def run(
        self,
        *args: str,
        check: bool = True,
        cwd: Path | None = None,
        timeout: float = 180,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            cwd=cwd or self.workdir,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"slipway {' '.join(args)} exited {proc.returncode}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}\n"
                f"--- daemon log (tail)\n{self.daemon_log_tail()}"
            )
        return proc

    def cli(self) -> list[str]:
        return [sys.executable, "-m", "slipway"]

    def json(self, *args: str, cwd: Path | None = None) -> Any:
        return json.loads(self.run(*args, "--json", cwd=cwd).stdout)

    def daemon_log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.home / "daemon.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no daemon log)"

    def make_app(self, name: str = "hello", **sections: dict[str, Any] | str) -> App:
        folder = self.workdir / name
        shutil.copytree(HELLO, folder, ignore=shutil.ignore_patterns("__pycache__"))
        app = App(folder, name, free_port())
        app.write_config(**sections)
        return app

    def deploy(self, app: App, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("deploy", "--app", str(app.dir), *args, check=check)

    def app_status(self, name: str) -> dict[str, Any]:
        apps = self.json("status")["apps"]
        return next(a for a in apps if a["name"] == name)

    def wait_idle(self, name: str, timeout: float = 60) -> dict[str, Any]:
        """Until the app has no deployment in flight; returns its status."""

        def idle() -> dict[str, Any] | None:
            status = self.app_status(name)
            return status if status["deployment"] is None else None

        result: dict[str, Any] = wait_for(idle, timeout, f"{name} to finish deploying", 0.2)
        return result

    def ps(self, name: str, settled: bool = True) -> list[dict[str, Any]]:
        """The app's instances; by default once old ones have finished stopping (a deploy
        returns when traffic has moved; retired processes stop in the background)."""

        deadline = time.monotonic() + 30
        while True:
            data: list[dict[str, Any]] = self.json("ps", "--app", name)
            if not settled or all(i["role"] != "retiring" for i in data):
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"instances still stopping after 30s: {data}")
            time.sleep(0.1)

    def our_processes(self) -> list[psutil.Process]:
        """Processes started for this home: shims, app instances, HAProxy, the daemon."""
        found = []
        home = str(self.home)
        for proc in psutil.process_iter():
            # Read each field here, not through process_iter(attrs): a process that exits
            # in between can raise a bare FileNotFoundError from /proc/PID/cwd there.
            try:
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                cmdline = " ".join(proc.cmdline())
                cwd = proc.cwd()
            except (psutil.Error, OSError):
                continue
            if home in cmdline or cwd.startswith(home):
                found.append(proc)
        return found


@pytest.fixture
def slipway() -> Iterator[Slipway]:
    home = Path(tempfile.mkdtemp(prefix="sw-", dir="/tmp"))
    work = Path(tempfile.mkdtemp(prefix="swapp-", dir="/tmp"))
    instance = Slipway(home=home / "home", workdir=work)
    try:
        yield instance
    finally:
        leftovers = stop_all(instance)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    assert not leftovers, f"processes left behind after `slipway down --all`: {leftovers}"


def stop_all(instance: Slipway) -> list[str]:
    """`slipway down --all` (starting the daemon first if a test left it dead), then report
    and kill, by pid, whatever of ours is still running."""
    if instance.home.exists():
        env = instance.env()
        if instance.run("status", check=False, env=env).returncode != 0:  # e.g. killed by a test
            instance.run("up", check=False, env=env)
        instance.run("down", "--all", check=False, env=env)
    described = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and instance.our_processes():
        time.sleep(0.1)
    for proc in instance.our_processes():
        try:
            described.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            proc.kill()
        except psutil.Error:
            pass
    return described


@pytest.fixture
def running(slipway: Slipway) -> Slipway:
    """A started daemon."""
    slipway.run("up")
    return slipway


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, promql: str) -> list[dict[str, Any]]:
        import httpx

        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5).json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture
def prometheus(slipway: Slipway) -> Iterator[Prometheus]:
    """A real Prometheus (Debian's package) scraping the app instances slipway lists for it,
    every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed: `make test` installs it (apt-get install prometheus)"
        )
    folder = Path(tempfile.mkdtemp(prefix="prom-", dir="/tmp"))
    port = free_port()
    slipway.run("up")  # /metrics needs a viewer token, which the daemon makes
    token = slipway.json("tokens", "create", "--name", "prometheus", "--role", "viewer")["token"]
    (folder / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: apps\n"
        f"    authorization:\n      credentials: {token}\n"
        "    file_sd_configs:\n"
        f"      - files: ['{slipway.home}/prometheus/*.json']\n        refresh_interval: 1s\n"
    )
    with ready_server(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        folder,
        port,
        "Prometheus",
    ) as (url, process):
        yield Prometheus(url, process)


@contextlib.contextmanager
def ready_server(
    command: list[str], folder: Path, port: int, name: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Prometheus-family server (its log in `folder`), once its /-/ready answers; stopped
    by its pid, and `folder` deleted, at the end."""
    import httpx

    log_path = folder / f"{name.lower()}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(
                f"{name} exited {process.returncode}: " + log_path.read_text()[-2000:]
            )
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 30, f"{name} to be ready")
        yield url, process
    finally:
        stop(process)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM a server a test started, SIGKILL if it has not stopped within 10 s."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
