"""Per-request data from HAProxy: one UDP datagram per request, aggregated per release per
second.

HAProxy sends each request as a raw log line (`log … format raw`) in LOG_FORMAT to a UDP
socket of the daemon; UDP on loopback with a large receive buffer loses nothing at tens of
thousands of requests per second (a unix datagram socket did, see shared/notes). Losses are
still counted, never assumed away: the kernel's drop counter for our socket and HAProxy's
DroppedLogs both mark a second as incomplete, and the judge refuses to judge on it.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from slipway.judge.histogram import bucket_of

RECEIVE_BUFFER = 8 * 1024 * 1024
STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
BACKEND_PREFIX = "app_"


@lru_cache(maxsize=65536)
def _bucket(ms: int) -> int:
    return bucket_of(float(ms))


@dataclass
class Second:
    """One release's traffic in one second."""

    requests: int = 0
    errors: int = 0  # 5xx answered by the app, and failed connections to it
    conn_failures: int = 0  # part of errors: HAProxy could not get an answer from it
    client_aborts: int = 0  # the client went away: nobody's fault, not counted as errors
    latency: dict[int, int] = field(default_factory=dict)  # histogram bucket -> count
    classes: dict[str, int] = field(default_factory=dict)  # "2xx".."5xx", "conn", "abort"

    def add(self, other: Second) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.conn_failures += other.conn_failures
        self.client_aborts += other.client_aborts
        for bucket, count in other.latency.items():
            self.latency[bucket] = self.latency.get(bucket, 0) + count
        for name, count in other.classes.items():
            self.classes[name] = self.classes.get(name, 0) + count


@dataclass(frozen=True)
class Request:
    app: str
    release: str
    instance: str
    status: int
    total_ms: int
    termination: str
    bytes_sent: int = 0
    client: str = ""
    method: str = ""
    path: str = ""


FIELDS = 14  # in LOG_FORMAT


def parse(line: str) -> Request | None:
    """A log line in LOG_FORMAT; None for lines that are not ours or not for an instance."""
    parts = line.split(" ", FIELDS - 1)
    if len(parts) != FIELDS or parts[0] != "slipway" or not parts[1].startswith(BACKEND_PREFIX):
        return None
    server = parts[2]
    release, sep, _ = server.partition("-")
    if not sep or not release.startswith("r"):
        return None  # <NOSRV>: HAProxy answered itself (no server available)
    try:
        status, total, sent = int(parts[3]), int(parts[8]), int(parts[9])
    except ValueError:
        return None
    app = parts[1][len(BACKEND_PREFIX) :]
    path = parts[13].rstrip("\n")
    return Request(app, release, server, status, total, parts[10], sent, parts[11], parts[12], path)


def classify(request: Request, second: Second) -> None:
    """Count one request into its second."""
    second.requests += 1
    classes = second.classes
    first = request.termination[:1]
    if first == "C":
        second.client_aborts += 1
        classes["abort"] = classes.get("abort", 0) + 1
        return
    if first == "S" or request.status < 0:
        second.errors += 1
        second.conn_failures += 1
        classes["conn"] = classes.get("conn", 0) + 1
        return
    name = STATUS_CLASSES.get(request.status // 100, "other")
    classes[name] = classes.get(name, 0) + 1
    if request.status >= 500:
        second.errors += 1
        return
    if request.total_ms >= 0:
        bucket = _bucket(request.total_ms)
        second.latency[bucket] = second.latency.get(bucket, 0) + 1


class Aggregator:
    """Seconds per (app, release), handed over once complete."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.open: dict[tuple[str, str, int], Second] = {}
        self.lines = 0
        self.ignored = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        request = parse(line)
        if request is None:
            self.ignored += 1
            return
        key = (request.app, request.release, int(self.clock()))
        second = self.open.get(key)
        if second is None:
            second = self.open[key] = Second()
        classify(request, second)

    def take_complete(
        self, now: float | None = None, grace: float = 1.0
    ) -> list[tuple[str, str, int, Second]]:
        """Seconds that ended at least `grace` seconds ago (datagrams may still be in flight)."""
        moment = now if now is not None else self.clock()
        done = [key for key in self.open if key[2] + 1 + grace <= moment]
        return [(app, rel, sec, self.open.pop((app, rel, sec))) for app, rel, sec in done]


class LogReceiver(asyncio.DatagramProtocol):
    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            self.aggregator.feed(line)


def udp_socket(port: int = 0, address: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.bind((address, port))
    sock.setblocking(False)
    return sock


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped for our UDP sockets on `port` (on every address: one per
    network the lb hosts send from), because a receive buffer was full."""
    try:
        lines = open("/proc/net/udp").read().splitlines()[1:]  # noqa: SIM115
    except OSError:
        return 0
    dropped = 0
    for line in lines:
        fields = line.split()
        local = fields[1]
        if int(local.split(":")[1], 16) == port:
            dropped += int(fields[-1])
    return dropped
