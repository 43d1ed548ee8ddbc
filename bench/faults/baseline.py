"""The fleet without slipway's settings: one plain HAProxy (round-robin, the default health
check, no retries, no redispatch, no passive checks) in front of the same instances, on the
control host's address (the only one besides the lb hosts that the app hosts' firewalls let
reach the instances' ports). Started, reloaded and killed by the benchmark, by its PID."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from bench.zero_downtime.procs import Processes, wait_for


def plain_config(bind: str, servers: list[tuple[str, int]]) -> str:
    """HAProxy as a team would write it by hand: the same timeouts as slipway's, nothing
    else of its settings."""
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    retries 0",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "frontend fe",
        f"    bind {bind}",
        "    default_backend apps",
        "backend apps",
        "    balance roundrobin",
        *(f"    server s{i} {host}:{port} check" for i, (host, port) in enumerate(servers)),
    ]
    return "\n".join(lines) + "\n"


class PlainLb:
    def __init__(self, procs: Processes, folder: Path, bind: str) -> None:
        self.procs, self.folder, self.bind = procs, folder, bind
        self.config = folder / "haproxy.cfg"
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("haproxy") or "/usr/sbin/haproxy"

    def serve(self, servers: list[tuple[str, int]]) -> None:
        """Start, or reload with these servers (the old process finishes its requests)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config.write_text(plain_config(self.bind, servers))
        subprocess.run([self.binary, "-c", "-q", "-f", str(self.config)], check=True, timeout=10)
        old = self.proc
        argv = [self.binary, "-db", "-f", str(self.config)]
        if old is not None and old.poll() is None:
            argv += ["-sf", str(old.pid)]
        self.proc = self.procs.spawn(argv, env={}, cwd=self.folder)
        if old is not None:
            wait_for(lambda: old.poll() is not None, 30, "the old baseline HAProxy to finish")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
