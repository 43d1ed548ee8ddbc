"""The control plane's replica as the API sees it: turn it on (to a fleet host), off, ship
now, and its state. The task itself is slipway.control.replicator."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from slipway.control.replica import ReplicaStore, SftpReplica
from slipway.control.replicator import (
    DEFAULT_EVERY,
    DEFAULT_KEEP,
    MAX_EVERY,
    MAX_KEEP,
    MIN_EVERY,
    Replicator,
    Settings,
)
from slipway.control.sealed import ReplicaError, ReplicaKey, write_key
from slipway.errors import SlipwayError, UsageError
from slipway.hosts.ssh import SshTransport

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.replica")


def replicator(service: Service) -> Replicator:
    def open_replica(name: str) -> ReplicaStore:
        host = service.fleet.host(name)
        transport = service.fleet.transport(name)
        if host.ssh is None or not isinstance(transport, SshTransport):
            raise ReplicaError(
                "the control plane cannot be its own replica",
                fix="replicate to another host of the fleet",
            )
        return SftpReplica(transport.connection, host.ssh.home, name)

    def ssh_keys() -> dict[str, str]:
        return {h.name: h.ssh.key for h in service.fleet.hosts() if h.ssh and h.ssh.key}

    return Replicator(service.home, service.store, service.audit, open_replica, ssh_keys)


def check_settings(host: str, every: float | None, keep: int | None) -> Settings:
    every = DEFAULT_EVERY if every is None else every
    keep = DEFAULT_KEEP if keep is None else keep
    if not MIN_EVERY <= every <= MAX_EVERY:
        raise UsageError(
            f"--every {every:g}s is out of range",
            where="--every",
            fix=f"from {MIN_EVERY:g}s to {MAX_EVERY:g}s (the default: {DEFAULT_EVERY:g}s)",
        )
    if not 1 <= keep <= MAX_KEEP:
        raise UsageError(f"--keep {keep} is out of range", where="--keep", fix=f"1 to {MAX_KEEP}")
    return Settings(host, float(every), int(keep))


async def replicate(
    service: Service, host: str, every: float | None, keep: int | None
) -> dict[str, Any]:
    """Turn replication on (or change it) and ship a first snapshot now; a first snapshot
    that fails turns it back to what it was. The replica key is made once and returned once."""
    settings = check_settings(host, every, keep)
    target = service.fleet.host(host)  # NotFound names the hosts
    if target.local:
        raise UsageError(
            "the control host cannot hold its own replica",
            fix="name another host of the fleet (`slipway hosts`)",
        )
    rep = service.replicator
    created = None
    if not rep.key_path.exists():
        key = ReplicaKey.generate()
        write_key(rep.key_path, key)
        created = key.text
    before = rep.settings
    rep.configure(settings)
    try:
        await rep.cycle(force=True)
    except SlipwayError:
        rep.configure(before)
        raise
    return rep.view() | {"key": created, "key_file": str(rep.key_path)}


def stop(service: Service) -> dict[str, Any]:
    rep = service.replicator
    was = rep.settings
    rep.configure(None)
    return {"state": "off", "was": was.host if was else None}


async def ship_now(service: Service) -> dict[str, Any]:
    await service.replicator.cycle(force=True)
    return service.replicator.view()


async def last_copy(service: Service, timeout: float = 10.0) -> None:
    """On a graceful stop: the replica gets what changed since its last copy (bounded)."""
    if service.replicator.settings is None:
        return
    try:
        async with asyncio.timeout(timeout):
            await service.replicator.cycle()
    except (SlipwayError, TimeoutError) as exc:
        log.warning("the last copy to the replica before stopping failed: %s", exc)
