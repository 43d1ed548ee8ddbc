"""Where the virtual address is: read from each lb host's interfaces (`ip -n NS addr`), and a
thread that notes when it first shows on a host other than the one that held it."""

from __future__ import annotations

import subprocess
import threading
import time

from tests.integration.testbed import Bed

LOOK_EVERY = 0.05


def holders(bed: Bed, lbs: list[str], address: str) -> list[str]:
    found = []
    for lb in lbs:
        out = subprocess.run(
            ["ip", "-n", bed.hosts[lb].netns, "-o", "-4", "addr", "show", "dev", "eth0"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout  # fmt: skip
        if f"inet {address}/" in out:
            found.append(lb)
    return found


class MoveWatch:
    """`with MoveWatch(bed, lbs, address, old) as watch: fault()`; then `watch.moved`: the
    monotonic time the address was first seen on another lb host (None: not seen)."""

    def __init__(self, bed: Bed, lbs: list[str], address: str, old: str) -> None:
        self.others = [lb for lb in lbs if lb != old]
        self.bed, self.address = bed, address
        self.moved: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="vip-watch")

    def _run(self) -> None:
        while not self._stop.is_set() and self.moved is None:
            if holders(self.bed, self.others, self.address):
                self.moved = time.monotonic()  # an upper bound: seen by this look
            time.sleep(LOOK_EVERY)

    def __enter__(self) -> MoveWatch:
        self._thread.start()
        return self

    def wait(self, timeout: float) -> float | None:
        self._thread.join(timeout)
        return self.moved

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
