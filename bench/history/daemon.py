"""A real slipway daemon on a home (`slipway up --http 127.0.0.1:0`, which starts HAProxy
too), its memory, and timed API queries over its TCP listener. Processes are ours when their
command line names our throwaway home; only those are ever signalled, by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from slipway.paths import Home

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = Path(sys.executable).with_name("slipway")
HOST = "127.0.0.1"
SETTLE = 3.0  # after start, before "right after start" memory: first flush, prune, alerts
STOP_TIMEOUT = 30.0


@dataclass
class Memory:
    rss: int
    uss: int | None


@dataclass
class Timing:
    """One kind of query: every client-observed round trip, in seconds."""

    label: str
    path: str
    times: list[float] = field(default_factory=list)  # httpx
    raw_times: list[float] = field(default_factory=list)  # RawClient: no delayed-ACK stall
    bytes: int = 0  # of the last answer
    points: int = 0  # time grid points in the last answer
    step: int = 0
    releases: int = 0
    status: int = 0

    def median(self, raw: bool = False) -> float:
        values = self.raw_times if raw else self.times
        return statistics.median(values) if values else float("nan")

    def p95(self, raw: bool = False) -> float:
        values = self.raw_times if raw else self.times
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    def worst(self) -> float:
        return max(self.times) if self.times else float("nan")


class RawClient:
    """HTTP/1.1 GETs on one keep-alive connection over a plain socket, acknowledging every
    segment at once (TCP_QUICKACK after each read). uvicorn writes a response's headers and
    body separately; on a listener without TCP_NODELAY the body waits for the ACK of the
    headers, which a client's kernel delays by up to 40 ms. This client never delays it, so
    it shows the answer without such a stall. It reads Content-Length bodies only (what the
    API sends)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=60.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> bytes:
        data = self.sock.recv(1 << 20)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not data:
            raise ConnectionError("the daemon closed the connection")
        return data

    def get(self, path: str) -> tuple[float, int, bytes]:
        """(seconds until the whole body was read, status, body)."""
        began = time.perf_counter()
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += self._read()
        head, body = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        while len(body) < length:
            body += self._read()
        return time.perf_counter() - began, status, body


def memory(pid: int) -> Memory:
    proc = psutil.Process(pid)
    try:
        full = proc.memory_full_info()
        return Memory(int(full.rss), int(full.uss))
    except psutil.AccessDenied:
        return Memory(int(proc.memory_info().rss), None)


def ours(home: Home) -> list[psutil.Process]:
    """Live processes whose command line names this home: the daemon and its HAProxy."""
    found = []
    root = str(home.root)
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
            continue
        if any(root in part for part in proc.info["cmdline"] or []):
            found.append(proc)
    return found


class Daemon:
    def __init__(self, home: Home) -> None:
        self.home = home
        self.env = dict(os.environ) | {"SLIPWAY_HOME": str(home.root)}
        self.env.pop("SLIPWAY_HTTP", None)
        self.pid = 0
        self.url = ""
        self.start_seconds = 0.0
        self.client: httpx.Client | None = None
        self.raw: RawClient | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(SLIPWAY), *args],
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"slipway {' '.join(args)} failed: {proc.stderr or proc.stdout}")
        return proc

    def start(self) -> None:
        began = time.perf_counter()
        out = json.loads(self.cli("up", "--http", "127.0.0.1:0", "--json").stdout)
        self.start_seconds = time.perf_counter() - began
        self.pid = int(out["pid"])
        self.url = self.home.http_file.read_text().strip().rstrip("/")
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the daemon listens on {self.url}, not on 127.0.0.1")
        self.client = httpx.Client(base_url=self.url, timeout=60.0)
        self.raw = RawClient(int(self.url.rsplit(":", 1)[1]))
        time.sleep(SETTLE)

    def memory(self) -> Memory:
        return memory(self.pid)

    def get(self, path: str) -> tuple[float, httpx.Response]:
        assert self.client is not None
        began = time.perf_counter()
        response = self.client.get(path)  # reads the whole body
        return time.perf_counter() - began, response

    def measure(self, timing: Timing, raw: bool = True) -> None:
        """The query with httpx, then (`raw`) the same with the RawClient."""
        seconds, response = self.get(timing.path)
        timing.times.append(seconds)
        timing.status = response.status_code
        timing.bytes = len(response.content)
        if response.status_code != 200:
            raise RuntimeError(f"GET {timing.path}: {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json()
        if "t" in body:
            timing.points = len(body["t"])
            timing.step = int(body["step"])
            timing.releases = len(body["releases"])
        if raw and self.raw is not None:
            seconds, status, _ = self.raw.get(timing.path)
            if status != 200:
                raise RuntimeError(f"GET {timing.path} (raw): {status}")
            timing.raw_times.append(seconds)

    def stop(self) -> list[str]:
        """`slipway down --all`; then whatever of ours is still alive is killed by PID and
        named in the answer."""
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.raw is not None:
            self.raw.close()
            self.raw = None
        leftovers: list[str] = []
        if self.pid:
            self.cli("down", "--all", check=False)
            deadline = time.monotonic() + STOP_TIMEOUT
            while psutil.pid_exists(self.pid) and time.monotonic() < deadline:
                try:
                    if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                        break
                except psutil.NoSuchProcess:
                    break
                time.sleep(0.05)
        for proc in ours(self.home):
            leftovers.append(f"{proc.pid} {' '.join(proc.cmdline())}")
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        return leftovers
