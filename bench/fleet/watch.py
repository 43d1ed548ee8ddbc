"""Watching every lb host's HAProxy from outside: one thread per lb host asks its admin socket
(a unix socket in the host's folder, reachable from the root namespace) for the backend's
server weights, over and over, and records each answer with the monotonic times around it.
From these, when each lb host applied a switch: the first answer in which the servers with
weight > 0 are exactly the target ones."""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from slipway.router.config import backend_name

POLL_EVERY = 0.001  # seconds between one answer and the next question, per lb host


@dataclass(frozen=True)
class Poll:
    """One look: asked at `sent`, answered at `answered`; the weight of each server."""

    sent: float
    answered: float
    weights: dict[str, int]

    def serving(self) -> frozenset[str]:
        return frozenset(name for name, weight in self.weights.items() if weight > 0)


def ask(path: Path, line: str, timeout: float = 2.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_weights(text: str) -> dict[str, int]:
    """`show servers state BACKEND` → {server: user weight}."""
    lines = text.splitlines()
    header = next((ln[1:].split() for ln in lines if ln.startswith("# be_id")), None)
    if header is None:
        return {}
    name, weight = header.index("srv_name"), header.index("srv_uweight")
    found = {}
    for line in lines:
        fields = line.split()
        if line.startswith("#") or len(fields) != len(header):
            continue
        found[fields[name]] = int(fields[weight])
    return found


class LbWatch:
    """Polls one lb host's admin socket in its own thread while started."""

    def __init__(self, host: str, admin_socket: Path, app: str) -> None:
        self.host = host
        self.path = admin_socket
        self.command = f"show servers state {backend_name(app)}"
        self.polls: list[Poll] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.polls, self.errors = [], 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch-{self.host}")
        self._thread.start()

    def stop(self) -> list[Poll]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return self.polls

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                weights = parse_weights(ask(self.path, self.command))
            except OSError:
                self.errors += 1
                weights = {}
            if weights:
                self.polls.append(Poll(sent, time.monotonic(), weights))
            time.sleep(POLL_EVERY)


@dataclass(frozen=True)
class Applied:
    """When one lb host applied a switch: between `after` (the last look that did not see it
    began) and `before` (the first look that saw it was answered); `at` is the midpoint.
    `began` is the same for the switch's first visible change (a server gained or lost
    traffic: its weight went from 0 or to 0)."""

    host: str
    after: float
    before: float
    began: float

    @property
    def at(self) -> float:
        return (self.after + self.before) / 2

    @property
    def uncertainty(self) -> float:
        return (self.before - self.after) / 2


def applied(host: str, polls: Sequence[Poll], target: Iterable[str]) -> Applied | None:
    """The first look at which the servers with weight > 0 are exactly `target`, after a
    look at which they were not (None if never, or if they already were at the start)."""
    wanted = frozenset(target)
    if not polls or polls[0].serving() == wanted:
        return None
    first_change = None
    for previous, poll in itertools.pairwise(polls):
        if first_change is None and poll.serving() != polls[0].serving():
            first_change = (previous.sent + poll.answered) / 2
        if poll.serving() == wanted:
            assert first_change is not None
            return Applied(host, previous.sent, poll.answered, first_change)
    return None


@dataclass(frozen=True)
class Switch:
    """One switch, seen on every lb host."""

    hosts: list[Applied]

    @property
    def complete(self) -> bool:
        return bool(self.hosts)

    @property
    def first(self) -> float:
        return min(a.at for a in self.hosts)

    @property
    def last(self) -> float:
        return max(a.at for a in self.hosts)

    @property
    def skew(self) -> float:
        """Between the first and the last lb host applying it (midpoints)."""
        return self.last - self.first if self.hosts else math.nan

    @property
    def skew_bound(self) -> float:
        """The largest skew the looks allow (the earliest first, the latest last)."""
        if not self.hosts:
            return math.nan
        return max(a.before for a in self.hosts) - min(a.after for a in self.hosts)

    @property
    def resolution(self) -> float:
        """The widest uncertainty (±) of one lb host's moment."""
        return max((a.uncertainty for a in self.hosts), default=math.nan)

    @property
    def done(self) -> float:
        """When the last lb host had certainly applied it."""
        return max(a.before for a in self.hosts) if self.hosts else math.nan


class TierWatch:
    """Every lb host's watch, started and stopped together around one operation."""

    def __init__(self, sockets: dict[str, Path], app: str) -> None:
        self.watches = [LbWatch(host, path, app) for host, path in sockets.items()]
        self.polls: dict[str, list[Poll]] = {}

    def __enter__(self) -> TierWatch:
        for watch in self.watches:
            watch.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.polls = {watch.host: watch.stop() for watch in self.watches}

    def target(self) -> frozenset[str]:
        """What every lb host serves at the end (weight > 0); empty if they disagree."""
        ends = {polls[-1].serving() if polls else frozenset() for polls in self.polls.values()}
        return next(iter(ends)) if len(ends) == 1 else frozenset()

    def switch(self) -> Switch:
        """The switch to what every lb host serves at the end; incomplete (no hosts) if one
        never made it, or if they end serving different servers."""
        wanted = self.target()
        seen = [applied(host, polls, wanted) for host, polls in self.polls.items()]
        return Switch([a for a in seen if a is not None] if wanted and all(seen) else [])

    def added(self) -> dict[str, list[float]]:
        """Per lb host, when each server it did not have at the start appeared there."""
        found: dict[str, list[float]] = {}
        for host, polls in self.polls.items():
            known = set(polls[0].weights) if polls else set()
            times = found.setdefault(host, [])
            for previous, poll in itertools.pairwise(polls):
                for name in poll.weights.keys() - known:
                    known.add(name)
                    times.append((previous.sent + poll.answered) / 2)
        return found

    def gaps(self) -> list[float]:
        """Seconds between consecutive looks at one lb host (the watch's resolution)."""
        return [
            b.answered - a.sent
            for polls in self.polls.values()
            for a, b in itertools.pairwise(polls)
        ]
