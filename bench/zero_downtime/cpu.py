"""How busy the whole machine was (every process, not only ours), and how much of that was
other processes', sampled in the background, so a reader can tell a slow phase from a noisy
machine."""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import psutil

EVERY = 0.1  # /proc/stat counts in 10 ms ticks: a 0.1 s sample is good to about ±10%
FOREIGN_EVERY = 10  # look at every process once a second (every 10 samples)
KTHREADD = 2


def _idle_and_total(times: Any) -> tuple[float, float, float]:
    """(idle, total, steal) seconds from psutil.cpu_times() (a platform-specific tuple)."""
    fields: dict[str, float] = times._asdict()
    # guest time is already counted in user / nice
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    return idle, total, fields.get("steal", 0.0)


class ForeignCpu:
    """CPU time used by processes that are not ours: not this process or its descendants, and
    without `marker` (the run's temporary folder, home of its daemon, HAProxy and instances)
    in their command line or working folder. Kernel threads are not counted."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.me = os.getpid()
        self.seen: dict[tuple[int, float], float] = {}
        self.ours: dict[tuple[int, float], bool] = {}
        self.by_name: Counter[str] = Counter()
        self.rounds = 0

    @property
    def seconds(self) -> float:
        return sum(self.by_name.values())

    def sample(self) -> None:
        attrs = ["pid", "ppid", "name", "create_time", "cpu_times"]
        for proc in psutil.process_iter(attrs):
            info = proc.info
            times = info["cpu_times"]
            if times is None or KTHREADD in (info["pid"], info["ppid"]):
                continue
            key = (info["pid"], info["create_time"])
            used = times.user + times.system
            before = self.seen.get(key, 0.0 if self.rounds else used)
            self.seen[key] = used
            if used > before and not self.is_ours(proc, key):
                self.by_name[str(info["name"])] += used - before
        self.rounds += 1

    def is_ours(self, proc: psutil.Process, key: tuple[int, float]) -> bool:
        if key not in self.ours:
            try:
                family = proc.pid == self.me or any(p.pid == self.me for p in proc.parents())
                where = " ".join(proc.cmdline()) + " " + proc.cwd()
                self.ours[key] = family or self.marker in where
            except (psutil.Error, OSError):  # an exiting process: /proc/PID/cwd is gone
                self.ours[key] = False
        return self.ours[key]


class CpuMonitor:
    def __init__(self, marker: str) -> None:
        self.times: list[float] = []
        self.counters: list[tuple[float, float, float]] = []
        self.foreign = ForeignCpu(marker)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> CpuMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.times.append(time.monotonic())
            self.counters.append(_idle_and_total(psutil.cpu_times()))
            if len(self.times) % FOREIGN_EVERY == 1:
                self.foreign.sample()
            self._stop.wait(EVERY)

    @property
    def seconds(self) -> float:
        return self.times[-1] - self.times[0] if self.times else 0.0

    def busy(self, windows: Sequence[tuple[float, float]]) -> tuple[float, float]:
        """(busy, steal) as shares of all CPUs' time over the windows (each widened to the
        samples around it)."""
        idle = total = steal = 0.0
        for start, end in windows:
            lo = max(0, bisect.bisect_right(self.times, start) - 1)
            hi = min(len(self.times) - 1, bisect.bisect_left(self.times, end))
            if hi <= lo:
                continue
            idle += self.counters[hi][0] - self.counters[lo][0]
            total += self.counters[hi][1] - self.counters[lo][1]
            steal += self.counters[hi][2] - self.counters[lo][2]
        if total <= 0:
            return math.nan, math.nan
        return 1 - idle / total, steal / total
