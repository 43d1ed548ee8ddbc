"""The daemon's end of per-request data: receives HAProxy's log datagrams, records each
release's traffic per second, and records every loss it can see."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from slipway.metrics.ingest import Aggregator, LogReceiver, kernel_drops, udp_socket
from slipway.paths import Home
from slipway.router.haproxy import HAProxyRouter
from slipway.store import traffic
from slipway.store.store import Store

log = logging.getLogger("slipway.metrics")
FLUSH_EVERY = 0.25
COMPLETE_GRACE = 0.25  # a second is complete this long after it ends (datagrams in flight)


class TrafficHub:
    def __init__(self, home: Home, store: Store, router: HAProxyRouter) -> None:
        self.home = home
        self.store = store
        self.router = router
        self.aggregator = Aggregator()
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
            lambda: LogReceiver(self.aggregator), sock=sock
        )
        self.transport = transport

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush()
            except Exception:
                log.exception("recording traffic failed")

    async def flush(self) -> None:
        now = time.time()
        traffic.add_seconds(self.store, self.aggregator.take_complete(now, COMPLETE_GRACE))
        await self.check_losses(int(now))

    async def check_losses(self, second: int) -> None:
        drops = kernel_drops(self.port)
        if self._kernel_drops is not None and drops > self._kernel_drops:
            lost = drops - self._kernel_drops
            traffic.add_loss(self.store, second, lost, "kernel: receive buffer full")
            log.warning("lost %d request log datagrams (receive buffer full)", lost)
        self._kernel_drops = drops
        dropped = await self.haproxy_dropped()
        if dropped is not None:
            # counters restart at zero when HAProxy reloads
            if self._haproxy_dropped is not None and dropped > self._haproxy_dropped:
                lost = dropped - self._haproxy_dropped
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
