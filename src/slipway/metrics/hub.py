"""The daemon's end of per-request data: receives HAProxy's log datagrams, records each
release's traffic per second, and records every loss it can see."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import socket
import time
from collections.abc import Callable

from slipway.metrics import history
from slipway.metrics.ingest import Aggregator, LogReceiver, Second, kernel_drops, udp_socket
from slipway.metrics.requestlog import RequestLogs, Retention
from slipway.paths import Home
from slipway.router.tier import TierRouter
from slipway.store import traffic
from slipway.store.store import Store

log = logging.getLogger("slipway.metrics")
FLUSH_EVERY = 0.25
COMPLETE_GRACE = 0.25  # a second is complete this long after it ends (datagrams in flight)
PRUNE_EVERY = 60.0


class RecordingReceiver(LogReceiver):
    """Aggregates each line and keeps it in its app's request log. Only the lb hosts' HAProxy
    may send: a datagram from any other address is dropped and counted (anyone who could
    forge request logs could steer the canary judge)."""

    def __init__(
        self, aggregator: Aggregator, logs: RequestLogs, senders: Callable[[], set[str]]
    ) -> None:
        super().__init__(aggregator)
        self.logs = logs
        self.senders = senders
        self.foreign = 0

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if addr[0] not in self.senders():
            self.foreign += 1
            return
        now = time.time()
        for line in data.decode("utf-8", "replace").splitlines():
            self.aggregator.feed(line)
            self.logs.add(now, line)


class TrafficHub:
    def __init__(
        self,
        home: Home,
        store: Store,
        router: TierRouter,
        senders: Callable[[], set[str]] = lambda: {"127.0.0.1"},
    ) -> None:
        self.home = home
        self.store = store
        self.router = router
        self.senders = senders  # addresses the lb hosts send request logs from
        self.aggregator = Aggregator()
        self.request_logs = RequestLogs(home.app_dir)
        self.totals: dict[tuple[str, str], Second] = {}  # since the daemon started: /metrics
        self.lost_total = 0
        self._pruned_at = 0.0
        self.port = 0
        self.transports: dict[str, asyncio.DatagramTransport] = {}
        self.receiver: RecordingReceiver | None = None
        self._kernel_drops: int | None = None
        self._haproxy_dropped: dict[str, int] = {}

    async def start(self) -> None:
        """Bind the UDP socket, on the same port as last time when it is free (HAProxy's
        config names it; a new port means a reload)."""
        port_file = self.home.root / "ingest.port"
        try:
            wanted = int(port_file.read_text())
        except (OSError, ValueError):
            wanted = 0
        try:
            sock = udp_socket(wanted)
        except OSError:
            sock = udp_socket(0)
        self.port = sock.getsockname()[1]
        port_file.write_text(str(self.port))
        self.receiver = RecordingReceiver(self.aggregator, self.request_logs, self.senders)
        await self._serve("127.0.0.1", sock)

    async def listen_on(self, address: str) -> bool:
        """Also receive on `address` (the control host's address on a remote lb host's
        network), on the same port. False, with a warning, when `address` is none of this
        machine's: a control plane restored on another machine still has the address the lb
        hosts reached the old one by (they send their request logs there until their agents
        restart); that must not keep the daemon from starting."""
        if address in self.transports:
            return True
        try:
            sock = udp_socket(self.port, address)
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:
                raise
            log.warning(
                "request logs: %s is not an address of this machine (the lb hosts reached "
                "the control plane there); their request logs are not received until their "
                "agents restart",
                address,
            )
            return False
        await self._serve(address, sock)
        return True

    async def _serve(self, address: str, sock: socket.socket) -> None:
        assert self.receiver is not None
        receiver = self.receiver
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: receiver, sock=sock)
        self.transports[address] = transport

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()
        self.request_logs.close()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
            except Exception:
                log.exception("recording traffic failed")

    async def flush(self) -> None:
        now = time.time()
        done = self.aggregator.take_complete(now, COMPLETE_GRACE)
        traffic.add_seconds(self.store, done)
        for app, release, _, data in done:
            self.totals.setdefault((app, release), Second()).add(data)
        self.request_logs.flush()
        await self.check_losses(int(now))
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.apply_retention(now)

    def apply_retention(self, now: float) -> None:
        """Metrics history, request logs and stopped instances' logs are bounded: nothing
        grows without end."""
        history.prune(self.store, now)
        for app in self.store.apps():
            if app.current_release is None:
                continue
            logs = self.store.release(app.name, app.current_release).config.logs
            self.request_logs.retention[app.name] = Retention(
                logs.max_size, logs.keep, logs.max_age
            )
            for instance in self.store.instances(app.name, live_only=False):
                stopped = instance.stopped_at
                if instance.status == "stopped" and stopped and stopped < now - logs.max_age:
                    shutil.rmtree(self.home.instance_dir(app.name, instance.id), True)
        self.request_logs.expire(now)

    async def check_losses(self, second: int) -> None:
        drops = kernel_drops(self.port)
        if self._kernel_drops is not None and drops > self._kernel_drops:
            lost = drops - self._kernel_drops
            self.lost_total += lost
            traffic.add_loss(self.store, second, lost, "kernel: receive buffer full")
            log.warning("lost %d request log datagrams (receive buffer full)", lost)
        self._kernel_drops = drops
        for host, dropped in (await self.haproxy_dropped()).items():
            # counters restart at zero when HAProxy reloads
            before = self._haproxy_dropped.get(host)
            if before is not None and dropped > before:
                lost = dropped - before
                self.lost_total += lost
                traffic.add_loss(self.store, second, lost, f"HAProxy on {host}: DroppedLogs")
                log.warning("HAProxy on %s dropped %d request log lines", host, lost)
            self._haproxy_dropped[host] = dropped

    async def haproxy_dropped(self) -> dict[str, int]:
        try:
            return await self.router.dropped_logs()
        except Exception:
            return {}
