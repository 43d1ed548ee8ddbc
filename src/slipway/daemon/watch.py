"""Watching the instances that serve, beside HAProxy's checks, with slipway's own probe.

An instance that stops answering (frozen: alive, but silent) keeps getting its share of
requests until HAProxy's checks have failed `fall` times in a row (~8 s with the defaults).
The watch takes it out of traffic at its first failed probe instead, as long as another
instance of the app answers (so a shared cause, e.g. an overloaded host, never takes away
every server); HAProxy's own checks bring it back once it answers again. One that stays
silent for `[healthcheck] restart_after` is restarted (its process killed; its supervisor
starts it again, and HAProxy retries the requests it held on another server), one instance
per app at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from slipway.config.schema import AppConfig
from slipway.errors import HostUnreachable, SlipwayError
from slipway.router.base import Router
from slipway.runtime.base import Runtime
from slipway.store.records import Instance
from slipway.store.store import Store

log = logging.getLogger("slipway.watch")
TICK = 0.1
Say = Callable[[str, str, str], None]  # app, status, message


@dataclass
class Watched:
    next_probe: float = 0.0
    failing_since: float | None = None
    taken_out: bool = False
    last: str = ""


class InstanceWatch:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        router: Router,
        say: Say,
        addresses: Callable[[], dict[str, str]],
    ) -> None:
        self.store, self.runtime, self.router, self.say = store, runtime, router, say
        self.addresses = addresses
        self.watched: dict[tuple[str, str], Watched] = {}
        self.configs: dict[tuple[str, str], AppConfig] = {}
        self.restarted_at: dict[str, float] = {}  # per app

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.look(time.monotonic())
            except SlipwayError as exc:
                log.error("watching instances failed: %s", exc)
            except Exception:
                log.exception("watching instances crashed")

    async def look(self, now: float) -> None:
        serving = [
            i
            for i in self.store.instances()
            if i.is_web and i.status == "running" and i.weight and i.port is not None
        ]
        keys = {(i.app, i.id) for i in serving}
        for gone in self.watched.keys() - keys:
            del self.watched[gone]
        due = [i for i in serving if self.state(i).next_probe <= now]
        addresses = self.addresses()
        results = await asyncio.gather(*(self.probe(i, addresses) for i in due))
        for instance, ok in zip(due, results, strict=True):
            if ok is not None:  # None: its host does not answer; not the instance's doing
                await self.judge(instance, ok, serving, now)

    def state(self, instance: Instance) -> Watched:
        return self.watched.setdefault((instance.app, instance.id), Watched())

    def config(self, instance: Instance) -> AppConfig:
        key = (instance.app, instance.release)
        if key not in self.configs:
            self.configs[key] = self.store.release(instance.app, instance.release).config
        return self.configs[key]

    async def probe(self, instance: Instance, addresses: dict[str, str]) -> bool | None:
        check = self.config(instance).healthcheck
        watched = self.state(instance)
        watched.next_probe = time.monotonic() + check.interval
        address = addresses.get(instance.host, "127.0.0.1")
        try:
            ok, watched.last = await self.runtime.probe(
                instance, address, check.path, check.timeout
            )
        except HostUnreachable:
            return None  # a partition is not a hung instance: it keeps serving through HAProxy
        return ok

    async def judge(
        self, instance: Instance, ok: bool, serving: list[Instance], now: float
    ) -> None:
        watched = self.state(instance)
        if ok:
            watched.failing_since, watched.taken_out = None, False
            return
        if watched.failing_since is None:
            watched.failing_since = now
        name = f"instance {instance.id}"
        if not watched.taken_out and self.others_answer(instance, serving):
            await self.router.set_health(instance.app, instance.id, up=False)
            watched.taken_out = True
            self.say(instance.app, "fail", f"{name} does not answer ({watched.last}): "
                     "taken out of traffic until HAProxy's checks pass again")  # fmt: skip
        limit = self.config(instance).healthcheck.restart_after
        silent = now - watched.failing_since
        last_restart = self.restarted_at.get(instance.app, -1e9)
        if limit and silent >= limit and now - last_restart >= limit:
            self.restarted_at[instance.app] = now
            watched.failing_since = now
            killed = await self.runtime.restart_process(instance)
            if killed:
                self.say(instance.app, "fail", f"{name} did not answer for {silent:.0f}s: "
                         "restarted (its supervisor starts it again)")  # fmt: skip

    def others_answer(self, instance: Instance, serving: list[Instance]) -> bool:
        return any(
            other.app == instance.app
            and other.id != instance.id
            and self.state(other).failing_since is None
            for other in serving
        )
