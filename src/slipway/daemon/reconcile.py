"""Making what runs match what is recorded: once when the daemon starts, then every second.

At start: HAProxy is adopted (or started with the recorded servers), instances are adopted
by shim pid and start time (or restarted), deployments that were in flight are finished or
rolled back, and apps missing instances get a restore deployment. Then, each second:
HAProxy is restarted if it died, expired warm releases and strays are retired, and
instances whose supervisor vanished are restarted."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from slipway.daemon import db_ops, vip_ops
from slipway.daemon.service import Service
from slipway.deploy.planning import resumed_after_restart, warm_release
from slipway.deploy.routing import backend_for
from slipway.errors import DeployError, HostUnreachable, SlipwayError
from slipway.metrics import discovery
from slipway.runtime.base import Handle
from slipway.runtime.fleet import UNREACHABLE
from slipway.store.records import Instance

log = logging.getLogger("slipway.reconcile")
MONITOR_EVERY = 1.0
SWEEP_EVERY = 30.0  # seconds between looks for shims that no record names
ROUTER_POLL = 0.1


async def on_start(service: Service) -> None:
    store = service.store
    await sync_router(service)
    for deployment in store.active_deployments():
        what = (
            f"deployment #{deployment.id} of {deployment.app} ({deployment.kind} of "
            f"{deployment.to_release}) was interrupted at step '{deployment.state}'"
        )
        if resumed_after_restart(deployment.state):
            log.info("resuming deployment %s at %s", deployment.id, deployment.state)
            service.engine.event(
                deployment, deployment.state, "info", "daemon restarted: finishing this deployment"
            )
            service.recovered.append(f"{what}: finishing it")
            service.launch(deployment)
        else:
            log.info(
                "rolling back deployment %s interrupted at %s", deployment.id, deployment.state
            )
            await service.engine.end_failed(
                deployment,
                DeployError(
                    f"the daemon restarted during step '{deployment.state}'; the deployment was "
                    "rolled back and the stable release kept serving",
                    where=f"deployment #{deployment.id}",
                    fix="run the deploy again",
                ),
            )
            stable = store.app(deployment.app).current_release or "nothing"
            service.recovered.append(f"{what}: rolled back; {stable} keeps serving")
    await sweep_unrecorded(service)
    await heal_instances(service)
    restore_missing(service)


async def sweep_unrecorded(service: Service) -> int:
    """Stop every shim, on every host that answers, that no live instance record names:
    nothing may run that the daemon cannot show or stop (e.g. shims started by a daemon
    killed before it recorded them, whose deployment was then rolled back). Returns how many
    it stopped."""
    store, stopped = service.store, 0
    for host in service.fleet.hosts():
        try:
            running = await service.runtime.supervised(host.name)
        except HostUnreachable:
            continue  # swept when it answers again
        for app, instance_id, handle in running:
            record = store.find_instance(app, instance_id)
            if record is not None and record.status != "stopped":
                if record.handle != handle:  # started, but its pid never recorded: adopt it
                    store.update_instance(
                        app, instance_id, shim_pid=handle.pid, shim_ctime=handle.ctime
                    )
                continue
            log.warning("stopping %s/%s on %s: nothing names it", app, instance_id, host.name)
            grace = service.engine.grace_for(record) if record else 10.0
            await service.runtime.stop(unnamed(app, instance_id, host.name, handle), grace)
            stopped += 1
    return stopped


def unnamed(app: str, instance_id: str, host: str, shim: Handle) -> Instance:
    """An instance as found running, without (a live) record."""
    return Instance(app, instance_id, "?", "?", None, "stopped", shim.pid, shim.ctime, None,
                    0.0, host=host)  # fmt: skip


async def sync_router(service: Service) -> None:
    """Start or adopt HAProxy on every lb host, then make its runtime servers match the
    recorded ones (raises before it lowers, on each)."""
    store = service.store
    await service.router.ensure(service.engine.router_state())
    addresses = service.fleet.addresses()
    for app in store.apps():
        if app.routing is not None:
            backend = backend_for(app.name, app.routing, store.instances(app.name), addresses)
            await service.router.sync(backend)
    service.router.missed.clear()


def wanted_running(service: Service, instance: Instance) -> bool:
    """Instances of the current release, a warm release, or a deployment in flight."""
    app = service.store.app(instance.app)
    if instance.release == app.current_release:
        return True
    active = service.active_deployment(instance.app)
    if active is not None and instance.id in active.instances:
        return True
    return service.is_warm(instance) and instance.is_web


async def heal_instances(service: Service) -> None:
    """Restart instances whose supervisor is gone; retire ones nobody wants any more."""
    store = service.store
    for instance in store.instances():
        if instance.status == "stopping":
            service.engine.stop_in_background(instance)  # e.g. left by a daemon that died
            continue
        if instance.status not in ("running", "starting"):
            continue
        if service.active_deployment(instance.app) is not None:
            continue  # the engine owns this app right now
        if not wanted_running(service, instance):
            log.info("retiring %s/%s", instance.app, instance.id)
            await service.engine.retire_instance(instance)
            continue
        observed = await service.runtime.observe_one(instance)
        if observed.state == UNREACHABLE:
            continue  # a host cut off may well still serve: nothing is torn down or doubled
        if observed.alive:
            # e.g. booted at a lower priority by a daemon that died before it was healthy
            await service.runtime.set_priority(instance, 0)
            continue
        # what its app left running keeps serving until the new shim replaces it (the shim
        # stops an instance's leftovers itself, right before it starts the app again)
        log.warning("supervisor of %s/%s is gone: restarting it", instance.app, instance.id)
        release = store.release(instance.app, instance.release)
        await service.engine.spawn(instance, release.config)


def rewarm(service: Service) -> None:
    """After `down --all` and `up`: the release that was warm for an instant rollback gets its
    web instances back (weight 0), as long as its window lasts. Tried once per release and
    daemon: a warm release that cannot start must not be retried forever."""
    store = service.store
    for app in store.apps():
        if app.current_release is None or service.active_deployment(app.name) is not None:
            continue
        warm = warm_release(store.releases(app.name), app.current_release, time.time())
        if warm is None or not warm.on_disk or (app.name, warm.id) in service.rewarmed:
            continue
        web = app.formation.get("web", 0)
        if not web or any(i.release == warm.id and i.is_web for i in store.instances(app.name)):
            continue  # it still has instances (e.g. fewer than now after a scale up: enough)
        service.rewarmed.add((app.name, warm.id))
        deployment = store.start_deployment(
            app.name,
            kind="warm",
            from_release=app.current_release,
            to_release=warm.id,
            formation={"web": web},
            who="slipway (warm again)",
            state="start",
        )
        service.launch(deployment)


def restore_missing(service: Service) -> None:
    """After `down --all` or a reboot: bring each app back to its recorded formation."""
    store = service.store
    for app in store.apps():
        if app.current_release is None or service.active_deployment(app.name) is not None:
            continue
        live = [i for i in store.instances(app.name) if i.release == app.current_release and i.live]
        missing = any(
            len([i for i in live if i.process == p]) < n for p, n in app.formation.items()
        )
        if missing:
            deployment = store.start_deployment(
                app.name,
                kind="restore",
                from_release=app.current_release,
                to_release=app.current_release,
                formation=app.formation,
                who="slipway (restore)",
                state="start",
            )
            service.launch(deployment)


async def monitor(service: Service) -> None:
    swept = time.monotonic()
    while True:
        await asyncio.sleep(MONITOR_EVERY)
        try:
            await service.engine.retry_unrecorded()
            rewarm(service)
            if time.monotonic() - swept > SWEEP_EVERY:
                swept = time.monotonic()
                await sweep_unrecorded(service)
            if service.router.missed or not await service.router.running():
                log.warning("an lb host is not current: bringing it to the recorded servers")
                await sync_router(service)
            await heal_instances(service)
            store = service.store
            discovery.write_targets(
                service.home.prometheus_targets, [a.name for a in store.apps()], store.instances()
            )
        except SlipwayError as exc:
            log.error("housekeeping failed: %s", exc)
        except Exception:
            log.exception("housekeeping crashed")


async def watch_router(service: Service) -> None:
    """Start HAProxy again the moment its master exits: a pidfd becomes readable when the
    process ends (it need not be our child), so no request waits for the next housekeeping
    round to find its listener back."""
    loop = asyncio.get_running_loop()
    while True:
        pid = service.local_haproxy_pid()
        if pid is None:  # none here, not started yet, or being started: housekeeping sees to it
            await asyncio.sleep(ROUTER_POLL)
            continue
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # gone already, or a kernel without pidfds: poll instead
            await asyncio.sleep(ROUTER_POLL)
            if service.local_haproxy_pid() == pid:
                continue
            fd = None
        if fd is not None:
            await _until_readable(loop, fd)
        log.warning("HAProxy (pid %s) exited: starting it with the recorded servers", pid)
        try:
            await sync_router(service)
        except SlipwayError as exc:
            log.error("could not start HAProxy again: %s", exc)
            await asyncio.sleep(ROUTER_POLL)


async def _until_readable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await readable
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def stop_everything(service: Service) -> list[str]:
    """`slipway down --all`: HAProxy soft-stops (in-flight requests finish), then every
    instance stops with its grace period. Recorded as stopped, so `slipway up` restores.
    Best effort across the fleet: a host that does not answer is named in what is returned
    and the rest still stops; its instances stay recorded as stopping, and the next
    `slipway up` stops them once it reaches the host."""
    for task in list(service.tasks.values()):
        task.cancel()
    problems: list[str] = []
    try:
        await vip_ops.stop_everywhere(service)  # `slipway up` configures it again
    except SlipwayError as exc:
        problems.append(f"the virtual address: {exc.message}")
    try:
        await service.router.stop()
    except SlipwayError as exc:
        problems.append(f"HAProxy: {exc.message}")
    store = service.store
    for instance in store.instances():  # HAProxy is gone: no servers to remove
        if instance.status not in ("stopping", "stopped"):
            store.update_instance(instance.app, instance.id, status="stopping", weight=None)
    pending = [
        i
        for i in store.instances()
        if i.status == "stopping" and (i.app, i.id) not in service.engine.stopping
    ]
    cut_off: dict[str, list[str]] = {}  # hosts known not to answer: not waited for
    for instance in pending:
        reach = service.host_watch.state(instance.host)
        if reach is not None and reach.state != "up":
            cut_off.setdefault(instance.host, []).append(instance.id)
    for host, ids in sorted(cut_off.items()):
        problems.append(f"host {host} does not answer: {', '.join(sorted(ids))} keep running")
    pending = [i for i in pending if i.host not in cut_off]
    results = await asyncio.gather(
        *service.engine.stopping.values(),
        *(service.engine.stop_process(i) for i in pending),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, SlipwayError):
            problems.append(f"{result.where}: {result.message}" if result.where else result.message)
        elif isinstance(result, Exception):
            log.error("an instance could not be stopped", exc_info=result)
            problems.append(f"an instance could not be stopped: {result!r}")
    await sweep_unrecorded(service)
    problems += await db_ops.stop_all(service)  # `slipway up` starts them again
    return problems
