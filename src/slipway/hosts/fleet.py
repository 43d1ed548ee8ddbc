"""The fleet as the control plane holds it: the hosts (from the store) and one transport per
host, kept open and reused for every call. The control host's agent runs in this process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from slipway.agent.core import Agent
from slipway.errors import HostUnreachable
from slipway.hosts.model import LOCAL, Host
from slipway.hosts.transport import LocalTransport, Transport
from slipway.router.tier import Member
from slipway.store import hosts as stored
from slipway.store.store import Store

RemoteFactory = Callable[[Host], Transport]


class Fleet:
    def __init__(self, store: Store, agent: Agent, remote: RemoteFactory | None = None) -> None:
        self.store = store
        self.local = LocalTransport(agent, LOCAL)
        self.remote = remote
        self.transports: dict[str, Transport] = {}
        self.ingest_port = 0  # the control plane's UDP request-log receiver
        stored.ensure_local(store)
        # the machine this control plane runs on now (it may have been restored elsewhere)
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        stored.update_facts(store, LOCAL, cores=os.cpu_count() or 1, memory=memory)

    def hosts(self) -> list[Host]:
        return stored.hosts(self.store)

    def host(self, name: str) -> Host:
        return stored.host(self.store, name)

    def addresses(self) -> dict[str, str]:
        return {h.name: h.address for h in self.hosts()}

    def with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts() if h.has(role)]

    def transport(self, name: str) -> Transport:
        if name == LOCAL:
            return self.local
        if name not in self.transports:
            host = stored.find(self.store, name)
            if host is None or host.ssh is None:
                raise HostUnreachable(
                    f"host '{name}' is not in the fleet any more",
                    fix="see `slipway hosts`",
                )
            if self.remote is None:
                raise HostUnreachable(f"no way to reach host '{name}'", where=f"host {name}")
            self.transports[name] = self.remote(host)
        return self.transports[name]

    def forget(self, name: str) -> None:
        transport = self.transports.pop(name, None)
        if transport is not None:
            asyncio.get_running_loop().create_task(transport.close())

    def lb_members(self) -> list[Member]:
        """The lb tier: each lb host's agent, and where its HAProxy sends request logs (this
        control plane, at the address that host sees it by)."""
        members = []
        for host in self.with_role("lb"):
            seen_as = "127.0.0.1" if host.local else host.facts.get("client")
            target = f"{seen_as}:{self.ingest_port}" if seen_as and self.ingest_port else None
            members.append(Member(host.name, self.transport(host.name), target))
        return members

    async def close(self) -> None:
        for transport in self.transports.values():
            await transport.close()
        self.transports.clear()
