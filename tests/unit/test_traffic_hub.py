"""The daemon's request-log listener on a control plane restored on another machine."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slipway.metrics.hub import TrafficHub
from slipway.paths import Home


def test_an_lb_hosts_old_control_address_does_not_stop_the_daemon(tmp_path: Path) -> None:
    """The lb hosts' facts keep the address they reached the old control host by; on the
    new machine it is none of this machine's, and listening there is skipped, not fatal."""
    nobody: Any = None  # start() and listen_on() use neither the store nor the router

    async def listen() -> tuple[bool, bool, list[str]]:
        hub = TrafficHub(Home(tmp_path), nobody, nobody)
        await hub.start()
        try:
            foreign = await hub.listen_on("192.0.2.7")  # TEST-NET-1: never ours
            local = await hub.listen_on("127.0.0.2")  # on loopback: ours
            return foreign, local, sorted(hub.transports)
        finally:
            for transport in hub.transports.values():
                transport.close()

    foreign, local, listening = asyncio.run(listen())
    assert (foreign, local) == (False, True)
    assert listening == ["127.0.0.1", "127.0.0.2"]
