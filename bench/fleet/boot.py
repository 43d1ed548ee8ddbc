"""The app's own boot on N app hosts at once, without slipway: hello started directly in each
host's namespace (its own venv, built as slipway builds one, listening on the host's address,
as an instance does), all at the same moment; the time until the last one answers /up.
That is the slowest host's boot, with N boots sharing this machine's CPUs as a deploy's do."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

from bench.fleet.fleet import Fleet
from bench.zero_downtime.boot import instance_env
from bench.zero_downtime.control import app_env
from bench.zero_downtime.procs import Processes

BOOT_PORT = 20999  # below the ephemeral range the agents pick instance ports from
POLL_EVERY = 0.005


def answers(address: str, port: int) -> bool:
    conn = http.client.HTTPConnection(address, port, timeout=1.0)
    try:
        conn.request("GET", "/up")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def boot_together(
    fleet: Fleet, procs: Processes, venv: Path, app_dir: Path, hosts: list[str]
) -> float:
    """Spawn → the last of `hosts` answers /up, in seconds."""
    env = instance_env(venv, app_env("direct", 0), "direct")
    started = []
    began = time.monotonic()
    for host in hosts:
        address = fleet.bed.hosts[host].address
        argv = fleet.in_netns(host, [str(venv / "bin" / "python"), "app.py"])
        argv += ["--port", str(BOOT_PORT)]
        started.append(procs.spawn(argv, env=env | {"HOST": address}, cwd=app_dir))
    try:
        waiting = [fleet.bed.hosts[h].address for h in hosts]
        deadline = began + 30
        while waiting:
            waiting = [a for a in waiting if not answers(a, BOOT_PORT)]
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"hello started directly did not answer on {waiting}")
            if waiting:
                time.sleep(POLL_EVERY)
        return time.monotonic() - began
    finally:
        for proc in started:
            procs.terminate(proc)
        for proc in started:
            procs.reap(proc, 5.0)
