"""The lb tier: the HAProxy of every `lb` host, changed together. One host is a tier of one.

Every traffic change (add, weight, drain, remove) goes to every member at once. A switch of
weights completes on all of them or is undone on those that took it, and the error names
the host that refused: traffic is never left half-switched. A member that missed changes
(down, unreachable) is brought to the current state (`sync`) before it is used again.

Certificates are read here, on the control host, and shipped to the members with the state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slipway.agent import wire
from slipway.errors import HostUnreachable, RouterError, SlipwayError
from slipway.hosts.transport import Transport
from slipway.router import certs
from slipway.router.config import Backend, RouterState, Server
from slipway.router.stats import CacheCounters, ServerStat

QUICK = 5.0  # seconds: a traffic change or a look at the servers; an lb host slower is down


@dataclass(frozen=True)
class Member:
    host: str
    transport: Transport
    log_target: str | None  # where its HAProxy sends request logs (the control plane)


class TierRouter:
    def __init__(
        self,
        members: Callable[[], Sequence[Member]],
        certs_cache: Path,
        excused: Callable[[], set[str]] = set,
    ) -> None:
        self.members = members
        self.certs_cache = certs_cache
        self.excused = excused  # hosts a deployment was told to go on without (--skip-host)
        self.missed: set[str] = set()  # members that failed a change: synced before use

    # structure ---------------------------------------------------------------------------

    async def ensure(self, state: RouterState) -> bool:
        """Every member runs HAProxy with this state's listeners and servers."""
        prepared = certs.prepare(state, self.certs_cache)
        certs.install(self.certs_cache, prepared)  # the copy served if a file goes missing
        pems = {name: wire.blob_out(pem) for name, pem in prepared.pems.items()}
        sources = {name: list(pair) for name, pair in prepared.sources.items()}

        async def apply(member: Member) -> bool:
            mine = RouterState(
                admin_socket="", backends=prepared.state.backends, log_target=member.log_target
            )
            reloaded = await member.transport.call(
                "router.apply", state=wire.state_out(mine), pems=pems, sources=sources
            )
            return bool(reloaded)

        results = await self._everywhere(apply)
        return any(results)

    async def running(self) -> bool:
        """HAProxy runs on every member that answers."""
        results = await self._each(lambda m: m.transport.call("router.running", _timeout=QUICK))
        return all(bool(r) for r in results.values() if not isinstance(r, SlipwayError))

    async def stop(self, timeout: float = 30.0) -> None:
        await self._everywhere(lambda m: m.transport.call("router.stop", timeout=timeout))

    # traffic -----------------------------------------------------------------------------

    async def add_server(self, backend: Backend, server: Server) -> None:
        async def add(member: Member) -> None:
            await member.transport.call(
                "router.add_server", backend=wire.backend_out(backend), server=server.__dict__
            )

        async def undo(member: Member) -> None:
            await member.transport.call(
                "router.remove_server", app=backend.app, name=server.name, timeout=5.0
            )

        await self._all_or_nothing(add, undo, f"add server {server.name}")

    async def set_weights(self, app: str, weights: dict[str, int], before: dict[str, int]) -> None:
        """One switch on every member (each applies `weights` in order: raises first).
        If a member refuses, the others go back to `before` and the switch is refused."""

        async def switch(member: Member) -> None:
            await member.transport.call(
                "router.set_weights", _timeout=QUICK, app=app, weights=weights
            )

        async def undo(member: Member) -> None:
            if before:
                await member.transport.call("router.set_weights", app=app, weights=before)

        await self._all_or_nothing(switch, undo, f"weights of {app}")

    async def set_health(self, app: str, name: str, up: bool) -> None:
        await self._everywhere(
            lambda m: m.transport.call("router.set_health", app=app, name=name, up=up)
        )

    async def drain(self, app: str, name: str) -> None:
        await self._everywhere(lambda m: m.transport.call("router.drain", app=app, name=name))

    async def remove_server(self, app: str, name: str, timeout: float = 20.0) -> None:
        await self._everywhere(
            lambda m: m.transport.call("router.remove_server", app=app, name=name, timeout=timeout)
        )

    async def sync(self, backend: Backend) -> None:
        """Every member to the recorded servers (raises before it lowers, on each)."""
        await self._everywhere(
            lambda m: m.transport.call("router.sync", backend=wire.backend_out(backend))
        )

    async def stats(self, app: str) -> dict[str, ServerStat]:
        """The tier's view of each server: up only if every member that answers has it up;
        connections summed; the worst check."""
        answers = await self._each(
            lambda m: m.transport.call("router.stats", _timeout=QUICK, app=app)
        )
        views = [wire.stats_in(a) for a in answers.values() if not isinstance(a, SlipwayError)]
        if not views:
            raise RouterError(
                "no HAProxy of the lb tier answers",
                fix="check the lb hosts with `slipway hosts`",
            )
        return merge_stats(views)

    async def purge_cache(self, app: str) -> bool:
        """A new cache epoch on every member (each has its own cache); a member that cannot
        be reached is synced before it is used again, and a restarted HAProxy's cache is
        empty anyway."""
        results = await self._everywhere(
            lambda m: m.transport.call("router.purge_cache", _timeout=QUICK, app=app)
        )
        return any(bool(r) for r in results)

    async def cache_counters(self, app: str) -> CacheCounters:
        """The app's cache lookups and hits, summed over the members that answer."""
        answers = await self._each(
            lambda m: m.transport.call("router.cache_counters", _timeout=QUICK, app=app)
        )
        seen = [a for a in answers.values() if not isinstance(a, SlipwayError)]
        return CacheCounters(
            lookups=sum(int(a["lookups"]) for a in seen), hits=sum(int(a["hits"]) for a in seen)
        )

    async def dropped_logs(self) -> dict[str, int]:
        """HAProxy's own count of request-log lines it could not send, per member."""
        answers = await self._each(lambda m: m.transport.call("router.dropped_logs"))
        return {h: int(a) for h, a in answers.items() if not isinstance(a, SlipwayError)}

    # how a change reaches the members --------------------------------------------------

    async def _each(self, action: Callable[[Member], Awaitable[Any]]) -> dict[str, Any]:
        """`action` on every member at once; each one's answer or error."""
        members = list(self.members())

        async def one(member: Member) -> Any:
            try:
                return await action(member)
            except SlipwayError as error:
                return error

        results = await asyncio.gather(*(one(m) for m in members))
        return {m.host: r for m, r in zip(members, results, strict=True)}

    async def _everywhere(self, action: Callable[[Member], Awaitable[Any]]) -> list[Any]:
        """`action` on every member; a member that fails is remembered (it is synced before
        it is used again) and the first failure is raised, naming the host."""
        results = await self._each(action)
        failed = {h: r for h, r in results.items() if isinstance(r, SlipwayError)}
        self.missed |= set(failed)
        failed = self._not_excused(failed)
        if failed:
            host, error = next(iter(failed.items()))
            raise _on(host, error)
        return list(results.values())

    async def _all_or_nothing(
        self,
        change: Callable[[Member], Awaitable[Any]],
        undo: Callable[[Member], Awaitable[Any]],
        what: str,
    ) -> None:
        results = await self._each(change)
        failed = {h: r for h, r in results.items() if isinstance(r, SlipwayError)}
        self.missed |= set(failed)
        failed = self._not_excused(failed)
        if not failed:
            return
        took = [m for m in self.members() if m.host in results and m.host not in failed]
        undone = await asyncio.gather(*(undo(m) for m in took), return_exceptions=True)
        self.missed |= set(failed) | {
            m.host for m, r in zip(took, undone, strict=True) if isinstance(r, BaseException)
        }
        host, error = next(iter(failed.items()))
        raise RouterError(
            f"{what} failed on lb host {host} ({error.message}); it was undone on the "
            f"{len(took)} other lb host(s): every lb host serves as before",
            where=f"lb host {host}",
            fix=error.fix or "check the host with `slipway hosts`, then retry",
        )

    def _not_excused(self, failed: dict[str, SlipwayError]) -> dict[str, SlipwayError]:
        """An unreachable host a deployment was told to skip misses the change (it is synced
        when it answers again) without failing it."""
        excused = self.excused()
        return {
            h: e for h, e in failed.items() if not (h in excused and isinstance(e, HostUnreachable))
        }


def merge_stats(views: list[dict[str, ServerStat]]) -> dict[str, ServerStat]:
    merged: dict[str, ServerStat] = {}
    for name in {n for view in views for n in view}:
        seen = [view[name] for view in views if name in view]
        down = [s for s in seen if not s.up] or [s for s in seen if not s.checked_ok]
        worst = down[0] if down else seen[0]
        merged[name] = ServerStat(
            name=name,
            status=worst.status if len(seen) == len(views) else "MISSING",
            weight=seen[0].weight,
            scur=sum(s.scur for s in seen),
            qcur=sum(s.qcur for s in seen),
            check_status=worst.check_status,
            req_tot=sum(s.req_tot for s in seen),
        )
    return merged


def _on(host: str, error: SlipwayError) -> SlipwayError:
    if isinstance(error, HostUnreachable):
        return error
    return type(error)(
        f"lb host {host}: {error.message}",
        where=error.where,
        fix=error.fix,
        details=error.details,
        data=error.data,
    )
