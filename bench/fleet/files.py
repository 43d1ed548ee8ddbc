"""Watching a deploy ship its release, from outside: a thread lists, every few milliseconds,
the folders where slipway packs the release (the control host's `apps/APP/artifacts`), where
it copies the archive on each app host (`apps/APP/artifacts` in the host's agent home) and
where the host unpacks it (`apps/APP/releases`, `FOLDER.unpacking` then `FOLDER`), and notes
when each new name first appeared. The deploy's start step is then cut into packing, shipping
(copy + install, all hosts) and the rest, without touching slipway."""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LIST_EVERY = 0.005


@dataclass(frozen=True)
class Shipping:
    """Monotonic times, NaN when not seen."""

    pack_start: float  # the archive's .tmp appears on the control host
    pack_end: float  # the archive is complete on the control host
    uploads: dict[str, float]  # per host: the copy begins
    installs: dict[str, float]  # per host: unpacking begins
    installed: dict[str, float]  # per host: the release's folder is in place

    @property
    def shipped(self) -> float:
        """The last host has the release installed."""
        return max(self.installed.values(), default=math.nan)

    @property
    def seconds(self) -> float:
        """Pack start → installed on every host."""
        start = self.pack_start if not math.isnan(self.pack_start) else self.pack_end
        return self.shipped - start

    @property
    def pack_seconds(self) -> float:
        return self.pack_end - self.pack_start

    @property
    def install_seconds(self) -> float:
        """The slowest host's unpacking + virtualenv."""
        return max(
            (t - self.installs.get(h, math.nan) for h, t in self.installed.items()),
            default=math.nan,
        )


class ShipWatch:
    def __init__(self, control: Path, hosts: dict[str, Path]) -> None:
        """`control`: the control host's apps/APP; `hosts`: each app host's apps/APP."""
        self.folders = {("control", "artifacts"): control / "artifacts"}
        for host, app_dir in hosts.items():
            self.folders[(host, "artifacts")] = app_dir / "artifacts"
            self.folders[(host, "releases")] = app_dir / "releases"
        self.before: dict[tuple[str, str], set[str]] = {}
        self.seen: dict[tuple[str, str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="ship-watch")

    def _list(self, folder: Path) -> list[str]:
        try:
            return os.listdir(folder)
        except OSError:
            return []

    def __enter__(self) -> ShipWatch:
        self.before = {key: set(self._list(path)) for key, path in self.folders.items()}
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for (where, kind), path in self.folders.items():
                for name in self._list(path):
                    if name not in self.before[(where, kind)]:
                        self.seen.setdefault((where, kind, name), now)
            time.sleep(LIST_EVERY)

    def first(self, where: str, kind: str, suffix: str) -> float:
        times = [
            t
            for (w, k, name), t in self.seen.items()
            if w == where and k == kind and name.endswith(suffix)
        ]
        return min(times, default=math.nan)

    def shipping(self) -> Shipping:
        hosts = sorted({w for w, _ in self.folders} - {"control"})
        installed = {}
        for host in hosts:
            done = [
                t
                for (w, k, name), t in self.seen.items()
                if w == host and k == "releases" and not name.endswith(".unpacking")
            ]
            if done:
                installed[host] = min(done)
        return Shipping(
            pack_start=self.first("control", "artifacts", ".tmp"),
            pack_end=self.first("control", "artifacts", ".tar.gz"),
            uploads={h: self.first(h, "artifacts", ".tar.gz") for h in hosts},
            installs={h: self.first(h, "releases", ".unpacking") for h in hosts},
            installed=installed,
        )
