"""The run: a real daemon in a throwaway home, two copies of examples/hello deployed through
it, the same in every way but [edge.cache] (one has it, one does not), both behind the same
HAProxy. wrk loads a cacheable path of each in turn, round after round, so a machine whose
speed drifts during the run is compared with itself. Every process started is stopped by
PID at the end, also on an error or Ctrl-C."""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.cache import wrk

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
PATH = "/edge/public"  # `Cache-Control: public, max-age=60`, ~1.9 KB of text/html
KINDS = ("cache", "no cache")


class Failed(RuntimeError):
    pass


@dataclass
class Results:
    rounds: int
    seconds: float
    connections: int
    runs: dict[str, list[wrk.Run]] = field(default_factory=lambda: {k: [] for k in KINDS})
    cache: dict[str, Any] | None = None  # slipway's view of the cached app's counters
    haproxy: str = ""


def config(name: str, port: int, cached: bool) -> str:
    edge = '\n[edge.cache]\nmax_age = "5m"\n' if cached else ""
    return f"""name = "{name}"

[listen]
address = "127.0.0.1"
port = {port}

[processes]
web = "python app.py --port $PORT"

[build]

[scale]
web = 1

[env]
GREETING = "hello"

[gates.secrets]
enabled = false
[gates.code]
enabled = false
[gates.dependencies]
enabled = false
{edge}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Session:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="swbench-cache-", dir="/tmp"))
        self.home = self.root / "home"
        self.env = os.environ | {"SLIPWAY_HOME": str(self.home), "SLIPWAY_HTTP": "127.0.0.1:0"}

    def slipway(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            cwd=cwd or self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise Failed(f"slipway {' '.join(args)}: {proc.stderr.strip() or proc.stdout}")
        return proc.stdout

    def app(self, name: str, cached: bool) -> str:
        folder = self.root / name
        shutil.copytree(HELLO, folder, ignore=shutil.ignore_patterns("__pycache__"))
        port = free_port()
        folder.joinpath("slipway.toml").write_text(config(name, port, cached))
        self.slipway("deploy", "--app", str(folder))
        return f"http://127.0.0.1:{port}{PATH}"

    def close(self) -> None:
        try:
            self.slipway("down", "--all")
        except (Failed, subprocess.TimeoutExpired) as exc:
            print(f"warning: slipway down --all: {exc}", file=sys.stderr)
        deadline = time.monotonic() + 5
        while self.ours() and time.monotonic() < deadline:
            time.sleep(0.1)
        for proc in self.ours():
            with contextlib.suppress(psutil.Error):
                proc.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def ours(self) -> list[psutil.Process]:
        """Live processes naming our home (daemon, HAProxy, supervisors, app instances)."""
        found = []
        for proc in psutil.process_iter():
            try:
                if str(self.home) in " ".join(proc.cmdline()) or proc.cwd().startswith(
                    str(self.home)
                ):
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return found


def run(rounds: int, seconds: float, connections: int) -> Results:
    results = Results(rounds, seconds, connections)
    version = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout.split()
    results.haproxy = " ".join(version[:3])  # "HAProxy version 2.6.12-…"
    session = Session()
    try:
        session.slipway("up")
        urls = {"cache": session.app("cached", True), "no cache": session.app("plain", False)}
        for url in urls.values():
            answer = httpx.get(url, timeout=5)
            if answer.status_code != 200 or "max-age" not in answer.headers.get("cache-control"):
                raise Failed(f"{url} answered {answer.status_code} {answer.headers}")
        for url in urls.values():  # warm-up: connections, the first cache entry
            wrk.run(url, 1, connections)
        for index in range(rounds):
            order = KINDS if index % 2 == 0 else KINDS[::-1]  # neither always goes first
            for kind in order:
                results.runs[kind].append(wrk.run(urls[kind], seconds, connections))
        results.cache = json.loads(session.slipway("cache", "--app", "cached", "--json"))["cache"]
    finally:
        session.close()
    return results
