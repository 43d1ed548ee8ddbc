"""The control plane lost and brought back: a change (a secret) made every half second with
its time; the daemon and every process of its home killed, the home deleted (the machine is
gone); `slipway control restore` from the replica host, run in another namespace of the bed
(another machine, another address), then `slipway up` there; which change it has."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

from tests.integration.testbed import Bed

from bench.zero_downtime.control import Slipway
from slipway.cli.client import Client
from slipway.paths import Home

MARK_EVERY = 0.5
SECRET = "MARK"


class Marks:
    """`with Marks(home, app):` sets the secret to 1, 2, 3 … every MARK_EVERY seconds;
    `made` holds (number, wall-clock time once the API took it)."""

    def __init__(self, home: Path, app: str) -> None:
        self.client = Client(Home(home), timeout=5)
        self.path = f"/apps/{app}/secrets/{SECRET}"
        self.made: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="marks")

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            try:
                self.client.request("PUT", self.path, {"value": str(number)})
            except Exception:  # a change the API did not take is not made
                number -= 1
            else:
                self.made.append((number, time.time()))
            self._stop.wait(MARK_EVERY)

    def __enter__(self) -> Marks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def destroy(slipway: Slipway) -> float:
    """Kill -9 the daemon and whatever else runs from its home, delete the home; when."""
    pid = int((slipway.home / "daemon.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()
    for proc in slipway.leftovers():
        proc.kill()
    shutil.rmtree(slipway.home)
    slipway.stopped = True  # nothing of it is left to stop
    return killed_at


def restored_in(root: Path, bed: Bed, host: str) -> Slipway:
    """A control plane whose CLI and daemon run in `host`'s namespace (home under `root`)."""
    root.mkdir(parents=True, exist_ok=True)
    slipway = Slipway(root, root / "unused", 0, 0.0)
    slipway.prefix = ["ip", "netns", "exec", bed.hosts[host].netns]
    return slipway


def restore(slipway: Slipway, bed: Bed, replica: str, key_file: Path) -> dict[str, object]:
    host = bed.hosts[replica]
    out = slipway.cli(
        "control", "restore", "--from", host.address, "--fingerprint", bed.fingerprint(replica),
        "--key", str(bed.key), "--remote-home", str(host.home), "--replica-key", str(key_file),
        "--json",
    )  # fmt: skip
    done: dict[str, object] = json.loads(out.stdout)
    return done


def kept_mark(slipway: Slipway, app: str) -> int:
    out = slipway.cli("secrets", "get", SECRET, "--app", app, "--reveal")
    return int(out.stdout.strip())
