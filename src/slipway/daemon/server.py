"""`slipway server`: the daemon. The only writer of state; serves the API on a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from slipway import dashboard
from slipway.api.app import create_app
from slipway.auth.guard import PeerCredProtocol
from slipway.daemon import (
    db_ops,
    db_schedule,
    firewall_ops,
    host_ops,
    reconcile,
    replica_ops,
    vip_ops,
)
from slipway.daemon.lifecycle import preflight
from slipway.daemon.service import Service
from slipway.daemon.web import bind, create_web_app
from slipway.errors import SlipwayError
from slipway.metrics import discovery
from slipway.paths import Home

log = logging.getLogger("slipway.daemon")
STOP_TIMEOUT = 5.0


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.access", "asyncssh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class ApiServer(uvicorn.Server):
    """uvicorn, minus its signal handling: it re-raises SIGTERM after serving, which would
    kill the daemon before it cleans up. The daemon installs its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_socket(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


async def serve(
    home: Home, http: tuple[str, int] | None, tls: tuple[str, str] | None = None
) -> None:
    # Everything the daemon writes is its own (state, keys, logs); a release's files are
    # opened to its app's user explicitly (LocalRuntime.app_user).
    os.umask(0o077)
    binary = preflight(home)
    home.pidfile.write_text(str(os.getpid()))
    service = Service(home, binary)
    await service.hub.start()
    service.fleet.ingest_port = service.hub.port
    await host_ops.refresh_seen_as(service)  # restored on another machine: a new address
    for lb in service.fleet.with_role("lb"):  # remote lb hosts send request logs here
        if not lb.local and lb.facts.get("client"):
            await service.hub.listen_on(str(lb.facts["client"]))
    log.info(
        "slipway daemon starting (pid %s, home %s, request logs on udp port %s)",
        os.getpid(),
        home.root,
        service.hub.port,
    )
    try:
        await reconcile.on_start(service)
    except SlipwayError as exc:
        log.error("could not restore everything at start: %s", exc)
    # databases: creates and drops cut off by a crash finish, the others start again; in the
    # background, as a first backup or a host that does not answer must not hold the start
    databases_resumed = asyncio.create_task(db_ops.resume(service))
    database_schedule = asyncio.create_task(db_schedule.run(service))
    monitor = asyncio.create_task(reconcile.monitor(service))
    watch = asyncio.create_task(service.watch.run())
    router_watch = asyncio.create_task(reconcile.watch_router(service))
    ingest = asyncio.create_task(service.hub.run())
    alerting = asyncio.create_task(service.alerting.run())
    # the lb tier's virtual address: configured again on every lb host (in the background: an
    # lb host that does not answer must not hold the start), and watched on this host
    vip = asyncio.create_task(vip_ops.apply_quietly(service))
    firewalls = asyncio.create_task(firewall_ops.apply_quietly(service))
    keepalived = asyncio.create_task(service.agent.keepalived.watch())
    databases = asyncio.create_task(service.agent.postgres.watch())  # this host's clusters
    host_watch = asyncio.create_task(service.host_watch.run())
    replication = asyncio.create_task(service.replicator.run())
    autoscaling = asyncio.create_task(service.autoscaler.run())
    sock = bind_socket(home.socket)
    server: uvicorn.Server | None = None

    async def request_shutdown(stop_all: bool) -> list[str]:
        """What could not be stopped (hosts that do not answer); the daemon exits anyway."""
        problems: list[str] = []
        if stop_all:  # HAProxy is about to stop on purpose: nobody may start it again
            for task in (
                monitor,
                watch,
                router_watch,
                keepalived,
                host_watch,
                autoscaling,
                databases,
                database_schedule,
            ):
                task.cancel()
            problems = await reconcile.stop_everything(service)
        assert server is not None
        server.should_exit = True
        return problems

    config = uvicorn.Config(
        create_app(service, request_shutdown),
        http=PeerCredProtocol,  # tells the Guard the peer's uid: the socket's owner is admin
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,  # X-Forwarded-For from 127.0.0.1 (an ssh tunnel) is anyone's
        timeout_graceful_shutdown=2,
    )
    server = ApiServer(config)
    web_server, web_task = None, None
    web_sock = bind(http) if http else None
    home.http_file.unlink(missing_ok=True)
    if web_sock is not None:
        web_config = uvicorn.Config(
            create_web_app(service, request_shutdown, dashboard.routes()),
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,  # the client address is the peer's, never a header's
            timeout_graceful_shutdown=1,
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
        web_server = ApiServer(web_config)
        web_task = asyncio.create_task(web_server.serve(sockets=[web_sock]))
        host, port = web_sock.getsockname()[:2]
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        service.http_url = service.alerting.dashboard_url = f"{scheme}://{shown}:{port}/"
        home.http_file.write_text(service.http_url)
        discovery.write_daemon_target(home.prometheus_targets, f"{host}:{port}")
        log.info("dashboard and /metrics on %s", service.http_url)

    def stop() -> None:
        assert server is not None
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    log.info("listening on %s", home.socket)
    try:
        await server.serve(sockets=[sock])
    finally:
        if web_server is not None and web_task is not None:
            web_server.should_exit = True
            await stop_task(web_task, "the dashboard's listener")
        home.http_file.unlink(missing_ok=True)
        discovery.write_daemon_target(home.prometheus_targets, None)
        for task, what in (
            (monitor, "housekeeping"),
            (router_watch, "the HAProxy watch"),
            (watch, "the instance watch"),
            (ingest, "ingest"),
            (alerting, "alerts"),
            (vip, "the virtual address"),
            (firewalls, "the hosts' firewalls"),
            (keepalived, "the keepalived watch"),
            (databases, "the databases watch"),
            (databases_resumed, "resuming databases"),
            (database_schedule, "the database schedule"),
            (host_watch, "the host watch"),
            (replication, "replication"),
            (autoscaling, "autoscaling"),
        ):
            task.cancel()
            await stop_task(task, what)
        service.hub.close()
        for task in list(service.tasks.values()):
            task.cancel()
        await service.engine.close()
        service.denials.flush()  # refusals still being counted reach the audit log
        await replica_ops.last_copy(service)
        service.store.close()
        home.socket.unlink(missing_ok=True)
        home.pidfile.unlink(missing_ok=True)
        log.info("slipway daemon stopped at %s", time.strftime("%H:%M:%S"))


async def stop_task(task: asyncio.Task[None], what: str, timeout: float = STOP_TIMEOUT) -> None:
    """Wait for a task to end, cancelling it if it takes too long: stopping the daemon must
    never hang on one of its parts."""
    done, _ = await asyncio.wait([task], timeout=timeout)
    if not done:
        log.error("%s did not stop within %gs; cancelled", what, timeout)
        task.cancel()
        await asyncio.wait([task], timeout=1)
    elif not task.cancelled() and task.exception() is not None:
        log.error("%s failed while stopping: %r", what, task.exception())


def main(home: Home, http: tuple[str, int] | None, tls: tuple[str, str] | None = None) -> None:
    setup_logging()
    asyncio.run(serve(home, http, tls))
