"""The autoscaler: every second it reads the signal of each autoscaled process type; every
`every` it decides (autoscale/rule.py, pure) and, when the count should change, scales
through the same zero-downtime path as `slipway scale` (a new instance gets weight only once
healthy; one removed is drained first).

It never scales an app in the middle of a deployment (the deployment keeps the count it
started with), nor a process whose autoscaling a manual `slipway scale` paused. It adds only
what the fleet has room for: what does not fit is recorded, and the `fleet full` alert fires.
Every decision that changes a count, or cannot, is recorded with its numbers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slipway.autoscale.rule import Decision, decide
from slipway.config.autoscale import Autoscale
from slipway.config.schema import AppConfig
from slipway.deploy import placement, usage
from slipway.deploy.capacity import FleetFull
from slipway.errors import SlipwayError
from slipway.judge.histogram import quantiles_ms
from slipway.metrics import history
from slipway.router.stats import ServerStat
from slipway.store import autoscale as stored
from slipway.store.records import App, Instance

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.autoscale")
SAMPLE_EVERY = 1.0
MIN_REQUESTS = 20  # a p95 of fewer requests says nothing
WHO = "autoscaler"


@dataclass
class Track:
    """What the autoscaler knows of one process type of one app."""

    samples: deque[tuple[float, float]] = field(default_factory=deque)  # in flight per instance
    sampled_with: int = 0  # how many instances served when `samples` were taken
    cpu: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)  # cpu seconds
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # recommendations
    decided_at: float = 0.0
    last: Decision | None = None
    result: str = "no decision yet"
    recorded: str = ""  # the last result recorded: a blocked state is recorded once
    short: str | None = None  # what the fleet had no room for, if anything


class Autoscaler:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.tracks: dict[tuple[str, str], Track] = {}
        self.configs: dict[tuple[str, str], AppConfig] = {}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            try:
                await self.round(time.time())
            except SlipwayError as exc:
                log.warning("autoscaling: %s", exc.message)
            except Exception:
                log.exception("autoscaling crashed")

    def policies(self) -> list[tuple[App, AppConfig, str, Autoscale]]:
        found: list[tuple[App, AppConfig, str, Autoscale]] = []
        for app in self.service.store.apps():
            config = self.config_of(app)
            if config is not None:
                found.extend((app, config, p, policy) for p, policy in config.autoscale.items())
        return found

    def config_of(self, app: App) -> AppConfig | None:
        """The serving release's config, parsed once per release (asked every second)."""
        if app.current_release is None:
            return None
        key = (app.name, app.current_release)
        if key not in self.configs:
            self.configs = {k: v for k, v in self.configs.items() if k[0] != app.name}
            self.configs[key] = self.service.store.release(*key).config
        return self.configs[key]

    async def round(self, now: float) -> None:
        wanted = set()
        stats: dict[str, dict[str, ServerStat] | None] = {}  # one question per app a round
        for app, config, process, policy in self.policies():
            key = (app.name, process)
            wanted.add(key)
            track = self.tracks.setdefault(key, Track())
            if policy.signal == "inflight" and app.name not in stats:
                stats[app.name] = await self.stats(app.name)
            self.sample(app, process, policy, track, stats.get(app.name), now)
            if now - track.decided_at >= policy.every:
                track.decided_at = now
                await self.decide(app, config, process, policy, track, now)
        for gone in set(self.tracks) - wanted:
            del self.tracks[gone]

    async def stats(self, app: str) -> dict[str, ServerStat] | None:
        try:
            return await self.service.router.stats(app)
        except SlipwayError:
            return None  # no lb host answers: no reading this second

    # signals ---------------------------------------------------------------------------

    def serving(self, app: App, process: str) -> list[Instance]:
        return [
            i
            for i in self.service.store.instances(app.name)
            if i.release == app.current_release and i.process == process and i.live
        ]

    def sample(
        self,
        app: App,
        process: str,
        policy: Autoscale,
        track: Track,
        stats: dict[str, ServerStat] | None,
        now: float,
    ) -> None:
        horizon = now - policy.window
        if policy.signal == "inflight" and stats is not None:
            up = [stats[i.id] for i in self.serving(app, process) if i.weight and i.id in stats]
            if up:
                busy = sum(s.scur + s.qcur for s in up)
                # Readings per instance taken while another number of instances served
                # describe that count, not this one: averaged in, the queue of a saturated
                # instance from before a scale-up asks for more again (seen in bench/autoscale:
                # 1→3, then 3→6 at a load 3 served). The window starts again.
                if len(up) != track.sampled_with:
                    track.samples.clear()
                    track.sampled_with = len(up)
                track.samples.append((now, busy / len(up)))
        elif policy.signal == "cpu":
            live = self.serving(app, process)
            for instance in live:
                seconds = self.service.runtime.cached(instance).cpu_seconds
                if seconds is not None:
                    track.cpu.setdefault(instance.id, deque()).append((now, seconds))
            for gone in set(track.cpu) - {i.id for i in live}:
                del track.cpu[gone]
            for series in track.cpu.values():
                while series and series[0][0] < horizon:
                    series.popleft()
        while track.samples and track.samples[0][0] < horizon:
            track.samples.popleft()

    def observe(self, app: App, policy: Autoscale, track: Track, now: float) -> float | None:
        """The signal over the window; None when it cannot be read."""
        if policy.signal == "inflight":
            values = [v for _, v in track.samples]
            return sum(values) / len(values) if values else None
        if policy.signal == "cpu":
            rates = [
                (s[-1][1] - s[0][1]) / (s[-1][0] - s[0][0])
                for s in track.cpu.values()
                if len(s) >= 2 and s[-1][0] > s[0][0]
            ]
            return sum(rates) / len(rates) if rates else None
        traffic = history.window(self.service.store, app.name, policy.window, now)
        data = traffic.get(app.current_release or "")
        judged = data.requests - data.client_aborts if data is not None else 0
        if data is None or judged == 0:
            return 0.0  # no requests: nothing is slow
        if judged < MIN_REQUESTS:
            return None
        return quantiles_ms(data.latency, (0.95,))[0]

    # deciding --------------------------------------------------------------------------

    async def decide(
        self,
        app: App,
        config: AppConfig,
        process: str,
        policy: Autoscale,
        track: Track,
        now: float,
    ) -> None:
        store = self.service.store
        if f"{app.name}/{process}" in stored.paused(store):
            track.result = "paused by a manual `slipway scale`"
            return
        current = app.formation.get(process, 1)
        observed = self.observe(app, policy, track, now)
        decision = decide(policy, process, current, observed, list(track.recent), now)
        track.recent.append((now, decision.recommended))
        while track.recent and track.recent[0][0] < now - policy.scale_down_after:
            track.recent.popleft()
        track.last = decision
        if not decision.changes:
            track.result, track.short = "no change", None
            return
        active = store.active_deployment(app.name)
        if active is not None and active.who == WHO:  # its own scale, still going on
            track.result = f"scaling: deployment #{active.id}"
            return
        if active is not None:
            self.outcome(app.name, track, decision, f"waiting: deployment #{active.id} is "
                         "in progress (it keeps the count it started with)")  # fmt: skip
            return
        desired = decision.desired
        if desired > current:
            fits = self.room_for(config, process, desired - current)
            if fits < desired - current:
                track.short = (
                    f"the fleet is full: {process} of {app.name} should have {desired} "
                    f"instances, there is room for {current + fits}"
                )
                desired = current + fits
            else:
                track.short = None
        if desired == current:
            self.outcome(app.name, track, decision, track.short or "no change")
            return
        try:
            deployment = await self.service.scale(
                app.name, {process: desired}, WHO, autoscaled=True
            )
        except SlipwayError as exc:
            self.outcome(app.name, track, decision, f"not scaled: {exc.message}")
            return
        # what was read with the old count says nothing about the new one: without this,
        # the samples from before a scale-up would ask for another one (overshoot)
        track.samples.clear()
        track.cpu.clear()
        note = f"scaling {process} {current} → {desired}: deployment #{deployment.id}"
        if track.short:
            note += f" ({track.short})"
        self.outcome(app.name, track, decision, note, always=True)

    def room_for(self, config: AppConfig, process: str, count: int) -> int:
        """How many of `count` more instances the fleet has room for now."""
        store = self.service.store
        down = frozenset(self.service.host_watch.down())
        try:
            hosts = placement.eligible(self.service.fleet.hosts(), config.placement, down)
        except SlipwayError:
            return 0
        names = [h.name for h in hosts]
        room = usage.room(store, hosts)
        need = usage.need_of(config, process)
        fitting = 0
        for _ in range(count):
            try:
                placement.place(process, 1, names, [], room, need)
            except FleetFull:
                break
            fitting += 1
        return fitting

    def outcome(
        self, app: str, track: Track, decision: Decision, result: str, always: bool = False
    ) -> None:
        """Recorded when something was done, or when what blocks it is new."""
        track.result = result
        if always or result != track.recorded:
            track.recorded = result
            stored.record(self.service.store, app, decision.process, decision.at,
                          decision.to_dict() | {"result": result})  # fmt: skip
            log.info("%s/%s: %s (%s)", app, decision.process, result, decision.reason)

    # what the rest of the daemon reads ---------------------------------------------------

    def short_of(self, app: str) -> str | None:
        """What the fleet has no room for that the app's autoscaling wants, if anything."""
        notes = [t.short for (a, _), t in sorted(self.tracks.items()) if a == app and t.short]
        return notes[0] if notes else None

    def view(self, app: str) -> list[dict[str, Any]]:
        """Each autoscaled process type of the app: its policy, the latest decision, what
        came of it, and whether a manual scale paused it."""
        paused = stored.paused(self.service.store)
        found: list[dict[str, Any]] = []
        for record, _config, process, policy in self.policies():
            if record.name != app:
                continue
            track = self.tracks.get((app, process), Track())
            found.append(
                {
                    "process": process,
                    "policy": policy.model_dump(),
                    "current": record.formation.get(process, 1),
                    "paused": paused.get(f"{app}/{process}"),
                    "last": track.last.to_dict() if track.last else None,
                    "result": track.result,
                    "short": track.short,
                }
            )
        return found
