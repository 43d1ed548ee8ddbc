"""The facts of every fleet host for `slipway doctor`: asked of each agent in parallel, with
the clock skew measured around the call and the ports slipway expects there."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from slipway.daemon.host_ops import agent_zipapp
from slipway.errors import SlipwayError
from slipway.hosts.model import Host
from slipway.store import databases

if TYPE_CHECKING:
    from slipway.daemon.service import Service

TIMEOUT = 10.0


def expected_ports(service: Service, host: Host) -> list[int]:
    """sshd, the instances placed there, and on an lb host every app's listeners."""
    ports = {host.ssh.port if host.ssh else 22}
    ports |= {i.port for i in service.store.instances() if i.host == host.name and i.port}
    ports |= {d.port for d in databases.every(service.store) if d.host == host.name}
    if host.has("lb"):
        for app in service.store.apps():
            routing = app.routing or {}
            ports |= {int(p) for p in (routing.get("port"), edge_https(routing)) if p}
    return sorted(ports)


def edge_https(routing: dict[str, Any]) -> int | None:
    value = (routing.get("edge") or {}).get("https_port")
    return int(value) if value else None


async def views(service: Service) -> list[dict[str, Any]]:
    _, build = agent_zipapp(service)
    remote = [h for h in service.fleet.hosts() if not h.local]

    async def one(host: Host) -> dict[str, Any]:
        view: dict[str, Any] = {"name": host.name, "build": build}
        sent = time.time()
        try:
            facts = await service.fleet.transport(host.name).call("doctor.facts", _timeout=TIMEOUT)
        except SlipwayError as exc:
            return view | {"error": exc.message}
        answered = time.time()
        return view | {
            "facts": facts,
            "skew": float(facts["time"]) - (sent + answered) / 2,
            "skew_error": (answered - sent) / 2,
            "expected_ports": expected_ports(service, host),
        }

    return list(await asyncio.gather(*(one(h) for h in remote)))
