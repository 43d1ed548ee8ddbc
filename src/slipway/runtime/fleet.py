"""The control plane's runtime: instances on any host of the fleet, each reached through its
host's agent (the control host's own agent in this process, the others over SSH). The same
code path for one host or many.

Observations are also kept in a cache, refreshed by every `observe` call (housekeeping does
one a second), for the readers that cannot wait on the network: /metrics, alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from slipway.agent import wire
from slipway.errors import HostUnreachable, SlipwayError
from slipway.hosts.model import LOCAL
from slipway.hosts.transport import Transport
from slipway.runtime.base import Handle, InstanceSpec, Observed
from slipway.store.records import Instance

OBSERVE_TIMEOUT = 5.0  # a host that does not answer within this is unreachable for now
LOG_TIMEOUT = 15.0  # a page of logs is up to LOG_PAGE_BYTES, over SSH
LOG_PAGE_BYTES = 1 << 20
UNREACHABLE = "unreachable"  # an Observed state: its host does not answer; nothing is known


def unreachable(error: SlipwayError) -> Observed:
    return Observed(alive=False, state=UNREACHABLE, extra={"error": error.message})


class FleetRuntime:
    def __init__(self, transport: Callable[[str], Transport]) -> None:
        self.transport = transport
        self.cache: dict[tuple[str, str], Observed] = {}

    async def start(self, instance: Instance, spec: InstanceSpec) -> Handle:
        try:
            answer = await self.transport(instance.host).call(
                "instance.start", spec=wire.spec_out(spec)
            )
        except SlipwayError as error:  # e.g. [run] user missing there: say which host
            if instance.host != LOCAL:
                error.where = f"host {instance.host}, {error.where or instance.id}"
            raise
        handle = wire.handle_in(answer)
        assert handle is not None
        return handle

    async def observe(self, instances: Sequence[Instance]) -> dict[str, Observed]:
        """Every instance's state, one call per host, all hosts at once."""
        by_host: dict[str, list[Instance]] = {}
        for instance in instances:
            by_host.setdefault(instance.host, []).append(instance)
        answers = await asyncio.gather(
            *(self._observe_host(host, group) for host, group in by_host.items())
        )
        seen: dict[str, Observed] = {}
        for answer in answers:
            seen.update(answer)
        for instance in instances:
            self.cache[(instance.app, instance.id)] = seen[instance.id]
        return seen

    async def _observe_host(self, host: str, group: list[Instance]) -> dict[str, Observed]:
        request = [[i.app, i.id, wire.handle_out(i.handle)] for i in group]
        try:
            answer = await self.transport(host).call(
                "instance.observe", _timeout=OBSERVE_TIMEOUT, instances=request
            )
        except HostUnreachable as error:
            return {i.id: unreachable(error) for i in group}
        return {name: wire.observed_in(data) for name, data in answer.items()}

    async def observe_one(self, instance: Instance) -> Observed:
        return (await self.observe([instance]))[instance.id]

    def cached(self, instance: Instance) -> Observed:
        """The latest observation (no I/O); "unknown" before the first one."""
        return self.cache.get((instance.app, instance.id)) or Observed(False, "unknown")

    async def stop(self, instance: Instance, grace: float) -> None:
        await self._call(instance, "instance.stop", grace=grace)

    async def set_priority(self, instance: Instance, nice: int) -> None:
        await self._call(instance, "instance.set_priority", nice=nice)

    async def restart_process(self, instance: Instance) -> bool:
        return bool(await self._call(instance, "instance.restart_process"))

    async def log_tail(self, instance: Instance, lines: int) -> list[dict[str, Any]]:
        try:
            answer = await self.transport(instance.host).call(
                "instance.log_tail", app=instance.app, instance=instance.id, lines=lines
            )
        except HostUnreachable:
            return []
        return list(answer)

    # logs: on the instance's host, one call per host (a page at a time for a whole log)

    async def logs_last(
        self, host: str, app: str, instances: list[str], lines: int
    ) -> dict[str, tuple[list[dict[str, Any]], int]]:
        answer = await self.transport(host).call(
            "instance.logs_last", _timeout=LOG_TIMEOUT, app=app, instances=instances, lines=lines
        )
        return {i: (list(records), int(end)) for i, (records, end) in answer.items()}

    async def logs_after(
        self, host: str, app: str, offsets: dict[str, int]
    ) -> dict[str, tuple[list[dict[str, Any]], int]]:
        answer = await self.transport(host).call(
            "instance.logs_after",
            _timeout=LOG_TIMEOUT,
            app=app,
            offsets=offsets,
            max_bytes=LOG_PAGE_BYTES,
        )
        return {i: (list(records), int(end)) for i, (records, end) in answer.items()}

    async def log_page(
        self, instance: Instance, cursor: tuple[int, int] | None, since: float | None
    ) -> tuple[list[dict[str, Any]], tuple[int, int] | None, int]:
        records, after, end = await self.transport(instance.host).call(
            "instance.log_page",
            _timeout=LOG_TIMEOUT,
            app=instance.app,
            instance=instance.id,
            cursor=list(cursor) if cursor else None,
            since=since,
            max_bytes=LOG_PAGE_BYTES,
        )
        return list(records), (int(after[0]), int(after[1])) if after else None, int(end)

    async def kill_orphan(self, instance: Instance) -> list[int]:
        answer = await self.transport(instance.host).call(
            "instance.kill_orphan", app=instance.app, instance=instance.id
        )
        return [int(pid) for pid in answer]

    async def supervised(self, host: str) -> list[tuple[str, str, Handle]]:
        """(app, instance, shim) of every supervisor running on `host`, recorded or not."""
        answer = await self.transport(host).call("instance.supervised")
        found = []
        for app, instance, handle in answer:
            shim = wire.handle_in(handle)
            if shim is not None:
                found.append((str(app), str(instance), shim))
        return found

    async def probe(
        self, instance: Instance, address: str, path: str, timeout: float
    ) -> tuple[bool, str]:
        """A health probe from the instance's own host, where it listens (HostUnreachable
        when that host does not answer: not the instance's fault)."""
        ok, text = await self.transport(instance.host).call(
            "instance.probe",
            _timeout=timeout + OBSERVE_TIMEOUT,
            address=address,
            port=instance.port,
            path=path,
            timeout=timeout,
        )
        return bool(ok), str(text)

    async def free_port(self, host: str, address: str) -> int:
        return int(await self.transport(host).call("free_port", address=address))

    async def _call(self, instance: Instance, method: str, **params: Any) -> Any:
        return await self.transport(instance.host).call(
            method,
            app=instance.app,
            instance=instance.id,
            handle=wire.handle_out(instance.handle),
            **params,
        )
