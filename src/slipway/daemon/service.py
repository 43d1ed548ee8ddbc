"""What the daemon can do, independent of HTTP: the API layer only parses and calls this."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from slipway import __version__
from slipway.agent.core import Agent
from slipway.alerts.engine import Alerting
from slipway.api import schemas
from slipway.audit.denials import FoldedDenials
from slipway.audit.log import AuditLog
from slipway.auth.guard import FailureLimiter
from slipway.config.load import config_hash, load_config, parse_config
from slipway.config.schema import AppConfig
from slipway.daemon import db_ops, replica_ops
from slipway.daemon.autoscaler import Autoscaler
from slipway.daemon.host_ops import agent_zipapp, start_command
from slipway.daemon.host_watch import HostWatch
from slipway.daemon.secrets import SecretKeeper
from slipway.daemon.watch import InstanceWatch
from slipway.deploy import placement
from slipway.deploy.engine import Engine, Services
from slipway.deploy.planning import (
    first_step,
    plan_formation,
    rollback_target,
    rolled_or_not,
    undone_on_failure,
)
from slipway.deploy.routing import router_state, routing_of
from slipway.errors import DeployError, NotFound, SlipwayError, StorageError, UsageError
from slipway.hosts.fleet import Fleet, RemoteFactory
from slipway.hosts.model import LOCAL, Host
from slipway.hosts.ssh import SshTransport
from slipway.hosts.transport import Transport
from slipway.metrics.hub import TrafficHub
from slipway.paths import Home
from slipway.releases.build import git, resolve_git_rev, working_tree_sha
from slipway.router.certs import check_tls_files
from slipway.router.config import check_listeners
from slipway.router.stats import ServerStat
from slipway.router.tier import TierRouter
from slipway.runtime import users
from slipway.runtime.fleet import FleetRuntime
from slipway.store import autoscale as autoscale_store
from slipway.store import hosts as stored
from slipway.store import security, traffic
from slipway.store.records import (
    App,
    Deployment,
    GateRecord,
    Instance,
    Release,
    VerdictRecord,
)
from slipway.store.store import Store

log = logging.getLogger("slipway.daemon")


class Service:
    def __init__(
        self, home: Home, haproxy_binary: str, remote: RemoteFactory | None = None
    ) -> None:
        self.home = home
        self.store = Store(home.db)
        # The composition root: this host's agent in this process, the fleet's transports,
        # and the runtime and lb tier that reach every host through them.
        self.agent = Agent(home, haproxy_binary)
        self.fleet = Fleet(self.store, self.agent, remote or self.reach)
        self.runtime = FleetRuntime(self.fleet.transport)
        self.router = TierRouter(self.fleet.lb_members, home.root / "certs", self.excused_hosts)
        self.agent_build: str | None = None  # the digest of the agent zipapp remote hosts run
        self.secrets = SecretKeeper(home.secrets_key, self.store)
        self.audit = AuditLog(home.root)
        self.denials = FoldedDenials(self.audit)  # refused requests, one entry a source a minute
        self.csrf_key = secrets.token_bytes(32)  # a restart asks the dashboard for a new one
        self.limiter = FailureLimiter()  # shared by the unix socket and the TCP listener
        self.services = Services(
            home,
            self.store,
            self.runtime,
            self.router,
            self.secrets,
            self.fleet.hosts,
            self.fleet.transport,
        )
        self.hub = TrafficHub(home, self.store, self.router, self.log_senders)
        self.host_watch = HostWatch(
            self.store, self.fleet.hosts, self.fleet.transport, self.router, self.note, self.launch
        )
        self.alerting = Alerting(
            home,
            self.store,
            self.runtime.cached,
            lambda config: self.host_watch.down_for(config.placement),
        )
        self.engine = Engine(self.services)
        self.watch = InstanceWatch(
            self.store, self.runtime, self.router, self.note, self.fleet.addresses
        )
        self.autoscaler = Autoscaler(self)
        self.alerting.autoscale_short = self.autoscaler.short_of
        self.replicator = replica_ops.replicator(self)  # copies of this home on another host
        self.alerting.replica_behind = self.replicator.behind
        self.alerting.databases_failing = lambda app: db_ops.failing(self, app)
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.started_at = time.time()
        self.http_url: str | None = None  # the dashboard and /metrics, when served
        self.recovered: list[str] = []  # what start-up did with interrupted deployments
        self.rewarmed: set[tuple[str, str]] = set()  # (app, release) started warm again

    def reach(self, host: Host) -> Transport:
        assert host.ssh is not None
        return SshTransport(host, start_command(host.ssh), stored.generation(self.store))

    def local_haproxy_pid(self) -> int | None:
        """The control host's HAProxy master, when this host is an lb host."""
        if not self.fleet.host(LOCAL).has("lb"):
            return None
        return self.agent.router.master_pid()

    def log_senders(self) -> set[str]:
        """Addresses request logs may come from: this host, and every lb host."""
        return {"127.0.0.1", *(h.address for h in self.fleet.with_role("lb"))}

    def note(self, app: str, status: str, message: str) -> None:
        """Something the daemon did on its own to an app (not part of a deployment)."""
        log.warning("%s: %s", app, message)
        self.store.add_event(app, None, "watch", status, message)

    # operations -----------------------------------------------------------------------

    def launch(self, deployment: Deployment) -> None:
        task = asyncio.create_task(self.engine.run(deployment.id))
        self.tasks[deployment.id] = task
        task.add_done_callback(lambda _: self.tasks.pop(deployment.id, None))
        task.add_done_callback(lambda _: self.replicator.kick())  # a copy at every deploy
        self.replicator.kick()

    async def deploy(self, request: schemas.DeployRequest, who: str) -> Deployment:
        app_dir = Path(request.app_dir).absolute()
        git_sha: str | None
        if request.git_rev:
            git_sha = resolve_git_rev(app_dir, request.git_rev)
            text = git(app_dir, "show", f"{git_sha}:slipway.toml")
            config = parse_config(text, f"slipway.toml at {request.git_rev}")
        else:
            config = load_config(app_dir)
            git_sha = working_tree_sha(app_dir)
        self.check_routing(config)
        users.check_run_user(config.run.user, config.build.interpreter(), self.home.root)
        check_skips(config, request.skip_gates)
        await self.check_hosts(config, request.skip_hosts)
        missing = self.secrets.missing(config.name, config.secrets)
        if missing:
            raise DeployError(
                f"app '{config.name}' needs secret(s) {', '.join(missing)}, which are not set; "
                "nothing was built or started",
                where="slipway.toml: secrets",
                fix=f"slipway secrets set {missing[0]} --app {config.name}",
            )
        await self.make_way(config.name)
        self.refuse_if_locked(config.name)
        app = self.store.ensure_app(config.name, str(app_dir))
        old_config = self.current_config(app.name)
        release = self.store.new_release(
            app.name,
            source=str(app_dir),
            source_kind="git" if request.git_rev else "dir",
            git_sha=git_sha,
            config_json=config.model_dump_json(),
            config_hash=config_hash(config),
            secrets=security.current_versions(self.store, config.name),
        )
        # A canary needs a stable release to be compared with: a first deploy is blue-green.
        strategy = config.deploy.strategy if app.current_release else "bluegreen"
        if request.check:
            strategy = "bluegreen"  # a check gives no traffic: it is no canary
        deployment = self.store.start_deployment(
            app.name,
            kind="check" if request.check else "deploy",
            from_release=app.current_release,
            to_release=release.id,
            formation=plan_formation(app.formation, old_config, config),
            who=who,
            state="build",
            strategy=strategy,
            skip_gates=request.skip_gates,
            skip_hosts=sorted(request.skip_hosts),
        )
        for host, reason in sorted(request.skip_hosts.items()):
            self.engine.event(
                deployment, "build", "info", f"deploying without host {host}: {reason}"
            )
        if strategy != config.deploy.strategy and not request.check:
            self.engine.event(
                deployment,
                "build",
                "info",
                "first deploy of this app: no stable release to compare a "
                "canary with, so it goes blue-green",
            )
        self.launch(deployment)
        return deployment

    async def check_hosts(self, config: AppConfig, skips: dict[str, str]) -> None:
        """Every host the deploy needs (where the app may run, and the lb tier) answers, or
        was named with --skip-host and a reason; otherwise nothing is built."""
        hosts = {h.name: h for h in self.fleet.hosts()}
        for name, reason in skips.items():
            if name not in hosts or name == LOCAL:
                raise UsageError(
                    f"--skip-host {name}: no such remote host",
                    fix=f"hosts: {', '.join(sorted(hosts))}",
                )
            if not reason.strip():
                raise UsageError(f"--skip-host {name} needs a reason", fix='add --reason "…"')
        needed = {h.name for h in placement.eligible(list(hosts.values()), config.placement,
                                                      frozenset(skips))}  # fmt: skip
        needed |= {h.name for h in self.fleet.with_role("lb") if h.name not in skips}

        build = agent_zipapp(self)[1]

        async def answers(name: str) -> str | None:
            try:
                facts = await self.fleet.transport(name).call("hello", _timeout=3.0)
            except SlipwayError as error:
                return error.message
            if name != LOCAL and facts.get("build") != build:
                return (
                    f"its agent is another build ({facts.get('version')}, "
                    f"{str(facts.get('build'))[:12]}) than this slipway's ({build[:12]}): "
                    f"run `slipway hosts upgrade {name}`"
                )
            return None

        results = await asyncio.gather(*(answers(n) for n in sorted(needed)))
        down = [(n, why) for n, why in zip(sorted(needed), results, strict=True) if why]
        if down:
            name, why = down[0]
            raise DeployError(
                f"host {name} does not answer ({why}); nothing was built or started",
                where=f"host {name}",
                fix=f'bring it back, or deploy without it: --skip-host {name} --reason "…"',
                data={"hosts": dict(down)},
            )

    def excused_hosts(self) -> set[str]:
        """Hosts the deployments in flight were told to go on without."""
        return {h for d in self.store.active_deployments() for h in d.skip_hosts}

    def check_routing(self, config: AppConfig) -> None:
        """A new config must not clash with the listeners of the other apps."""
        wanted = {config.name: routing_of(config)}
        if config.name not in {a.name for a in self.store.apps()}:
            placeholder = App(config.name, "", None, {}, time.time(), None)
            apps = [*self.store.apps(), placeholder]
        else:
            apps = self.store.apps()
        state = router_state("", apps, [], override=wanted)
        check_listeners(state.backends)
        check_tls_files(config.edge.tls_cert, config.edge.tls_key)

    def current_config(self, app: str) -> AppConfig | None:
        current = self.store.app(app).current_release
        return self.store.release(app, current).config if current else None

    async def rollback(self, app_name: str, release_id: str | None, who: str) -> Deployment:
        app = self.store.app(app_name)
        if app.current_release is None:
            raise DeployError(f"app '{app_name}' has nothing deployed yet", fix="slipway deploy")
        if release_id:
            target: Release | None = self.store.release(app_name, release_id)
        else:
            target = rollback_target(self.store.releases(app_name), app.current_release)
            if target is None:
                raise NotFound(
                    f"app '{app_name}' has no earlier release to roll back to",
                    fix="see `slipway releases`; only releases that served before qualify",
                )
        assert target is not None
        if target.id == app.current_release:
            raise UsageError(
                f"{target.id} is already serving app '{app_name}'",
                fix="name another release: `slipway rollback RELEASE`",
            )
        if target.status != "ready" or not target.on_disk:
            state = "failed" if target.status == "failed" else "no longer on disk"
            raise DeployError(
                f"cannot roll back to {target.id}: it is {state}",
                where=f"app {app_name}",
                fix="see `slipway releases` for releases that can run",
            )
        await self.make_way(app_name)
        self.refuse_if_locked(app_name)
        formation = {p: n for p, n in app.formation.items() if p in target.config.processes}
        for process in target.config.processes:
            formation.setdefault(process, target.config.scale.get(process, 1))
        strategy = rolled_or_not(self.current_config(app_name))
        deployment = self.store.start_deployment(
            app_name,
            kind="rollback",
            from_release=app.current_release,
            to_release=target.id,
            formation=formation,
            who=who,
            state=first_step("rollback", strategy),
            strategy=strategy,
        )
        self.launch(deployment)
        return deployment

    async def scale(
        self, app_name: str, counts: dict[str, int], who: str, autoscaled: bool = False
    ) -> Deployment:
        """A scale deployment. By hand (not `autoscaled`), it pauses the autoscaling of the
        process types it sets: the user's count holds until `slipway autoscale resume`."""
        app = self.store.app(app_name)
        config = self.current_config(app_name)
        if app.current_release is None or config is None:
            raise DeployError(f"app '{app_name}' has nothing deployed yet", fix="slipway deploy")
        for process, count in counts.items():
            if process not in config.processes:
                raise UsageError(
                    f"app '{app_name}' has no process type '{process}'",
                    where=f"release {app.current_release}",
                    fix=f"process types: {', '.join(sorted(config.processes))}",
                )
            if count < 0 or count > 64:
                raise UsageError(f"cannot scale {process} to {count}", fix="use 0 to 64")
            if process == "web" and count == 0:
                raise UsageError(
                    "scaling web to 0 would leave the app's traffic with nowhere to go",
                    fix="keep at least one web instance; `slipway down --all` stops everything",
                )
        await self.make_way(app_name)
        self.refuse_if_locked(app_name)
        deployment = self.store.start_deployment(
            app_name,
            kind="scale",
            from_release=app.current_release,
            to_release=app.current_release,
            formation=app.formation | counts,
            who=who,
            state="start",
        )
        if not autoscaled:
            for process in sorted(set(counts) & set(config.autoscale)):
                info = {"at": time.time(), "who": who, "count": counts[process]}
                autoscale_store.set_paused(self.store, app_name, process, info)
                self.note(app_name, "info", f"autoscaling of {process} paused by {who}'s "
                          f"`slipway scale` to {counts[process]}: `slipway autoscale resume "
                          f"{process} --app {app_name}` gives it back")  # fmt: skip
        self.launch(deployment)
        return deployment

    def resume_autoscaling(self, app_name: str, process: str, who: str) -> dict[str, Any]:
        """Give a process type's count back to the autoscaler after a manual scale."""
        config = self.current_config(app_name)
        if config is None or process not in config.autoscale:
            autoscaled = ", ".join(sorted(config.autoscale)) if config else ""
            raise UsageError(
                f"app '{app_name}' does not autoscale '{process}'",
                fix=f"autoscaled: {autoscaled}"
                if autoscaled
                else "add [autoscale.web] to slipway.toml and deploy",
            )
        was = autoscale_store.paused(self.store).get(f"{app_name}/{process}")
        autoscale_store.set_paused(self.store, app_name, process, None)
        if was is not None:
            self.note(app_name, "info", f"autoscaling of {process} resumed by {who}")
        return {"process": process, "was_paused": was is not None}

    def canary_command(self, app_name: str, command: str, who: str) -> Deployment:
        """promote, pause or resume the canary in flight."""
        self.store.app(app_name)
        active = self.store.active_deployment(app_name)
        if active is None or active.strategy != "canary":
            raise UsageError(
                f"app '{app_name}' has no canary in progress",
                fix="`slipway status` shows what is running",
            )
        if active.state != "canary":
            raise UsageError(
                f"the canary of {active.to_release} is not being judged now (step "
                f"'{active.state}')",
                fix=f"wait until it meets traffic, then `slipway {command}`",
            )
        self.engine.give_canary_command(active.id, command, who)
        return active

    async def abort(self, app_name: str, who: str) -> Deployment:
        """Stop the deployment in flight; the stable release keeps (or takes back) all
        traffic. Possible until the new release has taken all traffic."""
        self.store.app(app_name)
        active = self.store.active_deployment(app_name)
        if active is None:
            raise UsageError(
                f"app '{app_name}' has no deployment in progress",
                fix="`slipway rollback` goes back to an earlier release",
            )
        if active.state == "canary":
            self.engine.give_canary_command(active.id, "abort", who)
            return active
        if not undone_on_failure(active.state):
            raise UsageError(
                f"too late to abort: {active.to_release} already has all traffic",
                fix="wait for the deployment to finish, then `slipway rollback`",
            )
        task = self.tasks.get(active.id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.fail(
            self.store.deployment(active.id),
            DeployError(
                f"deployment of {active.to_release} aborted by {who}",
                where=f"app {app_name}",
                fix="the stable release keeps all traffic",
            ),
        )
        return self.store.deployment(active.id)

    def analysis(self, deployment_id: int | None, app_name: str | None) -> schemas.AnalysisView:
        if deployment_id is None:
            assert app_name is not None
            self.store.app(app_name)
            canaries = [
                d for d in self.store.deployments(app_name, limit=50) if d.strategy == "canary"
            ]
            if not canaries:
                raise NotFound(
                    f"app '{app_name}' has had no canary deployment yet",
                    fix='set [deploy] strategy = "canary" and deploy',
                )
            deployment = canaries[0]
        else:
            deployment = self.store.deployment(deployment_id)
        views = [verdict_view(v) for v in traffic.verdicts(self.store, deployment.id)]
        return schemas.AnalysisView(deployment=deployment_view(deployment), verdicts=views)

    def canary_view(self, app_name: str) -> schemas.CanaryView | None:
        active = self.store.active_deployment(app_name)
        if active is None or active.strategy != "canary" or not active.canary:
            return None
        config = self.store.release(app_name, active.to_release).config
        steps = [s for s in config.deploy.steps if s < 100]
        index = min(int(active.canary.get("index", 0)), len(steps) - 1)
        latest = traffic.verdicts(self.store, active.id, limit=1)
        return schemas.CanaryView(
            deployment=active.id,
            candidate=active.to_release,
            stable=active.from_release or "",
            step=index + 1,
            steps=steps,
            share=steps[index],
            paused=bool(active.canary.get("paused")),
            step_started=float(active.canary.get("step_started", active.started_at)),
            verdict=verdict_view(latest[0]) if latest else None,
        )

    async def make_way(self, app: str) -> None:
        """Before a user's deployment: a failure that could not be recorded is recorded now
        if it can (there may be room again), and starting the warm release again, which is
        housekeeping, is stopped: neither makes a user wait."""
        if self.engine.unrecorded:
            await self.engine.retry_unrecorded()
        holder = self.active_deployment(app)
        if holder is None or holder.kind != "warm":
            return
        task = self.tasks.get(holder.id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.engine.end_failed(
            self.store.deployment(holder.id),
            DeployError(
                f"starting {holder.to_release} warm again was stopped for a new deployment",
                where=f"app {app}",
            ),
        )

    def refuse_if_locked(self, app: str) -> None:
        holder = self.store.active_deployment(app)
        if holder is None:
            return
        pending = self.engine.unrecorded.get(holder.id)
        if pending is not None:
            raise StorageError(
                f"deployment #{holder.id} of '{app}' failed ({pending.error.message}), and "
                f"that could not be recorded: {pending.cause.message}",
                where=pending.cause.where,
                fix=pending.cause.fix,
            )
        raise self.store.lock_conflict(app, holder)

    def deployment(self, deployment_id: int) -> Deployment:
        """As the user should see it: one whose failure is not recorded yet (a full disk)
        is over, and shown failed with that error."""
        return self.settled(self.store.deployment(deployment_id))

    def active_deployment(self, app: str) -> Deployment | None:
        active = self.store.active_deployment(app)
        return None if active is None or active.id in self.engine.unrecorded else active

    def settled(self, d: Deployment) -> Deployment:
        pending = self.engine.unrecorded.get(d.id)
        if pending is None:
            return d
        return dataclasses.replace(
            d, state="done", outcome="failed", finished_at=pending.at, error=pending.to_dict()
        )

    # views ----------------------------------------------------------------------------

    async def status(self) -> schemas.StatusView:
        return schemas.StatusView(
            daemon=schemas.DaemonView(
                pid=os.getpid(),
                version=__version__,
                home=str(self.home.root),
                started_at=self.started_at,
                http_url=self.http_url,
                recovered=self.recovered,
            ),
            router=schemas.RouterView(
                running=await self.router.running(),
                pid=self.local_haproxy_pid(),
            ),
            apps=[await self.app_view(a.name) for a in self.store.apps()],
        )

    async def app_view(self, name: str) -> schemas.AppView:
        app = self.store.app(name)
        instances = await self.instance_views(name)
        counts: dict[str, int] = {}
        for view in instances:
            counts[view.role] = counts.get(view.role, 0) + 1
        warm = [r for r in self.store.releases(name) if r.warm_until and r.warm_until > time.time()]
        recent = [self.settled(d) for d in self.store.deployments(name, limit=1)]
        listen = None
        url = None
        if app.routing:
            listen = schemas.ListenView(
                address=app.routing["address"],
                port=app.routing["port"],
                hosts=app.routing.get("hosts") or [],
            )
            host = listen.hosts[0] if listen.hosts else listen.address
            if host == "0.0.0.0":
                host = "127.0.0.1"
            url = f"http://{host}:{listen.port}/"
        active = self.active_deployment(name)
        return schemas.AppView(
            name=name,
            url=url,
            listen=listen,
            current_release=app.current_release,
            formation=app.formation,
            instances=counts,
            deployment=deployment_view(active) if active else None,
            last_deployment=deployment_view(recent[0]) if recent else None,
            warm_release=warm[0].id if warm else None,
            warm_until=warm[0].warm_until if warm else None,
            source_dir=app.source_dir,
            canary=self.canary_view(name),
        )

    def release_views(self, app: str) -> list[schemas.ReleaseView]:
        current = self.store.app(app).current_release
        gates: dict[str, list[GateRecord]] = {}
        for record in self.store.gate_results(app):
            gates.setdefault(record.release, []).append(record)
        return [release_view(r, current, gates.get(r.id, [])) for r in self.store.releases(app)]

    def gate_views(self, app: str, release_id: str | None) -> list[schemas.GateView]:
        """The gates of a release (default: the newest one that ran any)."""
        if release_id is None:
            gated = {g.release for g in self.store.gate_results(app)}
            newest = [r for r in self.store.releases(app) if r.id in gated]  # newest first
            if not newest:
                raise NotFound(
                    f"no release of '{app}' has run its gates yet",
                    fix="`slipway check` runs them without deploying",
                )
            release_id = newest[0].id
        self.store.release(app, release_id)  # 404 for an unknown release
        return [gate_view(g) for g in self.store.gate_results(app, release_id)]

    async def instance_views(self, app: str | None) -> list[schemas.InstanceView]:
        if app is not None:
            self.store.app(app)  # 404 for an unknown app
        instances = self.store.instances(app)
        stats: dict[str, dict[str, ServerStat]] = {}
        for name in {i.app for i in instances if i.is_web}:
            try:
                stats[name] = await self.router.stats(name)
            except SlipwayError:
                stats[name] = {}
        await self.runtime.observe(instances)  # one call per host; the views read the cache
        views = []
        for instance in instances:
            app_stats = stats.get(instance.app, {})
            total = sum(s.weight for s in app_stats.values() if s.up)
            views.append(self.instance_view(instance, app_stats.get(instance.id), total))
        return views

    def instance_view(
        self, instance: Instance, stat: ServerStat | None, total_weight: int
    ) -> schemas.InstanceView:
        observed = self.runtime.cached(instance)
        state = observed.state if instance.status != "stopping" else "stopping"
        if instance.status == "stopping":
            role = "retiring"
        elif not instance.is_web:
            role = "worker"
        elif instance.weight and instance.weight > 0:
            role = "serving"
        elif self.is_warm(instance):
            role = "warm"
        else:
            role = "starting"
        traffic = None
        if stat is not None and total_weight > 0:
            traffic = round(100.0 * stat.weight / total_weight, 1) if stat.up else 0.0
        uptime = time.time() - observed.child_started if observed.child_started else None
        return schemas.InstanceView(
            id=instance.id,
            app=instance.app,
            host=instance.host,
            release=instance.release,
            process=instance.process,
            port=instance.port,
            state=state,
            role=role,
            pid=observed.child_pid,
            restarts=observed.restarts,
            weight=instance.weight,
            traffic_percent=traffic,
            check=f"{stat.status} {stat.check_status.lstrip('* ')}".strip() if stat else None,
            uptime_seconds=round(uptime, 1) if uptime is not None else None,
            last_exit=observed.last_exit,
            log_dropped=observed.log_dropped,
            blocked=observed.blocked,
        )

    def is_warm(self, instance: Instance) -> bool:
        try:
            release = self.store.release(instance.app, instance.release)
        except NotFound:
            return False
        return bool(release.warm_until and release.warm_until > time.time())

    def deployment_events(self, deployment_id: int, after: int) -> list[schemas.EventView]:
        return [
            schemas.EventView(
                id=e.id,
                deployment=e.deployment,
                at=e.at,
                step=e.step,
                status=e.status,
                message=e.message,
                data=e.data,
            )
            for e in self.store.events(deployment_id, after)
        ]


def verdict_view(v: VerdictRecord) -> schemas.VerdictView:
    return schemas.VerdictView(
        id=v.id,
        deployment=v.deployment,
        at=v.at,
        step=v.step,
        share=v.share,
        decision=v.decision,
        reason=v.reason,
        evidence=v.evidence,
    )


def check_skips(config: AppConfig, skips: dict[str, str]) -> None:
    """Every gate skipped by hand exists and has a reason, recorded with the deployment."""
    names = config.gates.names()
    for name, reason in skips.items():
        if name not in names:
            raise UsageError(
                f"--skip-gate {name}: app '{config.name}' has no gate by that name",
                where="slipway.toml [gates]",
                fix=f"gates of this app: {', '.join(names) or 'none'}",
            )
        if not reason.strip():
            raise UsageError(
                f"--skip-gate {name} needs a reason",
                fix=f'add --reason "why it is safe to deploy without {name}"; it is recorded',
            )


def gate_view(g: GateRecord) -> schemas.GateView:
    return schemas.GateView(
        gate=g.gate,
        kind=g.kind,
        status=g.status,
        summary=g.result["summary"],
        findings=g.result.get("findings", []),
        evidence=g.result.get("evidence", {}),
        reproduce=g.result.get("reproduce"),
        deployment=g.deployment,
        at=g.at,
        seconds=g.seconds,
        who=g.who,
        reason=g.reason,
        log_path=g.log_path,
    )


def deployment_view(d: Deployment) -> schemas.DeploymentView:
    return schemas.DeploymentView(
        id=d.id,
        app=d.app,
        kind=d.kind,
        strategy=d.strategy,
        from_release=d.from_release,
        to_release=d.to_release,
        formation=d.formation,
        state=d.state,
        who=d.who,
        started_at=d.started_at,
        finished_at=d.finished_at,
        outcome=d.outcome,
        error=d.error,
        skip_gates=d.skip_gates,
        skip_hosts=d.skip_hosts,
    )


def release_view(r: Release, current: str | None, gates: list[GateRecord]) -> schemas.ReleaseView:
    return schemas.ReleaseView(
        id=r.id,
        app=r.app,
        status=r.status,
        created_at=r.created_at,
        source=r.source,
        source_kind=r.source_kind,
        git_sha=r.git_sha,
        config_hash=r.config_hash,
        build_seconds=r.build_seconds,
        deployed_at=r.deployed_at,
        current=r.id == current,
        warm_until=r.warm_until if r.warm_until and r.warm_until > time.time() else None,
        on_disk=r.on_disk,
        error=r.error,
        gates={g.gate: g.status for g in gates},
        skipped_gates={g.gate: g.reason or "" for g in gates if g.reason is not None},
    )
