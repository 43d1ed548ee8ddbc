"""Rolling deploys, for fleets without room for two releases side by side: the instances of
the other releases are replaced by the target release's a few at a time (`max_unavailable`
instances, or every instance on that many hosts), each batch out of traffic, drained and
stopped before its replacements start on the hosts it freed.

Every round starts from what the store records, so a daemon restarted mid-roll goes on where
it was: instances planned but not started are started (or adopted, if their supervisor
started before the daemon died), instances not proven healthy are checked again. Traffic is
never left with nowhere to go: when a batch would take out the last serving web instances,
its replacements start (and prove healthy) first.

A roll that fails rolls back the same way, toward the release that served before."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from slipway import faults
from slipway.config.schema import AppConfig
from slipway.deploy import placement, usage
from slipway.deploy.routing import routing_of
from slipway.errors import SlipwayError
from slipway.router.config import SERVING_WEIGHT
from slipway.store.records import Deployment, Instance

if TYPE_CHECKING:
    from slipway.deploy.engine import Engine

Unit = Literal["instances", "hosts"]


def serving(instance: Instance) -> bool:
    """Web instances serve at full weight; a worker serves while it runs."""
    return instance.weight == SERVING_WEIGHT if instance.is_web else instance.live


def next_batch(theirs: Sequence[Instance], count: int, unit: Unit) -> list[Instance]:
    """The next instances to replace: those not serving first (taking them out costs
    nothing), then by host and name; `count` instances, or every one on `count` hosts."""
    order = sorted(theirs, key=lambda i: (serving(i), i.host, i.id))
    if unit == "instances":
        return order[:count]
    hosts = list(dict.fromkeys(i.host for i in order))[:count]
    return [i for i in order if i.host in hosts]


def shortfall(formation: dict[str, int], ours: Iterable[Instance]) -> dict[str, int]:
    """How many instances of each process the target release still lacks."""
    have = Counter(i.process for i in ours)
    return {p: n - have[p] for p, n in formation.items() if n > have[p]}


def missing(lacking: dict[str, int], theirs: Iterable[Instance]) -> dict[str, int]:
    """Capacity nobody gives now: what the target lacks beyond what the other releases still
    serve (a batch just taken out, an instance that failed, a process the target adds)."""
    still = Counter(i.process for i in theirs if serving(i))
    return {p: n - still[p] for p, n in lacking.items() if n > still[p]}


def leaves_nothing_serving(
    batch: Sequence[Instance], theirs: Sequence[Instance], ours: Sequence[Instance]
) -> bool:
    """Taking `batch` out would leave no web instance serving."""
    leaving = {i.id for i in batch}
    if not any(i.is_web for i in batch):
        return False
    still = [i for i in [*theirs, *ours] if i.is_web and serving(i) and i.id not in leaving]
    return not still


class Roll:
    def __init__(
        self, engine: Engine, dep: Deployment, target: str, formation: dict[str, int]
    ) -> None:
        self.engine, self.s = engine, engine.s
        self.dep = dep
        self.app = dep.app
        self.target = target
        self.formation = formation
        self.config: AppConfig = self.s.store.release(dep.app, target).config
        self.count, self.unit = self.config.deploy.unavailable
        self.proven: set[str] = set()  # workers seen healthy this run
        self.measured = False  # the performance gate ran
        self.freed: list[str] = []  # the hosts of the batch taken out last

    def split(self) -> tuple[list[Instance], list[Instance]]:
        """(the target release's live instances, every other live instance of the app)."""
        live = [i for i in self.s.store.instances(self.app) if i.live]
        return [i for i in live if i.release == self.target], [
            i for i in live if i.release != self.target
        ]

    def ready(self, instance: Instance) -> bool:
        return serving(instance) if instance.is_web else instance.id in self.proven

    async def run(self) -> str:
        began, rounds, replaced = time.monotonic(), 0, 0
        store = self.s.store
        store.update_app(self.app, routing=routing_of(self.config))
        await self.s.router.ensure(self.engine.router_state())
        while True:
            ours, theirs = self.split()
            await self.start_unstarted(ours)
            pending = [i for i in ours if not self.ready(i)]
            if pending:
                await self.admit(pending, theirs)
                continue
            lacking = shortfall(self.formation, ours)
            if not theirs and not lacking:
                break
            idle = [i for i in theirs if not serving(i)]
            if idle:  # out of traffic already (warm, or failed): they go first, all at once
                await self.take_out(idle)
                replaced += len(idle)
                continue
            gap = missing(lacking, theirs)
            if gap:  # start what nothing serves in place of, where room was just made
                await self.add(gap, ours)
                continue
            rounds += 1
            batch = next_batch(theirs, self.count, self.unit)
            if leaves_nothing_serving(batch, theirs, ours) and lacking.get("web"):
                # a web instance of the target first: traffic always has somewhere to go
                await self.add({"web": 1}, ours)
                continue
            await self.take_out(batch)
            replaced += len(batch)
        if self.target == self.dep.to_release:
            store.set_current(self.app, self.target, self.formation)
        unit = "host(s)" if self.unit == "hosts" else "instance(s)"
        return (
            f"{self.target} in place of {replaced} old instance(s), {self.count} {unit} at a "
            f"time, in {rounds} round(s) ({time.monotonic() - began:.1f}s)"
        )

    async def start_unstarted(self, ours: list[Instance]) -> None:
        """Planned before a restart and never started: adopted if their supervisor did start
        (its pid was not recorded yet), else started now."""
        unstarted = [i for i in ours if i.handle is None]
        if not unstarted:
            return
        running: dict[tuple[str, str], tuple[int, float]] = {}
        for host in sorted({i.host for i in unstarted}):
            for app, name, shim in await self.s.runtime.supervised(host):
                running[(app, name)] = (shim.pid, shim.ctime)
        await self.engine.ship(
            self.s.store.release(self.app, self.target), {i.host for i in unstarted}
        )
        for instance in unstarted:
            found = running.get((instance.app, instance.id))
            if found is not None:
                pid, ctime = found
                self.s.store.update_instance(
                    self.app, instance.id, shim_pid=pid, shim_ctime=ctime, status="running"
                )
        await asyncio.gather(
            *(self.engine.spawn(i, self.config) for i in unstarted if (i.app, i.id) not in running)
        )
        await self.engine.add_servers(self.app, unstarted)

    async def admit(self, pending: list[Instance], theirs: list[Instance]) -> None:
        """The target's new instances, once healthy, get their share of traffic (one switch
        on every lb host); before the first do, the performance gate measures them."""
        await self.engine.wait_healthy(self.dep, pending, self.config)
        await self.measure(pending, theirs)
        web = [i for i in pending if i.is_web]
        if web:
            store = self.s.store
            before = {i.id: i.weight or 0 for i in web}
            for instance in web:
                store.update_instance(self.app, instance.id, weight=SERVING_WEIGHT)
            try:
                await self.s.router.set_weights(
                    self.app, dict.fromkeys(before, SERVING_WEIGHT), before
                )
            except SlipwayError:
                for name, weight in before.items():  # nothing switched anywhere
                    store.update_instance(self.app, name, weight=weight)
                raise
        self.proven |= {i.id for i in pending if not i.is_web}
        self.engine.event(
            self.dep, self.dep.state, "info", f"{len(pending)} instance(s) of {self.target} serve"
        )

    async def measure(self, candidate: list[Instance], theirs: list[Instance]) -> None:
        """A new release's first instances against the ones still serving, once per run."""
        if self.measured or self.dep.kind != "deploy" or self.target != self.dep.to_release:
            return
        self.measured = True
        stable = [i for i in theirs if i.is_web and serving(i)]
        if stable and self.config.gates.performance is not None:
            said = await self.engine.perf(self.dep, candidate, stable)
            self.engine.event(self.dep, self.dep.state, "info", said)

    async def take_out(self, batch: list[Instance]) -> None:
        """Out of traffic on every lb host (one switch), drained, then stopped."""
        store = self.s.store
        web = [i for i in batch if i.is_web and i.weight]
        if web:
            before = {i.id: i.weight or 0 for i in web}
            for instance in web:
                store.update_instance(self.app, instance.id, weight=0)
            try:
                await self.s.router.set_weights(self.app, dict.fromkeys(before, 0), before)
            except SlipwayError:
                for name, weight in before.items():
                    store.update_instance(self.app, name, weight=weight)
                raise
            faults.crash_at("roll:out")
            await self.engine.drain(self.dep, set(before))
        stopped = [store.instance(self.app, i.id) for i in batch]
        await asyncio.gather(*(self.engine.retire_instance(i) for i in stopped))
        self.freed = sorted({i.host for i in batch})
        self.engine.event(
            self.dep,
            self.dep.state,
            "info",
            f"{len(batch)} instance(s) out: {', '.join(i.id for i in batch)}",
        )

    async def add(self, counts: dict[str, int], ours: list[Instance]) -> None:
        """Record new instances of the target, spread evenly like any placement (on the
        hosts just freed when that is as even), then start them; they are admitted in the
        next round."""
        if not counts:
            return
        hosts = placement.eligible(
            self.s.hosts(), self.config.placement, self.engine.skipped(self.dep)
        )
        names = [h.name for h in hosts]
        taken = {(i.host, i.port) for i in self.s.store.instances()}
        room = usage.room(self.s.store, hosts)
        new: list[tuple[str, int | None, str]] = []
        for process, count in counts.items():
            existing = [i.host for i in ours if i.process == process]
            need = usage.need_of(self.config, process)
            for host in placement.place(
                process, count, names, existing, room, need, prefer=self.freed
            ):
                port = await self.engine.unused_port(host, taken) if process == "web" else None
                new.append((process, port, host))
        planned = self.s.store.plan_instances(self.dep.id, self.app, self.target, ours, new)
        faults.crash_at("roll:planned")
        await self.start_unstarted(planned)
