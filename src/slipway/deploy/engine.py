"""The deploy engine: a deployment is a state machine persisted in SQLite.

The recorded state names the step about to act; the next state is committed only when a step
has finished, and every step can run again safely. A daemon restarted mid-deployment rolls
back a deployment that had not shifted traffic yet and finishes one that had.

Steps (bluegreen): build → gates → start → health → perf → shift → drain → retire → done.
Rollback, scale and restore use the same steps without build and gates; a check runs build →
gates → start → health → perf → cleanup and never shifts traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from slipway import faults
from slipway.config.load import config_hash, load_config
from slipway.config.schema import AppConfig
from slipway.daemon.secrets import SecretKeeper
from slipway.deploy import health, placement, usage
from slipway.deploy.capacity import FleetFull
from slipway.deploy.planning import (
    next_state,
    releases_to_prune,
    undone_on_failure,
    warm_release,
)
from slipway.deploy.routing import backend_for, router_state, routing_of
from slipway.errors import (
    DISK_FULL,
    BuildError,
    DeployError,
    HostUnreachable,
    SlipwayError,
    disk_error,
)
from slipway.gates.base import Targets
from slipway.gates.runner import GateRun, gates_of
from slipway.hosts.model import Host, local_host
from slipway.hosts.transport import Transport
from slipway.paths import Home
from slipway.releases import artifact, venvs
from slipway.releases import build as builder
from slipway.router.base import Router
from slipway.router.config import SERVING_WEIGHT, Backend, RouterState, Server
from slipway.router.stats import ServerStat
from slipway.runtime.base import InstanceSpec, Observed, Runtime
from slipway.runtime.fleet import UNREACHABLE
from slipway.secrets.redact import redactor
from slipway.store.records import Deployment, Instance, Release
from slipway.store.store import Store

log = logging.getLogger("slipway.deploy")
PROBE_EVERY = 0.05
DRAIN_POLL_EVERY = 0.05  # how often the drain step looks at the old servers
LOG_LINES_ON_FAILURE = 20


async def no_stats() -> dict[str, ServerStat]:
    return {}


class SwitchRefused(DeployError):
    """An lb host refused the shift; it was undone on all of them: nothing shifted."""


@dataclass(frozen=True)
class Unrecorded:
    """A deployment that failed when its failure could not be written (a full disk): it is
    over, the user is told so, and housekeeping records it once there is room."""

    error: SlipwayError
    cause: SlipwayError  # why it could not be recorded
    at: float

    def to_dict(self) -> dict[str, Any]:
        shown = self.error.to_dict()
        note = f"not recorded yet: {self.cause.message} ({self.cause.where}); slipway retries"
        return shown | {"details": [*shown["details"], note]}


@dataclass
class Services:
    home: Home
    store: Store
    runtime: Runtime
    router: Router
    secrets: SecretKeeper
    hosts: Callable[[], list[Host]] = lambda: [local_host()]
    transport: Callable[[str], Transport] | None = None  # to ship releases to other hosts

    def host(self, name: str) -> Host:
        found = next((h for h in self.hosts() if h.name == name), None)
        if found is None:
            raise DeployError(f"host '{name}' is not in the fleet", fix="see `slipway hosts`")
        return found

    def agent(self, name: str) -> Transport:
        if self.transport is None:
            raise DeployError(f"no way to reach host '{name}'", where=f"host {name}")
        return self.transport(name)

    def home_on(self, host: Host) -> Home:
        """This home's layout on `host` (the agent's home there)."""
        return self.home if host.ssh is None else Home(Path(host.ssh.home))


class Engine:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.http = httpx.AsyncClient()
        # promote / abort / pause / resume, given by hand, for a canary in flight
        self.canary_commands: dict[int, list[tuple[str, str]]] = {}
        # processes stopping in the background, by (app, instance)
        self.stopping: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.watchers: list[asyncio.Future[None]] = []
        self.pruning: set[asyncio.Task[None]] = set()
        self.unrecorded: dict[int, Unrecorded] = {}

    def give_canary_command(self, deployment: int, command: str, who: str) -> None:
        self.canary_commands.setdefault(deployment, []).append((command, who))

    def take_canary_command(self, deployment: int) -> tuple[str, str] | None:
        queue = self.canary_commands.get(deployment)
        return queue.pop(0) if queue else None

    async def close(self) -> None:
        await self.http.aclose()

    # driving --------------------------------------------------------------------------

    async def run(self, deployment_id: int) -> None:
        dep = self.s.store.deployment(deployment_id)
        faults.crash_after_commit(dep.state)
        try:
            while dep.state != "done":
                started = time.monotonic()
                self.event(dep, dep.state, "start", STEP_TITLES.get(dep.state, dep.state))
                detail = await getattr(self, f"step_{dep.state}")(dep)
                self.event(
                    dep,
                    dep.state,
                    "ok",
                    detail or "done",
                    {"seconds": round(time.monotonic() - started, 3)},
                )
                dep = self.advance(dep)
        except SlipwayError as exc:
            await self.end_failed(dep, exc)
        except Exception as exc:  # a bug: still leave a consistent state behind
            log.exception("deployment %s crashed", deployment_id)
            await self.end_failed(
                dep,
                DeployError(
                    f"internal error: {type(exc).__name__}: {exc}",
                    fix="see the daemon log; please report this",
                ),
            )

    async def end_failed(self, dep: Deployment, error: SlipwayError) -> None:
        """fail(); when even that cannot be recorded (a full disk), the deployment still
        ends: the failure is kept in memory, shown to the user, and recorded by
        housekeeping (`retry_unrecorded`) once there is room. Nothing waits forever."""
        try:
            await self.fail(dep, error)
        except SlipwayError as cause:
            log.error("deployment %s failed and could not be recorded: %s", dep.id, cause)
            self.unrecorded[dep.id] = Unrecorded(error, cause, time.time())
            self.wake_watchers()

    async def retry_unrecorded(self) -> None:
        for deployment_id, pending in list(self.unrecorded.items()):
            try:
                await self.fail(self.s.store.deployment(deployment_id), pending.error)
            except SlipwayError:
                continue
            del self.unrecorded[deployment_id]
            log.info("deployment %s: its failure is recorded now", deployment_id)

    def advance(self, dep: Deployment) -> Deployment:
        state = next_state(dep.kind, dep.state, dep.strategy, self.steps_to_skip(dep))
        if state == "done":
            self.event(dep, "done", "ok", f"{dep.to_release} {DONE.get(dep.kind, 'is serving')}")
            self.s.store.finish_deployment(dep.id, "succeeded")
            self.wake_watchers()
        else:
            self.s.store.update_deployment(dep.id, state=state)
        faults.crash_after_commit(state)
        return self.s.store.deployment(dep.id)

    def steps_to_skip(self, dep: Deployment) -> frozenset[str]:
        if dep.kind not in ("deploy", "check"):
            return frozenset()
        release = self.s.store.release(dep.app, dep.to_release)
        if release.status != "ready":  # not built yet: decide after the build
            return frozenset()
        if release.config.gates.performance is not None:
            return frozenset()
        # Without a performance gate a check need not start anything.
        return frozenset({"perf", "start", "health"} if dep.kind == "check" else {"perf"})

    async def fail(self, dep: Deployment, error: SlipwayError) -> None:
        dep = self.s.store.deployment(dep.id)
        if dep.finished_at is not None:  # recorded meanwhile (a retry raced a restart)
            return
        self.event(dep, dep.state, "fail", error.message, error.to_dict())
        await self.drop_unbuilt(dep, error)
        if not undone_on_failure(dep.state) and not isinstance(error, SwitchRefused):
            # All traffic is already on the new release; what is left over gets retired by
            # the daemon's housekeeping. Record the failure; do not undo the switch.
            self.s.store.finish_deployment(dep.id, "failed", error.to_dict())
            self.wake_watchers()
            return
        try:
            if dep.state in ("roll", "unroll"):
                await self.unroll(dep)
            else:
                await self.undo(dep)
        except SlipwayError as undo_error:
            self.event(
                dep, "abort", "fail", f"cleanup failed: {undo_error.message}", undo_error.to_dict()
            )
        self.s.store.finish_deployment(dep.id, "failed", error.to_dict())
        self.wake_watchers()

    async def drop_unbuilt(self, dep: Deployment, error: SlipwayError) -> None:
        """A release whose build did not finish can never run: marked failed, files gone."""
        if dep.kind not in ("deploy", "check"):
            return
        release = self.s.store.release(dep.app, dep.to_release)
        if release.status == "building":
            folder = self.s.home.release_dir(dep.app, release.id)
            await asyncio.to_thread(shutil.rmtree, folder, True)
            self.s.store.update_release(
                dep.app, release.id, status="failed", error=error.message, on_disk=0
            )

    async def undo(self, dep: Deployment, step: str = "abort") -> None:
        """Before the shift: all traffic back to the stable release (a canary's rollback is
        a traffic switch: the stable instances never stopped), then stop what this
        deployment started."""
        store = self.s.store
        app = store.app(dep.app)
        stable = [
            i
            for i in store.instances(dep.app)
            if i.release == app.current_release and i.is_web and i.weight is not None
        ]
        created = [
            i
            for i in store.instances(dep.app)
            if i.id in dep.instances and i.created_at >= dep.started_at
        ]
        # one switch, stable first: the stable release takes all traffic back
        back = {i.id: SERVING_WEIGHT for i in stable if i.weight != SERVING_WEIGHT}
        back |= {i.id: 0 for i in created if i.weight}
        if back:
            before = {i.id: i.weight or 0 for i in [*stable, *created] if i.id in back}
            for name, weight in back.items():
                store.update_instance(dep.app, name, weight=weight)
            await self.s.router.set_weights(dep.app, back, before)
        created = [store.instance(dep.app, i.id) for i in created]
        # every stop is tried, even when one fails (its host unreachable: it stays
        # 'stopping', and housekeeping stops it when the host answers)
        stops = await asyncio.gather(
            *(self.retire_instance(i) for i in created), return_exceptions=True
        )
        if app.current_release:
            current = store.release(dep.app, app.current_release).config
            store.update_app(dep.app, routing=routing_of(current))
        elif not store.instances(dep.app):
            store.update_app(dep.app, routing=None)
        await self.s.router.ensure(self.router_state())
        failed = [e for e in stops if isinstance(e, BaseException)]
        for error in failed:
            if not isinstance(error, SlipwayError):
                raise error
        if failed:
            raise failed[0]
        if created:
            self.event(
                dep,
                step,
                "ok",
                f"stopped {len(created)} new instance(s); "
                f"{app.current_release or 'nothing'} keeps serving",
            )

    def event(
        self,
        dep: Deployment,
        step: str,
        status: str,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.s.store.add_event(dep.app, dep.id, step, status, message, data)
        log.info("deployment %s %s %s: %s", dep.id, step, status, message)
        self.wake_watchers()

    def wake_watchers(self) -> None:
        for waiter in self.watchers:
            if not waiter.done():
                waiter.set_result(None)
        self.watchers.clear()

    async def wait_for_change(self, timeout: float) -> None:
        """Until the next event of any deployment (or the timeout): event streams sleep here."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.watchers.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    def addresses(self) -> dict[str, str]:
        return {h.name: h.address for h in self.s.hosts()}

    def router_state(self) -> RouterState:
        """What every lb host serves (each fills in its own sockets and log target)."""
        return router_state(
            "", self.s.store.apps(), self.s.store.instances(), addresses=self.addresses()
        )

    # steps ----------------------------------------------------------------------------

    async def step_build(self, dep: Deployment) -> str:
        store, home = self.s.store, self.s.home
        release = store.release(dep.app, dep.to_release)
        dest = home.release_dir(dep.app, release.id)
        log_path = home.build_log(dep.app, release.id)
        try:
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            source = Path(release.source)
            if release.source_kind == "git":
                assert release.git_sha is not None
                copied = await asyncio.to_thread(
                    builder.snapshot_git, source, release.git_sha, dest
                )
            else:
                copied = await asyncio.to_thread(builder.snapshot_dir, source, dest, home.root)
            config = load_config(dest)
            store.update_release(
                dep.app,
                release.id,
                config=config.model_dump_json(),
                config_hash=config_hash(config),
            )
            seconds = copied + await builder.build(dest, config, log_path, release.id)
        except (OSError, shutil.Error) as exc:
            # fail() marks the release failed (drop_unbuilt), once that can be recorded
            raise build_io_error(exc, release.id, release.source, dest) from None
        store.update_release(dep.app, release.id, status="ready", build_seconds=seconds)
        return f"built {release.id} in {seconds:.1f}s"

    async def step_start(self, dep: Deployment) -> str:
        store = self.s.store
        release = store.release(dep.app, dep.to_release)
        if release.status != "ready" or not release.on_disk:
            raise DeployError(
                f"release {release.id} cannot run: it is {release.status}"
                + ("" if release.on_disk else " and no longer on disk"),
                where=f"app {dep.app}",
                fix="deploy a new release",
            )
        config = release.config
        checking = dep.kind == "check"  # a check leaves HAProxy and what it serves alone
        if dep.kind not in ("check", "warm"):  # the serving release's config routes
            store.update_app(dep.app, routing=routing_of(config))
            await self.s.router.ensure(self.router_state())
        desired = await self.plan_instances(dep, config)
        new = [i for i in desired if i.handle is None]
        await self.ship(release, {i.host for i in new})
        await asyncio.gather(*(self.spawn(i, config) for i in new))
        started = len(new)
        if not checking:
            await self.add_servers(dep.app, desired)
        reused = len(desired) - started
        return f"started {started} instance(s)" + (f", reusing {reused}" if reused else "")

    async def add_servers(self, app: str, instances: list[Instance]) -> None:
        """Web instances not in HAProxy yet enter it at weight 0 (recorded first), all at
        once: one after another, a fleet's deploy grew with its number of hosts."""
        servers = []
        for instance in instances:
            if instance.is_web and self.s.store.instance(app, instance.id).weight is None:
                self.s.store.update_instance(app, instance.id, weight=0)
                assert instance.port is not None
                address = self.s.host(instance.host).address
                servers.append(Server(instance.id, instance.port, 0, address))
        if servers:  # an app of workers only has no backend
            backend = self.backend(app)
            await gather_all(self.s.router.add_server(backend, server) for server in servers)

    async def plan_instances(self, dep: Deployment, config: AppConfig) -> list[Instance]:
        """Which instances the deployment runs: the live ones of its release it keeps, and
        new ones spread over the hosts its [placement] allows (ports chosen by each host),
        recorded in one transaction before any starts."""
        store = self.s.store
        live = [i for i in store.instances(dep.app) if i.release == dep.to_release and i.live]
        if dep.instances:  # planned before a restart: keep that plan
            planned = [i for i in live if i.id in dep.instances]
            if len(planned) == len(dep.instances):
                return planned
        hosts = placement.eligible(self.s.hosts(), config.placement, self.skipped(dep))
        try:
            kept, wanted = self.spread(dep, config, live, hosts)
        except FleetFull:
            if not await self.stop_warm(dep):
                raise
            kept, wanted = self.spread(dep, config, live, hosts)  # with the room they left
        ports = await self.ports_for([host for process, host in wanted if process == "web"])
        new = [(p, ports[h].pop(0) if p == "web" else None, h) for p, h in wanted]
        return store.plan_instances(dep.id, dep.app, dep.to_release, kept, new)

    def spread(
        self, dep: Deployment, config: AppConfig, live: list[Instance], hosts: list[Host]
    ) -> tuple[list[Instance], list[tuple[str, str]]]:
        """The live instances the deployment keeps, and (process, host) of the new ones it
        needs, placed where there is room; FleetFull if some find none."""
        names = [h.name for h in hosts]
        room = usage.room(self.s.store, hosts)
        kept: list[Instance] = []
        wanted: list[tuple[str, str]] = []
        for process, count in dep.formation.items():
            if process not in config.processes:
                continue
            existing = [i for i in live if i.process == process and i.host in names][:count]
            kept.extend(existing)
            need = usage.need_of(config, process)
            hosts_of = [i.host for i in existing]
            placed = placement.place(process, count - len(existing), names, hosts_of, room, need)
            wanted.extend((process, host) for host in placed)
        return kept, wanted

    async def stop_warm(self, dep: Deployment) -> bool:
        """Instances kept warm for an instant rollback are the first to give up their room
        when a placement finds none: every app's, except the release being deployed.
        Whether any were stopped."""
        store = self.s.store
        warm = {
            (r.app, r.id)
            for app in store.apps()
            for r in store.releases(app.name)
            if r.warm_until is not None and r.id != app.current_release
        } - {(dep.app, dep.to_release)}
        leaving = [i for i in store.instances() if i.live and (i.app, i.release) in warm]
        if not leaving:
            return False
        for app, release in warm:
            store.update_release(app, release, warm_until=None)
        self.event(dep, dep.state, "warn", f"the fleet is full: stopping {len(leaving)} warm "
                   f"instance(s) ({', '.join(i.id for i in leaving)}) to make room; instant "
                   "rollback to their release is gone")  # fmt: skip
        await asyncio.gather(*(self.retire_instance(i) for i in leaving))
        return True

    async def ports_for(self, hosts: list[str]) -> dict[str, list[int]]:
        """A free port for each entry of `hosts` (a host named twice gets two): the hosts
        asked all at once, each host one port after another (a port is free until used)."""
        taken = {(i.host, i.port) for i in self.s.store.instances()}

        async def on(host: str, count: int) -> list[int]:
            return [await self.unused_port(host, taken) for _ in range(count)]

        counts = Counter(hosts)
        found = await asyncio.gather(*(on(h, n) for h, n in counts.items()))
        return dict(zip(counts, found, strict=True))

    def skipped(self, dep: Deployment) -> frozenset[str]:
        return frozenset(dep.skip_hosts)

    async def unused_port(self, host: str, taken: set[tuple[str, int | None]]) -> int:
        """A free port on `host` that no instance there has (and add it to `taken`)."""
        address = self.s.host(host).address
        while True:
            port = await self.s.runtime.free_port(host, address)
            if (host, port) not in taken:
                taken.add((host, port))
                return port

    async def ship(self, release: Release, hosts: set[str]) -> None:
        """The release's files on every host that will run it, verified there, all hosts at
        once: built once here into an archive with a digest, the same bytes everywhere."""
        remote = [self.s.host(h) for h in sorted(hosts) if not self.s.host(h).local]
        if not remote:
            return
        folder = self.s.home.release_dir(release.app, release.folder_id)
        archive = self.s.home.app_dir(release.app) / "artifacts" / f"{release.folder_id}.tar.gz"
        digest = await asyncio.to_thread(artifact.build, folder, archive)

        async def to(host: Host) -> None:
            agent = self.s.agent(host.name)
            app, folder = release.app, release.folder_id
            if await agent.call("release.has", app=app, folder=folder, digest=digest):
                return
            path = await agent.call("release.upload_path", app=app, folder=folder)
            await agent.put(archive, str(path))
            await agent.call(
                "release.install", _timeout=300.0, app=app, folder=folder, digest=digest
            )

        await asyncio.gather(*(to(h) for h in remote))

    async def spawn(self, instance: Instance, config: AppConfig) -> None:
        release = self.s.store.release(instance.app, instance.release)
        host = self.s.host(instance.host)
        release_dir = self.s.home_on(host).release_dir(instance.app, release.folder_id)
        env = (
            builder.base_env(release_dir / ".venv")
            | config.env
            | {
                "SLIPWAY_APP": instance.app,
                "SLIPWAY_RELEASE": instance.release,
                "SLIPWAY_INSTANCE": instance.id,
                "SLIPWAY_PROCESS": instance.process,
            }
        )
        if instance.port is not None:
            env["PORT"] = str(instance.port)
            env["HOST"] = host.address  # where it listens: the lb hosts reach it there
        spec = InstanceSpec(
            instance.app,
            instance.id,
            config.processes[instance.process],
            release_dir,
            env,
            config.deploy.stop_grace,
            config.logs.max_size,
            config.logs.keep,
            secrets=self.s.secrets.values_for(release),
            user=config.run.user,  # the host's runtime switches to it where it can
        )
        handle = await self.s.runtime.start(instance, spec)
        faults.crash_at("start:spawned")
        self.s.store.update_instance(
            instance.app,
            instance.id,
            shim_pid=handle.pid,
            shim_ctime=handle.ctime,
            status="running",
        )

    async def step_health(self, dep: Deployment) -> str:
        instances = [self.s.store.instance(dep.app, i) for i in dep.instances]
        return await self.wait_healthy(dep, instances)

    async def wait_healthy(
        self, dep: Deployment, instances: list[Instance], config: AppConfig | None = None
    ) -> str:
        """Until every one of `instances` passes both checks (slipway's probe and HAProxy's),
        or the first that cannot: that one's failure, with its last log lines. `config` is
        their release's (by default the deployment's new release)."""
        config = config or self.release_config(dep)
        states = {i.id: health.Readiness() for i in instances}
        deadline = time.monotonic() + config.deploy.health_timeout
        began = time.monotonic()
        routed = config.has_web and dep.kind != "check"
        while True:
            waiting = [i for i in instances if not states[i.id].ready]
            # the lb hosts, the hosts' runtimes and the probes asked at once: a round costs
            # the slowest of them, not their sum (a warm rollback waits one round)
            stats, observed, probes = await asyncio.gather(
                self.s.router.stats(dep.app) if routed else no_stats(),
                self.s.runtime.observe(waiting),
                asyncio.gather(*(self.probe(i, config) for i in waiting)),
            )
            for instance, (ok, said) in zip(waiting, probes, strict=True):
                await self.judge_health(
                    dep, instance, observed[instance.id], ok, said, stats, states, config
                )
            if all(s.ready for s in states.values()):
                await asyncio.gather(  # booted at a lower priority
                    *(self.s.runtime.set_priority(i, 0) for i in instances)
                )
                return f"{len(instances)} instance(s) healthy in {time.monotonic() - began:.1f}s"
            if time.monotonic() > deadline:
                stuck = next(i for i in instances if not states[i.id].ready)
                raise await self.instance_failure(
                    stuck,
                    f"did not become healthy within {config.deploy.health_timeout:g}s "
                    f"(last check: {states[stuck.id].last})",
                    None,
                )
            await asyncio.sleep(PROBE_EVERY)

    async def probe(self, instance: Instance, config: AppConfig) -> tuple[bool, str]:
        if not instance.is_web or instance.port is None:
            return False, ""
        check = config.healthcheck
        address = self.s.host(instance.host).address
        try:
            return await self.s.runtime.probe(instance, address, check.path, check.timeout)
        except HostUnreachable as error:  # judged with the observation: the host is gone
            return False, f"its host does not answer: {error.message}"

    async def judge_health(
        self,
        dep: Deployment,
        instance: Instance,
        observed: Observed,
        ok: bool,
        said: str,
        stats: dict[str, ServerStat],
        states: dict[str, health.Readiness],
        config: AppConfig,
    ) -> None:
        state = states[instance.id]
        check = config.healthcheck
        routed = config.has_web and dep.kind != "check"
        if observed.state == UNREACHABLE:
            raise DeployError(
                f"host {instance.host} of instance {instance.id} does not answer "
                f"({observed.extra.get('error', 'unreachable')}); the deploy was stopped and "
                "the stable release keeps all traffic",
                where=f"host {instance.host}",
                fix="check the host with `slipway hosts`; deploy again when it is back, or "
                f"with --skip-host {instance.host}",
            )
        if observed.crashloop or not observed.alive:
            raise await self.instance_failure(
                instance,
                "is crash-looping" if observed.alive else "stopped running",
                observed.last_exit,
            )
        if not instance.is_web:
            # New code must prove it stays up; code that ran before needs only start.
            min_uptime = health.WORKER_READY_SECONDS if dep.kind == "deploy" else 0.0
            state.ready, state.last = health.worker_ready(observed, min_uptime)
            return
        state.last = said
        state.passes = state.passes + 1 if ok else 0
        in_router = stats.get(instance.id)
        if in_router is not None and not in_router.checked_ok:
            state.last += f"; HAProxy check: {in_router.status} {in_router.check_status}"
        proven = state.passes >= check.healthy_threshold or (
            ok and instance.created_at < dep.started_at  # warm: it served before
        )
        state.ready = proven and (not routed or (in_router is not None and in_router.agrees))

    async def instance_failure(
        self, instance: Instance, what: str, last_exit: dict[str, Any] | None
    ) -> DeployError:
        lines = await self.s.runtime.log_tail(instance, LOG_LINES_ON_FAILURE)
        exit_note = ""
        if last_exit:
            exit_note = (
                f" (last exit: signal {last_exit['signal']})"
                if last_exit.get("signal")
                else f" (last exit: code {last_exit.get('code')})"
            )
        return DeployError(
            f"instance {instance.id} {what}{exit_note}; the deploy was stopped and the stable "
            "release keeps all traffic",
            where=f"app {instance.app}, release {instance.release}, instance {instance.id}",
            details=[
                f"{_clock(float(str(r.get('t', 0))))} {r.get('s')}: {r.get('m')}" for r in lines
            ],
            fix=f"the last {len(lines)} log lines are above; `slipway logs --release "
            f"{instance.release}` shows more",
        )

    async def step_gates(self, dep: Deployment) -> str:
        gates = [g for g in gates_of(self.release_config(dep)) if not g.needs_running]
        if not gates:
            return "no gates before start"
        return await self.gate_run(dep).run(gates)

    async def step_perf(self, dep: Deployment) -> str:
        store = self.s.store
        candidate = [store.instance(dep.app, i) for i in dep.instances]
        current = store.app(dep.app).current_release
        stable = [
            i
            for i in store.instances(dep.app)
            if i.release == current and i.is_web and i.weight and i.id not in dep.instances
        ]
        return await self.perf(dep, candidate, stable)

    async def perf(self, dep: Deployment, candidate: list[Instance], stable: list[Instance]) -> str:
        """The gates that need the candidate running: the performance gate, the candidate's
        web instances against the stable's."""
        gates = [g for g in gates_of(self.release_config(dep)) if g.needs_running]
        where = self.addresses()
        targets = Targets(
            [f"{where[i.host]}:{i.port}" for i in candidate if i.is_web and i.port is not None],
            [f"{where[i.host]}:{i.port}" for i in stable if i.port is not None],
        )
        if not targets.candidate:
            return "no web instances to measure"
        return await self.gate_run(dep).run(gates, targets)

    async def step_cleanup(self, dep: Deployment) -> str:
        await self.undo(dep, "cleanup")
        return f"nothing left running of {dep.to_release}"

    def release_config(self, dep: Deployment) -> AppConfig:
        return self.s.store.release(dep.app, dep.to_release).config

    def gate_run(self, dep: Deployment) -> GateRun:
        release = self.s.store.release(dep.app, dep.to_release)
        config = release.config
        release_dir = self.s.home.release_dir(dep.app, release.folder_id)
        secrets = self.s.secrets.values_for(release)
        env = (
            builder.base_env(release_dir / ".venv")
            | config.env
            | secrets
            | {"SLIPWAY_APP": dep.app, "SLIPWAY_RELEASE": dep.to_release, "SLIPWAY_GATE": "1"}
        )

        def say(status: str, message: str, data: dict[str, object] | None) -> None:
            self.event(dep, dep.state, status, message, data)

        return GateRun(
            self.s.store,
            dep,
            release_dir,
            env,
            lambda gate: self.s.home.gate_log(dep.app, dep.to_release, gate),
            say,
            redactor(secrets.values()),
        )

    async def step_roll(self, dep: Deployment) -> str:
        from slipway.deploy.rolling import Roll  # it imports this module

        return await Roll(self, dep, dep.to_release, dep.formation).run()

    async def unroll(self, dep: Deployment) -> None:
        """A roll that failed rolls back the same way, a few instances at a time, to the
        release that served before (recorded first: a daemon restarted meanwhile fails the
        deployment again, which goes on undoing it)."""
        from slipway.deploy.rolling import Roll

        app = self.s.store.app(dep.app)
        if app.current_release is None:  # a first deploy: nothing to go back to
            await self.undo(dep)
            return
        if dep.state != "unroll":
            self.s.store.update_deployment(dep.id, state="unroll")
            dep = self.s.store.deployment(dep.id)
        said = await Roll(self, dep, app.current_release, app.formation).run()
        self.event(dep, "abort", "ok", said)

    async def step_canary(self, dep: Deployment) -> str:
        from slipway.deploy.canary import CanaryRun  # it imports this module

        try:
            return await CanaryRun(self, dep).run()
        finally:
            self.canary_commands.pop(dep.id, None)

    async def step_shift(self, dep: Deployment) -> str:
        store, router = self.s.store, self.s.router
        app = store.app(dep.app)
        store.set_current(dep.app, dep.to_release, dep.formation)
        wanted = set(dep.instances)
        web = [i for i in store.instances(dep.app) if i.is_web and i.weight is not None]
        incoming = [i for i in web if i.id in wanted]
        outgoing = [i for i in web if i.id not in wanted]
        before = {i.id: i.weight or 0 for i in [*outgoing, *incoming]}
        for instance in incoming:
            store.update_instance(dep.app, instance.id, weight=SERVING_WEIGHT)
        for instance in outgoing:
            store.update_instance(dep.app, instance.id, weight=0)
        faults.crash_at("shift:recorded")
        # One switch on every lb host: new first, so traffic never points at nothing; a lb
        # host that refuses undoes it on all of them (and this step fails: nothing shifted).
        weights = {i.id: SERVING_WEIGHT for i in incoming} | {i.id: 0 for i in outgoing}
        try:
            await router.set_weights(dep.app, weights, before)
        except SlipwayError as refused:
            # nothing switched anywhere: the record goes back to what serves, and the
            # deployment is undone like one that failed before its shift
            for name, weight in before.items():
                store.update_instance(dep.app, name, weight=weight)
            store.update_app(dep.app, current_release=app.current_release, formation=app.formation)
            raise SwitchRefused(
                refused.message, where=refused.where, fix=refused.fix, details=refused.details
            ) from None
        return f"100% of traffic on {dep.to_release} ({len(incoming)} instance(s))"

    async def step_drain(self, dep: Deployment) -> str:
        outgoing = {
            i.id
            for i in self.s.store.instances(dep.app)
            if i.is_web and i.weight is not None and i.id not in dep.instances
        }
        if not outgoing:
            return "nothing to drain"
        return await self.drain(dep, outgoing)

    async def drain(self, dep: Deployment, outgoing: set[str]) -> str:
        """Until the servers `outgoing` (weight 0 already) have no request in flight on any
        lb host, or the release's drain_timeout."""
        timeout = self.release_config(dep).deploy.drain_timeout
        began = time.monotonic()
        while True:
            stats = await self.s.router.stats(dep.app)
            busy = [name for name in outgoing if name in stats and not stats[name].idle]
            if not busy:
                return f"{len(outgoing)} old instance(s) drained in {time.monotonic() - began:.2f}s"
            if time.monotonic() > began + timeout:
                return (
                    f"drain timeout ({timeout:g}s) with requests still "
                    f"in flight on {', '.join(sorted(busy))}"
                )
            await asyncio.sleep(DRAIN_POLL_EVERY)

    async def step_retire(self, dep: Deployment) -> str:
        store = self.s.store
        config = store.release(dep.app, dep.to_release).config
        keep_warm = config.deploy.keep_warm
        if (
            dep.kind in ("deploy", "rollback", "config")
            and dep.strategy != "rolling"  # a roll keeps nothing of the old release
            and keep_warm > 0
            and dep.from_release not in (None, dep.to_release)
        ):
            warm: str | None = dep.from_release
            until: float | None = time.time() + keep_warm
        elif dep.strategy == "rolling":  # the roll took the warm instances out too: a restart
            warm, until = None, None  # must not start them again ("warm again")
        else:  # scale, restore: the instant-rollback window that was open stays open
            kept = warm_release(store.releases(dep.app), dep.to_release, time.time())
            warm, until = (kept.id, kept.warm_until) if kept else (None, None)
        wanted = set(dep.instances)
        leaving = [
            i
            for i in store.instances(dep.app)
            if i.live and i.id not in wanted and not (i.release == warm and i.is_web)
        ]
        await asyncio.gather(*(self.retire_instance(i, wait=False) for i in leaving))
        for release in store.releases(dep.app):
            if release.id == warm:
                store.update_release(dep.app, release.id, warm_until=until)
            elif release.warm_until is not None:
                store.update_release(dep.app, release.id, warm_until=None)
        self.prune(dep.app, config.deploy.keep_releases, {dep.to_release, warm or ""})
        note = f"stopping {len(leaving)} old instance(s)"
        if warm and until and any(i.release == warm for i in store.instances(dep.app)):
            note += f"; {warm} stays warm until {_clock(until)} for instant rollback"
        return note

    async def retire_instance(self, instance: Instance, wait: bool = True) -> None:
        """Out of HAProxy (drain, maint, delete), then stopped with its grace period; with
        wait=False both go on in the background: the instance already gets no traffic (a
        worker may take its whole grace period to finish a job; a deployment need not wait)."""
        self.s.store.update_instance(instance.app, instance.id, status="stopping")
        if wait:
            await self.stop_process(instance)
        else:
            self.stop_in_background(instance)

    def stop_in_background(self, instance: Instance) -> None:
        key = (instance.app, instance.id)
        if key not in self.stopping:
            task = asyncio.create_task(self.stop_process(instance))
            self.stopping[key] = task
            task.add_done_callback(lambda done: self._stopped(key, done))

    def _stopped(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        """A stop that failed (its host unreachable) is tried again by housekeeping while
        the instance stays 'stopping': said once per try, without a traceback."""
        self.stopping.pop(key, None)
        if not task.cancelled() and isinstance(task.exception(), SlipwayError):
            log.warning("%s/%s not stopped yet: %s", *key, task.exception())

    async def stop_process(self, instance: Instance) -> None:
        """If the daemon dies meanwhile, the instance stays 'stopping': the restarted daemon
        drops its server from HAProxy (it is no longer a live one) and stops it."""
        store = self.s.store
        if instance.weight is not None:
            try:
                await self.s.router.drain(instance.app, instance.id)
                await self.s.router.remove_server(instance.app, instance.id)
            except SlipwayError as error:  # an lb host missed it: synced before its next use
                log.warning("%s/%s left the lb tier partly: %s", instance.app, instance.id, error)
            store.update_instance(instance.app, instance.id, weight=None)
        grace = self.grace_for(instance)
        await self.s.runtime.stop(instance, grace)
        self.s.store.update_instance(
            instance.app, instance.id, status="stopped", stopped_at=time.time()
        )

    def grace_for(self, instance: Instance) -> float:
        try:
            return self.s.store.release(instance.app, instance.release).config.deploy.stop_grace
        except SlipwayError:
            return 10.0

    def prune(self, app: str, keep: int, protected: set[str]) -> None:
        """Old releases leave the disk; their files are deleted in a thread meanwhile, then
        the virtualenvs no release links to any more."""
        store = self.s.store
        folders = []
        for release in releases_to_prune(store.releases(app), keep, protected):
            if any(i.release == release.id for i in store.instances(app)):
                continue
            store.update_release(app, release.id, on_disk=0)
            users = [
                r for r in store.releases(app) if r.on_disk and r.folder_id == release.folder_id
            ]
            if users:  # a release made by a secrets change runs these files
                continue
            folders.append(self.s.home.release_dir(app, release.folder_id))
        if folders:
            task = asyncio.create_task(
                asyncio.to_thread(remove_releases, folders, self.s.home.app_dir(app))
            )
            self.pruning.add(task)
            task.add_done_callback(self.pruning.discard)

    def backend(self, app: str) -> Backend:
        routing = self.s.store.app(app).routing
        if routing is None:
            raise DeployError("this app has no web process", where=f"app {app}")
        return backend_for(app, routing, self.s.store.instances(app))


def remove_releases(folders: list[Path], app_dir: Path) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
    venvs.prune(app_dir)


DONE = {
    "check": "checked; nothing was deployed",
    "warm": "is warm again, for an instant rollback",
}
STEP_TITLES = {
    "build": "building the release",
    "gates": "running the gates",
    "perf": "measuring the candidate against the stable release",
    "cleanup": "stopping what the check started",
    "start": "starting instances",
    "health": "waiting for health checks",
    "canary": "judging the canary on live traffic",
    "shift": "shifting traffic",
    "drain": "draining the old release",
    "retire": "retiring the old release",
}


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def build_io_error(
    exc: OSError | shutil.Error, release: str, source: str, dest: Path
) -> SlipwayError:
    what = f"could not build {release}"
    if exc.errno in DISK_FULL or "No space left on device" in str(exc):  # shutil.Error: a list
        return disk_error(OSError(errno.ENOSPC, "No space left on device"), dest, what)
    return BuildError(
        f"{what}: {exc}",
        where=f"release {release} from {source}",
        fix="check that the folder is readable and the disk has room",
    )


async def gather_all(calls: Iterable[Awaitable[None]]) -> None:
    """Every call to its end (none left running behind the caller's back), then the first
    failure, if any."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
