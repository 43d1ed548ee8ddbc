"""The daemon's end of per-request data: receives HAProxy's log datagrams, records each
release's traffic per second, and records every loss it can see."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time

from slipway.metrics import history
from slipway.metrics.ingest import Aggregator, LogReceiver, Second, kernel_drops, udp_socket
from slipway.metrics.requestlog import RequestLogs, Retention
from slipway.paths import Home
from slipway.router.haproxy import HAProxyRouter
from slipway.store import traffic
from slipway.store.store import Store

log = logging.getLogger("slipway.metrics")
FLUSH_EVERY = 0.25
COMPLETE_GRACE = 0.25  # a second is complete this long after it ends (datagrams in flight)
PRUNE_EVERY = 60.0


class RecordingReceiver(LogReceiver):
    """Aggregates each line and keeps it in its app's request log."""

    def __init__(self, aggregator: Aggregator, logs: RequestLogs) -> None:
        super().__init__(aggregator)
        self.logs = logs

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        now = time.time()
        for line in data.decode("utf-8", "replace").splitlines():
            self.aggregator.feed(line)
            self.logs.add(now, line)


class TrafficHub:
    def __init__(self, home: Home, store: Store, router: HAProxyRouter) -> None:
        self.home = home
        self.store = store
        self.router = router
        self.aggregator = Aggregator()
        self.request_logs = RequestLogs(home.app_dir)
        self.totals: dict[tuple[str, str], Second] = {}  # since the daemon started: /metrics
        self.lost_total = 0
        self._pruned_at = 0.0
        self.port = 0
        self.transport: asyncio.DatagramTransport | None = None
        self._kernel_drops: int | None = None
        self._haproxy_dropped: int | None = None

    @property
    def log_target(self) -> str:
        return f"127.0.0.1:{self.port}"

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
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: RecordingReceiver(self.aggregator, self.request_logs), sock=sock
        )
        self.transport = transport

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
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
        dropped = await self.haproxy_dropped()
        if dropped is not None:
            # counters restart at zero when HAProxy reloads
            if self._haproxy_dropped is not None and dropped > self._haproxy_dropped:
                lost = dropped - self._haproxy_dropped
                self.lost_total += lost
                traffic.add_loss(self.store, second, lost, "HAProxy: DroppedLogs")
                log.warning("HAProxy dropped %d request log lines", lost)
            self._haproxy_dropped = dropped

    async def haproxy_dropped(self) -> int | None:
        if not self.router.running():
            return None
        try:
            info = await self.router.command("show info")
        except Exception:
            return None
        match = re.search(r"^DroppedLogs: (\d+)", info, re.MULTILINE)
        return int(match.group(1)) if match else None
