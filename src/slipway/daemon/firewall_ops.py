"""Each fleet host's firewall for slipway's ports, as the control plane decides it: the ports
of the instances on a host accept only the lb hosts, the host itself and the control plane
(the performance gate's load comes from there). The host's agent applies and verifies it
(agent/firewall.py); this applies it again whenever the lb hosts change, and at start. The
control host runs no such table: its instances listen on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from slipway.errors import SlipwayError
from slipway.hosts.model import Host

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")
CALL_TIMEOUT = 15.0


def allowed_for(host: Host, lb_hosts: list[Host]) -> list[str]:
    """Who may reach the instances on `host`."""
    control = host.facts.get("client")  # the control plane as this host sees it (SSH_CLIENT)
    allowed = {h.address for h in lb_hosts if not h.local} | {host.address}
    if isinstance(control, str) and control:
        allowed.add(control)
    return sorted(allowed)


async def apply_all(service: Service) -> dict[str, str]:
    """The firewall on every host reached over SSH; the hosts that failed, and why."""
    lbs = service.fleet.with_role("lb")
    remote = [h for h in service.fleet.hosts() if not h.local]

    async def one(host: Host) -> None:
        await service.fleet.transport(host.name).call(
            "firewall.apply", allowed=allowed_for(host, lbs), _timeout=CALL_TIMEOUT
        )

    results = await asyncio.gather(*(one(h) for h in remote), return_exceptions=True)
    failed = {}
    for host, result in zip(remote, results, strict=True):
        if isinstance(result, SlipwayError):
            failed[host.name] = result.message
            log.warning("the firewall of %s was not applied: %s", host.name, result.message)
        elif isinstance(result, BaseException):
            raise result
    return failed


async def apply_quietly(service: Service) -> None:
    try:
        await apply_all(service)
    except SlipwayError as exc:
        log.warning("could not apply the hosts' firewalls: %s", exc.message)
