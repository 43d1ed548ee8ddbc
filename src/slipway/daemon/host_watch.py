"""Watching the hosts of the fleet: each remote host's agent is asked `hello` every second.

A host that stops answering is unreachable; one that the lb tier also sees serve nothing for
a few seconds is down (hosts/reachability.py says why both are needed). HAProxy has already
stopped sending it requests by then (its checks and its observation of real traffic do that
on every lb host, without the control plane). What the control plane adds for a host that
is down: it is shown down (`slipway hosts`), each app that may run there alerts ("host
down"), and each app that ran instances there gets them back on the other hosts its
[placement] allows, through the usual zero-downtime path (a restore deployment without the
lost host). Its old instances leave the lb tier then and are stopped when it answers again,
before anything new is placed on it: a host that returns never serves a stale instance."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from slipway.config.schema import Placement
from slipway.errors import RouterError, SlipwayError
from slipway.hosts.model import Host
from slipway.hosts.reachability import Reach, Witness, after_probe, first
from slipway.hosts.transport import Transport
from slipway.router.base import Router
from slipway.store.records import Deployment, Instance
from slipway.store.store import Store

log = logging.getLogger("slipway.hosts")
PROBE_EVERY = 1.0
PROBE_TIMEOUT = 2.0  # a hello takes milliseconds: one that takes this long is not coming
Note = Callable[[str, str, str], None]  # app, status, message


def may_run_on(host: Host, placement: Placement) -> bool:
    """Whether an app's [placement] lets it run on `host`."""
    if placement.hosts:
        return host.name in placement.hosts
    return any(host.has(role) for role in placement.roles)


def lost(instances: Sequence[Instance], host: str, release: str | None) -> list[Instance]:
    """The instances of the serving release that ran on a host that is down."""
    return [i for i in instances if i.host == host and i.live and i.release == release]


class HostWatch:
    def __init__(
        self,
        store: Store,
        hosts: Callable[[], list[Host]],
        transport: Callable[[str], Transport],
        router: Router,
        note: Note,
        launch: Callable[[Deployment], None],
    ) -> None:
        self.store, self.hosts, self.transport, self.router = store, hosts, transport, router
        self.note, self.launch = note, launch
        self.states: dict[str, Reach] = {}
        self.to_replace: set[str] = set()  # down hosts whose instances are not replaced yet
        self.answered: set[str] = set()  # the remote hosts that answered the latest round

    def state(self, name: str) -> Reach | None:
        return self.states.get(name)

    def down(self) -> set[str]:
        return {name for name, reach in self.states.items() if reach.down}

    def down_for(self, placement: Placement) -> list[str]:
        """The hosts that are down and that the app runs on, or routes through (lb)."""
        down = self.down()
        return sorted(
            h.name
            for h in self.hosts()
            if h.name in down and (h.has("lb") or may_run_on(h, placement))
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PROBE_EVERY)
            try:
                await self.look()
            except SlipwayError as exc:
                log.error("watching the hosts failed: %s", exc)
            except Exception:
                log.exception("watching the hosts crashed")

    async def look(self) -> None:
        remote = [h for h in self.hosts() if not h.local]
        for gone in self.states.keys() - {h.name for h in remote}:
            del self.states[gone]  # removed from the fleet
        answers = await asyncio.gather(*(self.probe(h.name) for h in remote))
        now = time.time()  # when the answers (or their absence) are known
        self.answered = {h.name for h, error in zip(remote, answers, strict=True) if not error}
        for host, error in zip(remote, answers, strict=True):
            current = self.states.get(host.name) or first(now)
            witness = Witness.NONE
            if error is not None and current.state != "down":
                witness = await self.witness(host.name)
            new = after_probe(current, error is None, witness, now, error)
            self.states[host.name] = new
            if new.state != current.state:
                self.changed(host.name, current, new, now)
        await self.replace()

    async def probe(self, name: str) -> str | None:
        """None if the host's agent answers; why not otherwise."""
        try:
            # bounded as a whole: reconnecting to a silent host waits for the SSH connect
            # timeout, longer than a probe may take
            async with asyncio.timeout(PROBE_TIMEOUT + 0.5):  # the call's own timeout first
                await self.transport(name).call("hello", _timeout=PROBE_TIMEOUT)
        except SlipwayError as error:
            return error.message
        except TimeoutError:
            return f"no answer within {PROBE_TIMEOUT:g}s"
        return None

    async def witness(self, name: str) -> Witness:
        """What the lb tier sees of the host's servers: any of them up means it serves."""
        serving = [i for i in self.store.instances() if i.host == name and i.is_web and i.weight]
        for app in sorted({i.app for i in serving}):
            try:
                stats = await self.router.stats(app)
            except RouterError:
                return Witness.NONE  # no lb host answers: the control plane may be the one cut off
            if any(stats[i.id].up for i in serving if i.app == app and i.id in stats):
                return Witness.SERVING
        if not serving:
            return Witness.UNSEEN if self.lb_answers() else Witness.NONE
        return Witness.NOT_SERVING

    def lb_answers(self) -> bool:
        """Whether an lb host answered this round (the control host, when it is one)."""
        return any(h.local or h.name in self.answered for h in self.hosts() if h.has("lb"))

    def changed(self, name: str, before: Reach, after: Reach, now: float) -> None:
        # the apps with something there: running, or waiting to be stopped there
        apps = sorted(
            {i.app for i in self.store.instances() if i.host == name and i.status != "stopped"}
        )
        if after.state == "unreachable":
            log.warning("host %s does not answer: %s", name, after.error)
        elif after.state == "down":
            log.error("host %s is down: %s", name, after.error)
            self.to_replace.add(name)
            for app in apps:
                self.note(app, "fail", f"host {name} is down: it has not answered for "
                          f"{now - (after.failing_since or now):.0f}s ({after.error}) and no lb "
                          "host sees any of its instances up")  # fmt: skip
        elif before.state == "down":
            self.to_replace.discard(name)
            log.warning("host %s answers again", name)
            for app in apps:
                self.note(app, "ok", f"host {name} answers again after {now - before.since:.0f}s "
                          "down: what it ran that is not wanted any more is stopped, and "
                          "it gets traffic only for new, healthy instances")  # fmt: skip
        else:
            log.info("host %s answers again", name)

    async def replace(self) -> None:
        """For each host down: every app that ran instances of its serving release there
        starts them on the other hosts it may run on (a restore deployment that skips every
        host that is down). An app busy with a deployment is tried again next time."""
        down = self.down()
        for name in sorted(self.to_replace & down):
            waiting = False
            for app in self.store.apps():
                if not lost(self.store.instances(app.name), name, app.current_release):
                    continue
                if self.store.active_deployment(app.name) is not None:
                    waiting = True
                    continue
                self.start_restore(app.name, name, down)
            if not waiting:
                self.to_replace.discard(name)
        self.to_replace &= down

    def start_restore(self, app_name: str, host: str, down: set[str]) -> None:
        app = self.store.app(app_name)
        assert app.current_release is not None
        config = self.store.release(app_name, app.current_release).config
        others = [h.name for h in self.hosts()
                  if h.name not in down and may_run_on(h, config.placement)]  # fmt: skip
        count = len(lost(self.store.instances(app_name), host, app.current_release))
        if not others:
            self.note(app_name, "fail", f"no other host may run its {count} instance(s) "
                      f"that were on {host} ([placement]): they come back with it")  # fmt: skip
            return
        deployment = self.store.start_deployment(
            app_name,
            kind="restore",
            from_release=app.current_release,
            to_release=app.current_release,
            formation=app.formation,
            who=f"slipway (host {host} down)",
            state="start",
            skip_hosts=sorted(down),
        )
        self.note(app_name, "info", f"starting the {count} instance(s) that were on {host} "
                  f"on {', '.join(others)} (deployment #{deployment.id})")  # fmt: skip
        self.launch(deployment)
