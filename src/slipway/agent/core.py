"""The agent: one per host. It builds nothing and decides nothing: it runs and watches the
instances the control plane asks for (the local supervisor and its shims), probes them,
keeps their logs, drives the host's HAProxy on `lb` hosts, and says what it observes. It
holds no fleet state; restarted, it finds its instances again by their folders.

Every method takes and returns plain JSON (wire.py). The control host runs an agent in its
own process; other hosts run `slipway agent serve`, reached over SSH (server.py).
Standard library only."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import os
import platform
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

from slipway import __version__
from slipway.agent import hostfacts, keepalived, pgverify, wire
from slipway.agent.firewall import Firewall
from slipway.agent.postgres import Postgres, backup_info, pgbackrest
from slipway.agent.probe import probe
from slipway.agent.public_ports import public_ports
from slipway.errors import Conflict, RouterError, SlipwayError, UsageError
from slipway.paths import Home
from slipway.releases import artifact
from slipway.router import vrrp
from slipway.router.haproxy import HAProxyRouter, find_haproxy
from slipway.runtime.local import LocalRuntime

GENERATION_FILE = "control.generation"  # the newest control plane that reached this host


class Agent:
    def __init__(self, home: Home, haproxy_binary: str | None = None) -> None:
        self.home = home
        self.runtime = LocalRuntime(home)
        self._haproxy_binary = haproxy_binary
        self._router: HAProxyRouter | None = None
        self.keepalived = keepalived.Keepalived(home)
        self.firewall = Firewall(home, self.runtime)
        self.postgres = Postgres(home.root)

    @property
    def router(self) -> HAProxyRouter:
        if self._router is None:
            self._router = HAProxyRouter(self.home, self._haproxy_binary or find_haproxy())
        return self._router

    async def call(self, method: str, params: dict[str, Any], generation: int | None = None) -> Any:
        """One request of the control plane. Unknown methods are refused by name, and a
        control plane older than the newest that reached this host (restored elsewhere
        since) is refused whatever it asks."""
        if generation is not None:
            self.fence(generation)
        handler = getattr(self, "rpc_" + method.replace(".", "_"), None)
        if handler is None:
            raise UsageError(f"the agent has no method '{method}'", fix="upgrade the agent")
        return await handler(**params)

    def fence(self, generation: int) -> None:
        path = self.home.root / GENERATION_FILE
        try:
            newest = int(path.read_text())
        except (OSError, ValueError):
            newest = 0
        if generation < newest:
            raise Conflict(
                f"this host is driven by a newer control plane (generation {newest}; this "
                f"one is {generation}): the control plane was restored elsewhere",
                fix="stop this control plane for good (`slipway down`); the restored one "
                "drives the fleet",
            )
        if generation > newest:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(str(generation))
            tmp.replace(path)

    # the host ----------------------------------------------------------------------------

    async def rpc_hello(self) -> dict[str, Any]:
        haproxy = shutil.which("haproxy") or os.environ.get("SLIPWAY_HAPROXY")
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return {
            "version": __version__,
            "python": ".".join(map(str, sys.version_info[:3])),
            "executable": sys.executable,
            "platform": platform.machine(),
            "cores": os.cpu_count() or 1,
            "memory": memory,
            "load": os.getloadavg()[0],
            "haproxy": haproxy,
            "home": str(self.home.root),
            "client": os.environ.get("SSH_CLIENT", "").split(" ")[0] or None,
            "build": build_digest(),
        }

    async def rpc_doctor_facts(self) -> dict[str, Any]:
        """What `slipway doctor` checks of this host (and its firewall, and its build)."""
        facts = await asyncio.to_thread(hostfacts.gather, self.home.root)
        return facts | {"firewall": await self.firewall.verify(), "build": build_digest()}

    async def rpc_free_port(self, address: str) -> int:
        with socket.socket() as sock:
            sock.bind((address, 0))
            return int(sock.getsockname()[1])

    # instances ---------------------------------------------------------------------------

    async def rpc_instance_start(self, spec: dict[str, Any]) -> list[float] | None:
        wanted = wire.spec_in(spec)
        port = wanted.env.get("PORT", "")
        also = int(port) if port.isdigit() else None
        await self.firewall.refresh(also=also)  # closed first
        try:
            return wire.handle_out(await self.runtime.start(wanted))
        finally:  # its spec names the port now (or it did not start)
            self.firewall.starting.discard(also or 0)

    async def rpc_instance_observe(self, instances: list[list[Any]]) -> dict[str, Any]:
        """[[app, id, handle], …] → {id: observed}."""
        return {
            instance_id: wire.observed_out(
                self.runtime.observe(app, instance_id, wire.handle_in(handle))
            )
            for app, instance_id, handle in instances
        }

    async def rpc_instance_stop(
        self, app: str, instance: str, handle: list[float] | None, grace: float
    ) -> None:
        await self.runtime.stop(app, instance, wire.handle_in(handle), grace)
        await self.firewall.refresh()

    async def rpc_instance_set_priority(
        self, app: str, instance: str, handle: list[float] | None, nice: int
    ) -> None:
        self.runtime.set_priority(app, instance, wire.handle_in(handle), nice)

    async def rpc_instance_restart_process(
        self, app: str, instance: str, handle: list[float] | None
    ) -> bool:
        return self.runtime.restart_process(app, instance, wire.handle_in(handle))

    async def rpc_instance_kill_orphan(self, app: str, instance: str) -> list[int]:
        return self.runtime.kill_orphan(app, instance)

    async def rpc_instance_supervised(self) -> list[list[Any]]:
        return [
            [app, instance, wire.handle_out(handle)]
            for app, instance, handle in self.runtime.supervised()
        ]

    async def rpc_instance_log_tail(
        self, app: str, instance: str, lines: int
    ) -> list[dict[str, Any]]:
        return self.runtime.log_tail(app, instance, lines)

    # Logs are read in a thread: a page is up to a megabyte, a host may have many instances.

    async def rpc_instance_logs_last(
        self, app: str, instances: list[str], lines: int
    ) -> dict[str, list[Any]]:
        """{instance: [records, end]}: the newest lines, and where to follow from."""
        found = await asyncio.to_thread(self.runtime.logs_last, app, instances, lines)
        return {i: [records, end] for i, (records, end) in found.items()}

    async def rpc_instance_logs_after(
        self, app: str, offsets: dict[str, int], max_bytes: int
    ) -> dict[str, list[Any]]:
        """{instance: [records, end]}: what was written after each offset."""
        found = await asyncio.to_thread(self.runtime.logs_after, app, offsets, max_bytes)
        return {i: [records, end] for i, (records, end) in found.items()}

    async def rpc_instance_log_page(
        self,
        app: str,
        instance: str,
        cursor: list[int] | None,
        since: float | None,
        max_bytes: int,
    ) -> list[Any]:
        """[records, next cursor or None, end]: the whole log, oldest first, page by page."""
        at = (int(cursor[0]), int(cursor[1])) if cursor else None
        records, after, end = await asyncio.to_thread(
            self.runtime.log_page, app, instance, at, since, max_bytes
        )
        return [records, list(after) if after else None, end]

    async def rpc_instance_probe(
        self, address: str, port: int, path: str, timeout: float
    ) -> list[Any]:
        ok, text = await probe(address, port, path, timeout)
        return [ok, text]

    # releases --------------------------------------------------------------------------

    async def rpc_release_upload_path(self, app: str, folder: str) -> str:
        """Where to copy a release's archive before `release.install`."""
        folder_path = self.home.app_dir(app) / "artifacts"
        folder_path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return str(folder_path / f"{folder}.tar.gz")

    async def rpc_release_has(self, app: str, folder: str, digest: str) -> bool:
        return artifact.installed(self.home.release_dir(app, folder), digest)

    async def rpc_release_install(self, app: str, folder: str, digest: str) -> None:
        """Unpack the release shipped to artifacts/APP-FOLDER.tar.gz, after checking it."""
        archive = self.home.app_dir(app) / "artifacts" / f"{folder}.tar.gz"
        target = self.home.release_dir(app, folder)
        await asyncio.to_thread(artifact.install, archive, digest, target)
        archive.unlink(missing_ok=True)

    async def rpc_release_remove(self, app: str, folder: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.home.release_dir(app, folder), True)

    # HAProxy (lb hosts) ----------------------------------------------------------------

    async def rpc_router_apply(
        self, state: dict[str, Any], pems: dict[str, str], sources: dict[str, Any]
    ) -> bool:
        wanted = wire.state_in(state)
        changed = await self.router.apply(
            wanted,
            {name: wire.blob_in(pem) for name, pem in pems.items()},
            {name: (pair[0], pair[1]) for name, pair in sources.items()},
        )
        await self.firewall.set_public(public_ports(wanted))  # [edge] allow, at the door too
        return changed

    async def rpc_router_running(self) -> bool:
        return self.router.running()

    async def rpc_router_master_pid(self) -> int | None:
        return self.router.master_pid()

    async def rpc_router_add_server(self, backend: dict[str, Any], server: dict[str, Any]) -> None:
        await self.router.add_server(wire.backend_in(backend), wire.server_in(server))

    async def rpc_router_set_weights(self, app: str, weights: dict[str, int]) -> None:
        """The raises, then the lowers (each in the given order)."""
        await self.router.set_weights(app, weights)

    async def rpc_router_set_health(self, app: str, name: str, up: bool) -> None:
        await self.router.set_health(app, name, up)

    async def rpc_router_drain(self, app: str, name: str) -> None:
        await self.router.drain(app, name)

    async def rpc_router_remove_server(self, app: str, name: str, timeout: float) -> None:
        await self.router.remove_server(app, name, timeout)

    async def rpc_router_stats(self, app: str) -> dict[str, Any]:
        return wire.stats_out(await self.router.stats(app))

    async def rpc_router_purge_cache(self, app: str) -> bool:
        return await self.router.purge_cache(app)

    async def rpc_router_cache_counters(self, app: str) -> dict[str, int]:
        return dataclasses.asdict(await self.router.cache_counters(app))

    async def rpc_router_sync(self, backend: dict[str, Any]) -> None:
        await self.router.sync(wire.backend_in(backend))

    async def rpc_router_stop(self, timeout: float) -> None:
        await self.router.stop(timeout)

    async def rpc_router_dropped_logs(self) -> int:
        """HAProxy's own count of request-log lines it could not send (DroppedLogs)."""
        try:
            info = await self.router.command("show info")
        except RouterError:
            return 0
        for line in info.splitlines():
            if line.startswith("DroppedLogs:"):
                return int(line.split(":", 1)[1].strip() or 0)
        return 0

    # the firewall of slipway's ports --------------------------------------------------------

    async def rpc_firewall_apply(self, allowed: list[str]) -> dict[str, Any]:
        return await self.firewall.apply(allowed)

    async def rpc_firewall_verify(self) -> dict[str, Any]:
        return await self.firewall.verify()

    async def rpc_firewall_remove(self) -> None:
        await self.firewall.remove()

    # the virtual address (lb hosts) ---------------------------------------------------------

    async def rpc_vip_apply(
        self, vip: dict[str, Any], name: str, me: str, peers: list[str], priority: int
    ) -> str:
        """Run keepalived for the virtual address on the interface that has `me`; returns
        that interface."""
        address = vrrp.Vip.from_dict(vip)
        interface = await asyncio.to_thread(keepalived.interface_of, me)
        config = vrrp.render(
            address, name, interface, me, peers, priority, self.keepalived.check_command()
        )
        await self.keepalived.apply(config)
        return interface

    async def rpc_vip_state(self, address: str) -> dict[str, bool]:
        holds = await asyncio.to_thread(keepalived.holds, address)
        return {"running": self.keepalived.pid() is not None, "holds": holds}

    async def rpc_vip_stop(self) -> None:
        await self.keepalived.stop()

    # databases (PostgreSQL clusters and their pgBackRest stanzas) ---------------------------

    async def rpc_db_create(
        self, name: str, port: int, listen: list[str], verifier: str, cipher_pass: str
    ) -> dict[str, Any]:
        return await self.postgres.create(name, port, listen, verifier, cipher_pass)

    async def rpc_db_start(self, name: str) -> dict[str, Any]:
        return await self.postgres.start(name)

    async def rpc_db_stop(self, name: str) -> None:
        await self.postgres.stop(name)

    async def rpc_db_stop_all(self) -> list[str]:
        return await self.postgres.stop_all()

    async def rpc_db_drop(self, name: str) -> None:
        await self.postgres.drop(name)

    async def rpc_db_describe(self, names: list[str]) -> dict[str, Any]:
        return {n: await asyncio.to_thread(self.postgres.describe, n) for n in names}

    async def rpc_db_backup(self, name: str, kind: str, timeout: float) -> dict[str, Any]:
        layout = self.postgres.layout(name)
        await asyncio.to_thread(
            pgbackrest, layout, name, "backup", f"--type={kind}", timeout=timeout
        )
        return await asyncio.to_thread(backup_info, layout, name)

    async def rpc_db_info(self, name: str) -> Any:
        return await asyncio.to_thread(backup_info, self.postgres.layout(name), name)

    async def rpc_db_verify(self, name: str, query: str | None, timeout: float) -> dict[str, Any]:
        async with self.postgres.verifying(name):
            return await asyncio.to_thread(pgverify.verify, self.postgres, name, query, timeout)


@functools.cache
def build_digest() -> str | None:
    """The sha256 of the zipapp this agent runs from (None when not run from one): the
    control plane refuses an agent that is not its own build."""
    spec = sys.modules["slipway"].__spec__
    archive = getattr(spec.loader if spec else None, "archive", None)
    if archive is None:
        return None
    return hashlib.sha256(Path(archive).read_bytes()).hexdigest()


def error_out(error: BaseException) -> dict[str, Any]:
    if isinstance(error, SlipwayError):
        return error.to_dict()
    return SlipwayError(
        f"the agent failed: {type(error).__name__}: {error}",
        fix="see the agent's log on that host; please report this",
    ).to_dict()
