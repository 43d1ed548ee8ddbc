"""What the daemon runs, each second: the app's web instances (every one with a process: starting,
serving or being retired all cost their host), read from the daemon's API in this process
(what `slipway ps --json` shows, without starting a CLI every second)."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from slipway.cli.client import Client
from slipway.errors import SlipwayError
from slipway.paths import Home

EVERY = 1.0


@dataclass(frozen=True)
class Look:
    t: float  # monotonic
    running: int  # web instances with a process
    serving: int  # of them, with weight (in HAProxy's rotation)


class Watch:
    def __init__(self, home: Path, app: str) -> None:
        self.client = Client(Home(home), timeout=10)
        self.app = app
        self.looks: list[Look] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def look(self) -> Look:
        views = self.client.get(f"/apps/{self.app}/instances")
        web = [v for v in views if v["process"] == "web" and v["pid"]]
        serving = [v for v in web if v["role"] == "serving"]
        return Look(time.monotonic(), len(web), len(serving))

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            with contextlib.suppress(SlipwayError):  # a missed look: the previous count holds
                self.looks.append(self.look())
            self._stop.wait(max(0.0, EVERY - (time.monotonic() - began)))

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> list[Look]:
        self._stop.set()
        self._thread.join(timeout=15)
        return self.looks
