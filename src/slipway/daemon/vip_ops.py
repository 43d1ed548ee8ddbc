"""The lb tier's virtual address as the API sees it: set it (checked, recorded, then keepalived
configured on every lb host), remove it, say who holds it. Applying is idempotent: the daemon
applies the recorded address again at start and whenever the lb hosts change."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from slipway.errors import SlipwayError, UsageError
from slipway.hosts.model import Host
from slipway.router import vrrp
from slipway.store import hosts as stored

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")
CALL_TIMEOUT = 15.0


def recorded(service: Service) -> vrrp.Vip | None:
    value = stored.vip(service.store)
    return vrrp.Vip.from_dict(value) if value else None


async def set_vip(service: Service, request: dict[str, Any]) -> dict[str, Any]:
    vip = vrrp.parse(
        str(request["address"]),
        router_id=int(request.get("router_id") or 51),
        advert=float(request.get("advert") or 0.5),
    )
    lbs = service.fleet.with_role("lb")
    if not lbs:
        raise UsageError(
            "no lb host to hold a virtual address", fix="add one: slipway hosts add … --role lb"
        )
    vrrp.check_same_network(vip, {h.name: h.address for h in lbs})
    stored.set_vip(service.store, vip.to_dict())
    failed = await apply(service, vip)
    if len(failed) == len(lbs):
        raise SlipwayError(
            "no lb host could run keepalived: "
            + "; ".join(f"{name}: {err}" for name, err in failed.items()),
            fix="see the message; the address is recorded and applied again at the next start",
        )
    return await view(service) | {"failed": failed}


async def remove_vip(service: Service) -> None:
    stored.set_vip(service.store, None)
    await stop_everywhere(service)


async def apply(service: Service, vip: vrrp.Vip | None = None) -> dict[str, str]:
    """keepalived on every lb host, for the recorded address; the hosts that failed, why."""
    wanted = vip or recorded(service)
    if wanted is None:
        return {}
    lbs = service.fleet.with_role("lb")
    priority = vrrp.priorities([h.name for h in lbs])
    settings = wanted.to_dict()

    async def one(host: Host) -> None:
        await service.fleet.transport(host.name).call(
            "vip.apply",
            vip=settings,
            name=host.name,
            me=host.address,
            peers=[h.address for h in lbs if h.name != host.name],
            priority=priority[host.name],
            _timeout=CALL_TIMEOUT,
        )

    results = await asyncio.gather(*(one(h) for h in lbs), return_exceptions=True)
    failed = {}
    for host, result in zip(lbs, results, strict=True):
        if isinstance(result, SlipwayError):
            failed[host.name] = result.message
        elif isinstance(result, BaseException):
            raise result
    for name, error in failed.items():
        log.warning("virtual address %s not applied on %s: %s", wanted.address, name, error)
    return failed


async def apply_quietly(service: Service) -> None:
    """At start and when the lb hosts change: a failure is logged, never fatal."""
    try:
        await apply(service)
    except SlipwayError as exc:
        log.warning("could not apply the virtual address: %s", exc.message)


async def stop_everywhere(service: Service, hosts: list[Host] | None = None) -> None:
    """keepalived stops (the address is given away) on these hosts, every host by default:
    also those no longer lb hosts."""

    async def one(host: Host) -> None:
        try:
            await service.fleet.transport(host.name).call("vip.stop", _timeout=CALL_TIMEOUT)
        except SlipwayError as exc:
            log.warning("could not stop keepalived on %s: %s", host.name, exc.message)

    await asyncio.gather(*(one(h) for h in (hosts or service.fleet.hosts())))


async def view(service: Service) -> dict[str, Any]:
    """The address and, per lb host, whether keepalived runs there and holds it."""
    vip = recorded(service)
    if vip is None:
        return {"address": None, "holders": [], "hosts": {}}
    address = vip.address

    async def one(host: Host) -> dict[str, Any]:
        try:
            state = await service.fleet.transport(host.name).call(
                "vip.state", address=address, _timeout=3.0
            )
            return dict(state)
        except SlipwayError as exc:
            return {"running": None, "holds": None, "error": exc.message}

    lbs = service.fleet.with_role("lb")
    states = await asyncio.gather(*(one(h) for h in lbs))
    hosts = {h.name: s for h, s in zip(lbs, states, strict=True)}
    return {
        "address": vip.cidr,
        "router_id": vip.router_id,
        "advert": vip.advert,
        "takeover_seconds": round(vip.takeover_seconds, 2),
        "holders": sorted(n for n, s in hosts.items() if s.get("holds")),
        "hosts": hosts,
    }
