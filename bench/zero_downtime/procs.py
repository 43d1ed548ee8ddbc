"""Processes the benchmark starts itself, and how it stops them: only by their recorded
Popen handles (an unreaped child keeps its PID, so a signal never reaches a stranger)."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
LOCALHOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 1.0) -> int:
    """The status of GET http://127.0.0.1:PORT/PATH, or 0 if nothing answered."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


class Processes:
    """Every process the benchmark spawns, each in its own session (Ctrl-C reaches only the
    benchmark, whose cleanup then stops them in order)."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def spawn(
        self,
        argv: Sequence[str | Path],
        *,
        env: dict[str, str],
        cwd: Path,
        stdout: int | IO[Any] = subprocess.DEVNULL,
        stdin: int | IO[Any] = subprocess.DEVNULL,
        text: bool = False,
    ) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not subprocess.DEVNULL else subprocess.DEVNULL,
            start_new_session=True,
            text=text,
        )
        self._procs.append(proc)
        return proc

    def terminate(self, proc: subprocess.Popen[Any]) -> None:
        """One SIGTERM (a second one could land in the app's own signal handling)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    def reap(self, proc: subprocess.Popen[Any], timeout: float) -> bool:
        """Wait up to `timeout` for the process to exit, then SIGKILL it; True if killed."""
        killed = False
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
        if proc in self._procs:
            self._procs.remove(proc)
        return killed

    def stop(self, proc: subprocess.Popen[Any], timeout: float = 10.0) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL; True if it had to be killed."""
        self.terminate(proc)
        return self.reap(proc, timeout)

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, timeout=5.0)
