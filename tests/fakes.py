"""In-memory fakes of the deploy engine's seams, for unit tests. No process, socket or sleep.

FakeRuntime    the Runtime protocol (runtime/base.py): instances per host, in memory. Per
               instance, release or process (`script`, optionally on one host): a start that
               fails, a crash loop from the first look or after some, an exit, probes that
               fail (for a while or for ever) or are slow (they time out), its log lines.
               Per host (`cut`): every call raises HostUnreachable, and `observe` answers
               Observed(alive=False, state="unreachable") as FleetRuntime does. Ports are
               handed out per host (20000, 20001, … on each). Every call is in `calls`.
FakeRouter     the Router protocol (router/base.py): the lb tier as several lb hosts, each
               with its own servers and weights per app. Every change is in `log`, in
               order. A change can be refused by one lb host (`refuse`): like TierRouter, a
               switch is then undone on the lb hosts that took it and the error names the
               refusing host. `stats` reports a server UP/L7OK once added, or the answers
               scripted for it (`script_check`); `busy` keeps servers with connections.
FakeTransport  the Transport protocol (hosts/transport.py): one host's agent. It answers the
               calls that ship a release (release.has/upload_path/install), records every
               call, and raises a scripted error for a method (`refuse`) or HostUnreachable
               for all of them (`cut`). Used as TierRouter's members too.
FakeClock      simulated time, patched in as the engine's (and deploy.health's) `time`
               module: it moves only when a fake says so (each `observe` is one health
               round of `FakeRuntime.round_seconds`; a slow probe takes its seconds).

Scripts name instances or servers by a key that is an id or its start up to a "-": "r2"
is every instance of release r2, "r2-web" its web instances, "r2-web-5" one of them. The
longest key that matches wins (one given with a host first).
"""

from __future__ import annotations

import asyncio
import time as real_time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from slipway.errors import HostUnreachable, RouterError, SlipwayError
from slipway.router.config import Backend, RouterState, Server
from slipway.router.stats import CacheCounters, ServerStat
from slipway.router.tier import merge_stats
from slipway.runtime.base import Handle, InstanceSpec, Observed
from slipway.runtime.fleet import UNREACHABLE
from slipway.store.records import Instance

FIRST_PORT = 20000


def matches(key: str, name: str) -> bool:
    """`key` names `name`: the same, or its start up to a "-" ("r2" names "r2-web-5")."""
    return name == key or name.startswith(key + "-")


async def _io() -> None:
    """Where a real call would wait for the network: let other tasks run."""
    await asyncio.sleep(0)


def _unreachable(host: str) -> HostUnreachable:
    return HostUnreachable(f"host {host} does not answer (cut in the test)", where=f"host {host}")


# time ----------------------------------------------------------------------------------


class FakeClock:
    """Stands in for the `time` module of the code under test. `monotonic()` starts at 1000
    and moves only by `advance`; `time()` is the real time at creation plus the same
    advance; `strftime` and `localtime` are the real ones."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.epoch = real_time.time()

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def time(self) -> float:
        return self.epoch + self.elapsed

    strftime = staticmethod(real_time.strftime)
    localtime = staticmethod(real_time.localtime)


# runtime -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How a FakeRuntime instance behaves. The default: starts, stays up, and answers every
    probe at once with HTTP 200."""

    start_error: SlipwayError | None = None  # start() raises this: nothing runs
    crash_after: int | None = None  # looks (observe) it survives, then crash-loops; 0: at once
    exit_after: int | None = None  # looks it survives, then its supervisor is gone
    failing_probes: int = 0  # probes answered HTTP 503 before the first 200
    never_healthy: bool = False  # every probe answered HTTP 503
    probe_seconds: float = 0.0  # simulated time a probe takes; >= its timeout: it times out
    log: tuple[str, ...] = ()  # its log lines, oldest first (log_tail)
    exit_code: int = 1  # of each crash


CRASH_LOOP = Behaviour(crash_after=0, log=("Traceback (most recent call last):", "boom"))
NEVER_HEALTHY = Behaviour(never_healthy=True)


@dataclass
class FakeInstance:
    """One instance started on a FakeRuntime."""

    instance: Instance  # as given to start()
    spec: InstanceSpec
    handle: Handle
    behaviour: Behaviour
    started_at: float  # FakeClock.time()
    looks: int = 0  # observations so far
    probes: int = 0
    nice: int = 10  # booted at a lower priority, as the shim does
    stopped_with: float | None = None  # the grace period it was stopped with

    @property
    def host(self) -> str:
        return self.instance.host

    @property
    def running(self) -> bool:
        return self.stopped_with is None

    def crashed(self) -> bool:
        b = self.behaviour
        return b.crash_after is not None and self.looks > b.crash_after

    def exited(self) -> bool:
        b = self.behaviour
        return b.exit_after is not None and self.looks > b.exit_after


class FakeRuntime:
    """The Runtime protocol in memory: see the module's docstring."""

    def __init__(self, clock: FakeClock | None = None, round_seconds: float = 0.5) -> None:
        self.clock = clock or FakeClock()
        self.round_seconds = round_seconds  # simulated time each observe() takes
        self.instances: dict[tuple[str, str], FakeInstance] = {}  # (app, id): every one started
        self.calls: list[tuple[Any, ...]] = []  # (method, host, instance or detail), in order
        self.cut_hosts: set[str] = set()
        self.scripts: list[tuple[str, str | None, Behaviour]] = []
        self.next_port: dict[str, int] = {}
        self.next_pid = 4000
        self.cache: dict[tuple[str, str], Observed] = {}
        # called with each instance as start() begins, before it runs (to look at the store)
        self.on_start: list[Callable[[Instance], None]] = []

    # scripting ---------------------------------------------------------------------------

    def script(self, key: str, behaviour: Behaviour, host: str | None = None) -> None:
        """Instances `key` names (on `host`, if given) behave so from their start."""
        self.scripts.append((key, host, behaviour))

    def cut(self, host: str) -> None:
        """The host stops answering: every call raises HostUnreachable."""
        self.cut_hosts.add(host)

    def reconnect(self, host: str) -> None:
        self.cut_hosts.discard(host)

    def behaviour_of(self, instance: Instance) -> Behaviour:
        found = [
            (host is not None, len(key), behaviour)
            for key, host, behaviour in self.scripts
            if matches(key, instance.id) and host in (None, instance.host)
        ]
        return max(found, key=lambda f: (f[0], f[1]))[2] if found else Behaviour()

    # what happened -----------------------------------------------------------------------

    def started(self) -> list[str]:
        """Ids of the instances started, in order."""
        return [c[2] for c in self.calls if c[0] == "start"]

    def stopped(self) -> list[str]:
        return [c[2] for c in self.calls if c[0] == "stop"]

    def running(self, host: str | None = None) -> list[FakeInstance]:
        return [f for f in self.instances.values() if f.running and host in (None, f.host)]

    def get(self, instance: Instance | str, app: str | None = None) -> FakeInstance:
        if isinstance(instance, str):
            found = [
                f for (a, i), f in self.instances.items() if i == instance and app in (None, a)
            ]
            assert len(found) == 1, f"instance {instance} was started {len(found)} times"
            return found[0]
        return self.instances[(instance.app, instance.id)]

    def _reach(self, host: str) -> None:
        if host in self.cut_hosts:
            raise _unreachable(host)

    # the protocol ------------------------------------------------------------------------

    async def start(self, instance: Instance, spec: InstanceSpec) -> Handle:
        for hook in self.on_start:
            hook(instance)
        self.calls.append(("start", instance.host, instance.id))
        await _io()
        self._reach(instance.host)
        behaviour = self.behaviour_of(instance)
        if behaviour.start_error is not None:
            raise behaviour.start_error
        self.next_pid += 1
        handle = Handle(self.next_pid, float(self.next_pid))
        self.instances[(instance.app, instance.id)] = FakeInstance(
            instance, spec, handle, behaviour, self.clock.time()
        )
        return handle

    async def observe(self, instances: Sequence[Instance]) -> dict[str, Observed]:
        self.calls.append(("observe", None, tuple(i.id for i in instances)))
        await _io()
        self.clock.advance(self.round_seconds)
        seen = {i.id: self._look(i) for i in instances}
        for instance in instances:
            self.cache[(instance.app, instance.id)] = seen[instance.id]
        return seen

    def _look(self, instance: Instance) -> Observed:
        if instance.host in self.cut_hosts:
            error = _unreachable(instance.host)
            return Observed(alive=False, state=UNREACHABLE, extra={"error": error.message})
        fake = self.instances.get((instance.app, instance.id))
        if fake is None:
            return Observed(alive=False, state="gone")
        if not fake.running:
            return Observed(alive=False, state="stopped")
        fake.looks += 1
        last_exit = {"code": fake.behaviour.exit_code, "signal": None, "at": self.clock.time()}
        if fake.exited():
            return Observed(alive=False, state="gone", last_exit=last_exit)
        if fake.crashed():
            return Observed(
                alive=True, state="crashloop", restarts=5, crashloop=True, last_exit=last_exit
            )
        return Observed(
            alive=True, state="running", child_pid=fake.handle.pid + 1,
            child_started=fake.started_at,
        )  # fmt: skip

    async def observe_one(self, instance: Instance) -> Observed:
        return (await self.observe([instance]))[instance.id]

    def cached(self, instance: Instance) -> Observed:
        return self.cache.get((instance.app, instance.id)) or Observed(False, "unknown")

    async def stop(self, instance: Instance, grace: float) -> None:
        self.calls.append(("stop", instance.host, instance.id))
        await _io()
        self._reach(instance.host)
        fake = self.instances.get((instance.app, instance.id))
        if fake is not None and fake.running:
            fake.stopped_with = grace

    async def set_priority(self, instance: Instance, nice: int) -> None:
        self.calls.append(("set_priority", instance.host, instance.id, nice))
        await _io()
        self._reach(instance.host)
        fake = self.instances.get((instance.app, instance.id))
        if fake is not None:
            fake.nice = nice

    async def restart_process(self, instance: Instance) -> bool:
        self.calls.append(("restart_process", instance.host, instance.id))
        await _io()
        self._reach(instance.host)
        fake = self.instances.get((instance.app, instance.id))
        return fake is not None and fake.running

    async def log_tail(self, instance: Instance, lines: int) -> list[dict[str, Any]]:
        """Its scripted log lines, as the supervisor's log records; [] when its host does
        not answer (as FleetRuntime)."""
        self.calls.append(("log_tail", instance.host, instance.id, lines))
        await _io()
        fake = self.instances.get((instance.app, instance.id))
        if instance.host in self.cut_hosts or fake is None:
            return []
        text = fake.behaviour.log[-lines:] if lines else ()
        return [{"t": fake.started_at, "s": "stderr", "m": line} for line in text]

    async def kill_orphan(self, instance: Instance) -> list[int]:
        self.calls.append(("kill_orphan", instance.host, instance.id))
        await _io()
        self._reach(instance.host)
        return []

    async def supervised(self, host: str) -> list[tuple[str, str, Handle]]:
        self.calls.append(("supervised", host, None))
        await _io()
        self._reach(host)
        return [(f.instance.app, f.instance.id, f.handle) for f in self.running(host)]

    async def probe(
        self, instance: Instance, address: str, path: str, timeout: float
    ) -> tuple[bool, str]:
        self.calls.append(("probe", instance.host, instance.id, address))
        await _io()
        self._reach(instance.host)
        fake = self.instances.get((instance.app, instance.id))
        if fake is None or not fake.running or fake.crashed() or fake.exited():
            return False, f"GET {path} failed: ConnectError All connection attempts failed"
        fake.probes += 1
        b = fake.behaviour
        if b.probe_seconds >= timeout:
            self.clock.advance(timeout)
            return False, f"GET {path} timed out after {timeout:g}s"
        self.clock.advance(b.probe_seconds)
        if b.never_healthy or fake.probes <= b.failing_probes:
            return False, f"GET {path} answered HTTP 503"
        return True, f"GET {path} answered HTTP 200"

    async def free_port(self, host: str, address: str) -> int:
        self.calls.append(("free_port", host, address))
        await _io()
        self._reach(host)
        port = self.next_port.get(host, FIRST_PORT)
        self.next_port[host] = port + 1
        return port


# router --------------------------------------------------------------------------------


@dataclass
class FakeServer:
    """A server on one lb host's HAProxy."""

    address: str
    port: int
    weight: int
    state: str = "ready"  # ready | drain | maint (ready again when its weight is set)
    health: bool | None = None  # forced by set_health; None: its checks decide


@dataclass(frozen=True)
class Change:
    """One call that changed (or tried to change) the lb tier, as FakeRouter logs it."""

    # ensure | add_server | set_weight | set_weights | set_health | drain | remove_server |
    # sync | stop | undo (of a refused change, on the lb hosts that took it)
    op: str
    app: str = ""
    server: str = ""  # add_server, set_health, drain, remove_server
    weights: tuple[tuple[str, int], ...] = ()  # set_weight(s), undo, add_server: in order
    refused_by: str | None = None  # the lb host that refused it: nothing changed
    hosts: tuple[str, ...] = ()  # undo: the lb hosts it was undone on


class FakeRouter:
    """The Router protocol in memory: see the module's docstring."""

    def __init__(self, lb_hosts: Sequence[str] = ("local",)) -> None:
        self.lb_hosts = tuple(lb_hosts)
        # lb host -> app -> server name -> server
        self.members: dict[str, dict[str, dict[str, FakeServer]]] = {h: {} for h in lb_hosts}
        self.log: list[Change] = []
        self.state: RouterState | None = None  # the latest ensure()
        self.structure: dict[str, Backend] = {}  # app -> its backend without servers
        self.refusals: list[tuple[str, str, SlipwayError, int]] = []  # op, lb host, error, times
        self.cut_hosts: set[str] = set()
        self.checks: list[tuple[str, list[tuple[str, str]]]] = []  # key, (status, check) looks
        self.looks: dict[tuple[str, str], int] = {}  # (app, server): stats looks since added
        self.busy_for: dict[str, int] = {}  # key -> stats calls it still has connections
        self.stats_calls = 0
        self.stopped = False

    # scripting ---------------------------------------------------------------------------

    def refuse(self, op: str, on: str, error: SlipwayError | None = None, times: int = 1) -> None:
        """The next `times` calls of `op` (a method name) are refused by lb host `on`."""
        error = error or RouterError(f"HAProxy refused {op} (scripted)", where=f"lb host {on}")
        self.refusals.append((op, on, error, times))

    def cut(self, host: str) -> None:
        """The lb host stops answering: it refuses every change with HostUnreachable and
        `stats` leaves it out (as TierRouter does)."""
        self.cut_hosts.add(host)

    def script_check(self, key: str, *looks: tuple[str, str]) -> None:
        """The servers `key` names report these (status, check_status) pairs, one per stats
        call from when each is added, then UP/L7OK."""
        self.checks.append((key, list(looks)))

    def busy(self, key: str, polls: int) -> None:
        """The servers `key` names have a connection for the next `polls` stats calls."""
        self.busy_for[key] = polls

    # what happened -----------------------------------------------------------------------

    def weights(self, app: str) -> dict[str, int]:
        """Each server's weight, the same on every lb host (AssertionError if not: a
        half-switched tier)."""
        views = {h: self.weights_on(h, app) for h in self.lb_hosts}
        first = views[self.lb_hosts[0]]
        assert all(v == first for v in views.values()), f"lb hosts disagree: {views}"
        return first

    def weights_on(self, host: str, app: str) -> dict[str, int]:
        return {name: s.weight for name, s in self.members[host].get(app, {}).items()}

    def servers(self, app: str, host: str | None = None) -> dict[str, FakeServer]:
        return dict(self.members[host or self.lb_hosts[0]].get(app, {}))

    def ops(self, app: str | None = None) -> list[str]:
        return [c.op for c in self.log if app in (None, c.app)]

    # how a change reaches the lb hosts ---------------------------------------------------

    def _refused(self, op: str, host: str) -> SlipwayError | None:
        if host in self.cut_hosts:
            return _unreachable(host)
        for index, (name, on, error, times) in enumerate(self.refusals):
            if name == op and on == host:
                if times <= 1:
                    del self.refusals[index]
                else:
                    self.refusals[index] = (name, on, error, times - 1)
                return error
        return None

    def _all_or_nothing(
        self,
        change: Change,
        apply: Callable[[str], None],
        undo: Callable[[str], None] | None,
        undone: tuple[tuple[str, int], ...] = (),
    ) -> None:
        """As TierRouter: each lb host applies it; if one refuses, those that took it undo it
        (with nothing to go back to, `undo` None, they keep it, as TierRouter's do) and the
        error names the refusing host."""
        refused = {
            h: e
            for h in self.lb_hosts
            if (e := self._refused(change.op, h) or self._missing(h, change)) is not None
        }
        took = [h for h in self.lb_hosts if h not in refused]
        for host in took:
            apply(host)
        if not refused:
            self.log.append(change)
            return
        host, error = next(iter(refused.items()))
        self.log.append(replace(change, refused_by=host))
        if undo is not None:
            for member in took:
                undo(member)
            self.log.append(Change("undo", change.app, weights=undone, hosts=tuple(took)))
        raise RouterError(
            f"{change.op} failed on lb host {host} ({error.message}); it was undone on the "
            f"{len(took)} other lb host(s): every lb host serves as before",
            where=f"lb host {host}",
            fix=error.fix or "check the host with `slipway hosts`, then retry",
        )

    def _everywhere(self, change: Change, apply: Callable[[str], None]) -> None:
        """As TierRouter: every lb host that answers applies it; the first refusal is raised."""
        refused = {h: e for h in self.lb_hosts if (e := self._refused(change.op, h)) is not None}
        for host in self.lb_hosts:
            if host not in refused:
                apply(host)
        if not refused:
            self.log.append(change)
            return
        host, error = next(iter(refused.items()))
        self.log.append(replace(change, refused_by=host))
        if isinstance(error, HostUnreachable):
            raise error
        raise type(error)(f"lb host {host}: {error.message}", where=error.where, fix=error.fix)

    def _missing(self, host: str, change: Change) -> SlipwayError | None:
        """As HAProxy: a weight above 0 for a server it does not have is refused (weight 0
        for one that is gone is done)."""
        if change.op not in ("set_weight", "set_weights"):
            return None
        servers = self.members[host].get(change.app, {})
        missing = [n for n, w in change.weights if w > 0 and n not in servers]
        if missing:
            return RouterError(f"HAProxy has no server {missing[0]}", where=f"lb host {host}")
        return None

    def _set(self, host: str, app: str, weights: dict[str, int]) -> None:
        servers = self.members[host].get(app, {})
        for name, weight in weights.items():
            server = servers.get(name)
            if server is not None:
                server.state, server.weight = "ready", weight

    # the protocol ------------------------------------------------------------------------

    async def running(self) -> bool:
        await _io()
        return not self.stopped and self.state is not None

    async def ensure(self, state: RouterState) -> bool:
        """Records the state; an app whose structure (its backend without servers) is new or
        changed is reloaded with the state's servers, as HAProxy reloads from its file."""
        await _io()
        self.state, self.stopped = state, False
        wanted = {b.app: b for b in state.backends}
        changed = {
            app for app, backend in wanted.items() if self.structure.get(app) != _structure(backend)
        } | (self.structure.keys() - wanted.keys())

        def apply(host: str) -> None:
            for app in changed:
                self.members[host].pop(app, None)
                if app in wanted:
                    self.members[host][app] = {
                        s.name: FakeServer(s.address, s.port, s.weight) for s in wanted[app].servers
                    }

        self._everywhere(Change("ensure"), apply)
        self.structure = {app: _structure(b) for app, b in wanted.items()}
        return bool(changed)

    async def add_server(self, backend: Backend, server: Server) -> None:
        await _io()
        app, name = backend.app, server.name

        def add(host: str) -> None:
            self.members[host].setdefault(app, {}).setdefault(
                name, FakeServer(server.address, server.port, server.weight)
            )
            self.looks[(app, name)] = 0

        def undo(host: str) -> None:
            self.members[host].get(app, {}).pop(name, None)

        change = Change("add_server", app, name, ((name, server.weight),))
        self._all_or_nothing(change, add, undo)

    async def set_weight(self, app: str, name: str, weight: int) -> None:
        """Like TierRouter.set_weight: a switch with nothing to go back to."""
        await _io()
        change = Change("set_weight", app, name, ((name, weight),))
        self._all_or_nothing(change, lambda h: self._set(h, app, {name: weight}), None)

    async def set_weights(self, app: str, weights: dict[str, int], before: dict[str, int]) -> None:
        await _io()
        change = Change("set_weights", app, weights=tuple(weights.items()))
        self._all_or_nothing(
            change,
            lambda h: self._set(h, app, weights),
            (lambda h: self._set(h, app, before)) if before else None,
            tuple(before.items()),
        )

    async def set_health(self, app: str, name: str, up: bool) -> None:
        await _io()

        def apply(host: str) -> None:
            server = self.members[host].get(app, {}).get(name)
            if server is not None:
                server.health = up

        self._everywhere(Change("set_health", app, name), apply)

    async def drain(self, app: str, name: str) -> None:
        await _io()

        def apply(host: str) -> None:
            server = self.members[host].get(app, {}).get(name)
            if server is not None:
                server.state = "drain"

        self._everywhere(Change("drain", app, name), apply)

    async def remove_server(self, app: str, name: str, timeout: float = 20.0) -> None:
        await _io()

        def apply(host: str) -> None:
            self.members[host].get(app, {}).pop(name, None)

        self._everywhere(Change("remove_server", app, name), apply)

    async def sync(self, backend: Backend) -> None:
        await _io()

        def apply(host: str) -> None:
            self.members[host][backend.app] = {
                s.name: FakeServer(s.address, s.port, s.weight) for s in backend.servers
            }

        self._everywhere(Change("sync", backend.app), apply)

    async def stats(self, app: str) -> dict[str, ServerStat]:
        """Each server as the tier sees it (merged over the lb hosts that answer, as
        TierRouter does)."""
        await _io()
        self.stats_calls += 1
        names = {n for h in self.lb_hosts for n in self.members[h].get(app, {})}
        looks = {n: self._check(app, n) for n in names}
        busy = {n for n in names if self._busy(n)}
        for key in list(self.busy_for):
            self.busy_for[key] -= 1
            if self.busy_for[key] <= 0:
                del self.busy_for[key]
        views = [
            {
                name: _stat(name, server, looks[name], name in busy)
                for name, server in self.members[h].get(app, {}).items()
            }
            for h in self.lb_hosts
            if h not in self.cut_hosts
        ]
        if not views:
            raise RouterError("no HAProxy of the lb tier answers")
        return merge_stats(views)

    def _check(self, app: str, name: str) -> tuple[str, str]:
        seen = self.looks.get((app, name), 0)
        self.looks[(app, name)] = seen + 1
        scripts = [(len(k), looks) for k, looks in self.checks if matches(k, name)]
        if scripts:
            looks = max(scripts, key=lambda s: s[0])[1]
            if seen < len(looks):
                return looks[seen]
        return "UP", "L7OK"

    def _busy(self, name: str) -> bool:
        return any(matches(key, name) for key in self.busy_for)

    async def purge_cache(self, app: str) -> bool:
        await _io()
        self._everywhere(Change("purge_cache", app), lambda host: None)
        backend = self.structure.get(app)
        return backend is not None and backend.edge.cache is not None

    async def cache_counters(self, app: str) -> CacheCounters:
        await _io()
        return CacheCounters()

    async def stop(self, timeout: float = 30.0) -> None:
        await _io()
        self.stopped = True
        self.log.append(Change("stop"))


def _structure(backend: Backend) -> Backend:
    return replace(backend, servers=())


def _stat(name: str, server: FakeServer, look: tuple[str, str], busy: bool) -> ServerStat:
    status, check = look
    if server.state == "maint":
        status = "MAINT"
    elif server.state == "drain":
        status = "DRAIN"
    elif server.health is not None:
        status = "UP" if server.health else "DOWN"
    return ServerStat(
        name=name,
        status=status,
        weight=server.weight,
        scur=1 if busy else 0,
        qcur=0,
        check_status=check,
        req_tot=0,
    )


# transport -----------------------------------------------------------------------------


@dataclass
class FakeTransport:
    """One host's agent, in memory: see the module's docstring. `answers` maps a method to
    a function of its parameters giving the answer (default: None)."""

    host: str
    answers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    puts: list[tuple[Path, str]] = field(default_factory=list)
    installed: set[tuple[str, str, str]] = field(default_factory=set)  # (app, folder, digest)
    refusals: dict[str, SlipwayError] = field(default_factory=dict)
    is_cut: bool = False

    def refuse(self, method: str, error: SlipwayError) -> None:
        self.refusals[method] = error

    def cut(self) -> None:
        self.is_cut = True

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    async def call(self, method: str, _timeout: float = 30.0, **params: Any) -> Any:
        self.calls.append((method, params))
        await _io()
        if self.is_cut:
            raise _unreachable(self.host)
        if method in self.refusals:
            raise self.refusals[method]
        if method in self.answers:
            return self.answers[method](**params)
        if method == "release.has":
            return (params["app"], params["folder"], params["digest"]) in self.installed
        if method == "release.upload_path":
            return f"/fake/{self.host}/uploads/{params['app']}-{params['folder']}.tar.gz"
        if method == "release.install":
            self.installed.add((params["app"], params["folder"], params["digest"]))
        return None

    async def put(self, local: Path, remote: str, timeout: float = 300.0) -> None:
        await _io()
        if self.is_cut:
            raise _unreachable(self.host)
        assert local.is_file(), f"{local} was not built before it was shipped"
        self.puts.append((local, remote))

    async def close(self) -> None:
        return None


# the control plane's replica --------------------------------------------------------------


@dataclass
class FakeReplica:
    """The replica host's folder, in memory (slipway.control.replica.ReplicaStore). `cut`:
    every call fails as an unreachable host's would."""

    where: str = "fake replica"
    files: dict[str, bytes] = field(default_factory=dict)
    is_cut: bool = False
    puts: list[str] = field(default_factory=list)

    def _check(self) -> None:
        if self.is_cut:
            from slipway.control.sealed import ReplicaError

            raise ReplicaError(f"{self.where} does not answer")

    async def list(self, folder: str = "") -> list[str]:
        await _io()
        self._check()
        prefix = f"{folder}/" if folder else ""
        return sorted(
            n[len(prefix) :]
            for n in self.files
            if n.startswith(prefix) and "/" not in n[len(prefix) :]
        )

    async def put(self, local: Path, name: str) -> None:
        await _io()
        self._check()
        self.files[name] = local.read_bytes()
        self.puts.append(name)

    async def get(self, name: str, local: Path) -> None:
        await _io()
        self._check()
        if name not in self.files:
            from slipway.control.sealed import ReplicaError

            raise ReplicaError(f"the replica has no {name}")
        local.write_bytes(self.files[name])

    async def remove(self, name: str) -> None:
        await _io()
        self._check()
        self.files.pop(name, None)
