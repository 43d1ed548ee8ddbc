"""What receives the datagrams: the real slipway daemon, or the floor (a bare asyncio receiver
that only counts). Both are processes of ours, started here, measured by their PID and stopped
by it.

`settle()` waits, on a condition with a deadline, until the receiver has taken in everything
sent to it, and says how much it counted."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Protocol

import psutil

from bench.ingest.lines import APPS, app_name, marker_line

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
START_TIMEOUT = 60.0
SETTLE_TIMEOUT = 30.0
LOSS_TIMEOUT = 5.0
POLL = 0.05


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def wakeups(proc: psutil.Process) -> int:
    """Voluntary context switches: how often the receiver slept and was woken."""
    return int(proc.num_ctx_switches().voluntary)


class Target(Protocol):
    name: str
    port: int
    process: psutil.Process

    def add_apps(self, tag: str) -> None:
        """Make the apps of step `tag` known, as far as the receiver needs to."""
        ...

    def settle(self, tag: str) -> int:
        """Lines of step `tag` counted, once everything sent before this call is taken in."""
        ...

    def losses(self, at_least: int = 0) -> int | None:
        """Losses the receiver itself recorded so far, once they reach `at_least` or a
        deadline has passed (None: it records none)."""
        ...

    def stop(self) -> list[str]:
        """Stop it; returns what had to be killed."""
        ...


def _spawn(argv: list[str], env: dict[str, str], out: int | IO[Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches only the benchmark, which then stops it
        text=True,
    )


def _reap(proc: subprocess.Popen[str], timeout: float) -> bool:
    """Wait for it to exit, SIGKILL after `timeout`; True if it had to be killed."""
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return True


class Floor:
    """`python -m bench.ingest.floor`: counts datagrams, answers `?` with the count."""

    name = "floor"

    def __init__(self) -> None:
        self.proc = _spawn(
            [sys.executable, "-m", "bench.ingest.floor"], dict(os.environ), subprocess.PIPE
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        try:
            self.port = int(first)
        except ValueError:
            self.stop()  # not started: not left behind either
            raise RuntimeError(f"the floor receiver did not start: {first}") from None
        self.process = psutil.Process(self.proc.pid)
        self.counted = 0

    def add_apps(self, tag: str) -> None:
        pass

    def ask(self) -> int | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.settimeout(0.25)
            sock.sendto(b"?", (HOST, self.port))
            try:
                return int(sock.recv(64))
            except TimeoutError:
                return None  # the question was dropped, or the answer is late: ask again

    def settle(self, tag: str) -> int:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while (total := self.ask()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the floor receiver did not answer in {SETTLE_TIMEOUT:g}s")
        counted, self.counted = total - self.counted, total
        return counted

    def losses(self, at_least: int = 0) -> int | None:
        return None

    def stop(self) -> list[str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        killed = _reap(self.proc, 5.0)
        return [f"{self.proc.pid} floor receiver"] if killed else []


class Daemon:
    """`slipway --home HOME server` in the foreground, in a throwaway home under /tmp."""

    name = "slipway"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="swi-", dir="/tmp"))
        self.home = self.root / "h"  # short: unix socket paths are limited to 107 bytes
        self.env = dict(os.environ) | {"SLIPWAY_HOME": str(self.home)}
        self.log_path = self.root / "daemon.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = _spawn(
            [sys.executable, "-m", "slipway", "--home", str(self.home), "server"],
            self.env,
            self.log,
        )
        self.process = psutil.Process(self.proc.pid)
        self.port = self._wait_started()
        self.db = sqlite3.connect(f"file:{self.home / 'state.db'}?mode=ro", uri=True)
        self.nonce = 0

    def add_apps(self, tag: str) -> None:
        """Give the step's apps their folders, as deployed apps have: the daemon then keeps
        their request log lines on disk too (it skips lines of apps without a folder), so it
        does all the work it does for real traffic."""
        for app in APPS:
            (self.home / "apps" / app_name(app, tag)).mkdir(parents=True, exist_ok=True)

    def _wait_started(self) -> int:
        """Until the API socket is bound (after the UDP port, the store and the start-up
        reconciliation); the UDP port."""
        deadline = time.monotonic() + START_TIMEOUT
        while not (self.home / "slipway.sock").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError(f"the daemon did not start:\n{tail}")
            time.sleep(POLL)
        return int((self.home / "ingest.port").read_text())

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def recorded(self, tag: str) -> int:
        names = [app_name(app, tag) for app in APPS]
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT COALESCE(SUM(requests), 0) FROM traffic WHERE app IN ({marks})", names
        ).fetchone()
        return int(row[0])

    def _marked(self, tag: str) -> bool:
        query = "SELECT 1 FROM traffic WHERE app = ? LIMIT 1"
        return self.db.execute(query, (f"mark-{tag}",)).fetchone() is not None

    def settle(self, tag: str) -> int:
        """Sends a marker line (again every 0.25 s, in case one is lost) after the step's
        lines and waits until the daemon has recorded one: the socket is one queue and
        seconds are flushed in order, so it has recorded every line sent before it."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        next_marker = 0.0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            while not self._marked(tag):
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(
                        f"the daemon recorded no marker in {SETTLE_TIMEOUT:g}s:\n{self.log_tail()}"
                    )
                if now >= next_marker:
                    self.nonce += 1
                    sock.sendto(marker_line(tag, self.nonce), (HOST, self.port))
                    next_marker = now + 0.25
                time.sleep(POLL)
        return self.recorded(tag)

    def losses(self, at_least: int = 0) -> int | None:
        """From `ingest_losses` (the daemon looks at the kernel's counter every 0.25 s)."""
        deadline = time.monotonic() + LOSS_TIMEOUT
        query = "SELECT COALESCE(SUM(lost), 0) FROM ingest_losses"
        while (lost := int(self.db.execute(query).fetchone()[0])) < at_least:
            if time.monotonic() > deadline:
                break
            time.sleep(POLL)
        return lost

    def ours(self) -> list[psutil.Process]:
        """Processes started for this home (the daemon, HAProxy), found by the home in their
        command line."""
        found = []
        for proc in psutil.process_iter(["cmdline", "status"]):
            with contextlib.suppress(psutil.Error):
                if proc.info["status"] != psutil.STATUS_ZOMBIE and str(self.home) in " ".join(
                    proc.info["cmdline"] or []
                ):
                    found.append(proc)
        return found

    def stop(self) -> list[str]:
        """`slipway down --all`; then the daemon's PID must be gone, and so must anything
        else started for this home (killed by PID and reported if not)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [sys.executable, "-m", "slipway", "--home", str(self.home), "down", "--all"],
                env=self.env,
                cwd=REPO,
                capture_output=True,
                timeout=120,
            )
        killed = [f"{self.proc.pid} slipway daemon"] if _reap(self.proc, 30.0) else []
        deadline = time.monotonic() + 5.0
        while self.ours() and time.monotonic() < deadline:
            time.sleep(POLL)
        for proc in self.ours():
            with contextlib.suppress(psutil.Error):
                killed.append(f"{proc.pid} {' '.join(proc.cmdline())}")
                proc.kill()
        if hasattr(self, "db"):
            self.db.close()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
        return killed
