"""The fleet as the API sees it: add a host (connect with its pinned key, check what it
needs, install and start its agent from this host, say hello), list, change roles, upgrade
its agent, remove it (once it runs nothing)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slipway import __version__
from slipway.agent import package
from slipway.daemon import firewall_ops, vip_ops
from slipway.deploy import usage
from slipway.errors import Conflict, HostUnreachable, PreflightError, SlipwayError, UsageError
from slipway.hosts.model import LOCAL, ROLES, Host, SshTarget
from slipway.hosts.ssh import SshTransport, fingerprint_of
from slipway.store import hosts as stored

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")
HOST_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
MIN_PYTHON = (3, 11)
AGENT_FILE = "agent.pyz"


def check_roles(roles: list[str]) -> frozenset[str]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise UsageError(f"unknown role(s): {', '.join(unknown)}", fix="roles: app, lb")
    return frozenset(roles)


def agent_zipapp(service: Service) -> tuple[Path, str]:
    """This slipway's agent as one file (built once per daemon start)."""
    path = service.home.root / AGENT_FILE
    if service.agent_build is None:
        service.agent_build = package.build(path)
    return path, service.agent_build


def start_command(target: SshTarget) -> str:
    home = shlex.quote(target.home)
    return (
        # `;`, not `&&`: a backgrounded `a && b &` list keeps the SSH session open
        f"cd /; setsid nohup {shlex.quote(target.python)} {home}/{AGENT_FILE} --home {home} "
        f"serve >> {home}/agent.log 2>&1 < /dev/null &"
    )


async def scan(address: str, port: int) -> dict[str, Any]:
    return {"address": address, "port": port, "fingerprint": await fingerprint_of(address, port)}


async def add_host(service: Service, request: dict[str, Any]) -> Host:
    name = str(request["name"])
    if not HOST_NAME.match(name) or name == LOCAL:
        raise UsageError(
            f'"{name}" cannot name a host',
            fix='lowercase letters, digits and "-", starting with a letter; not "local"',
        )
    roles = check_roles(list(request["roles"]))
    target = SshTarget(
        address=str(request.get("ssh_address") or request["address"]),
        fingerprint=str(request["fingerprint"]),
        port=int(request.get("port") or 22),
        user=str(request.get("user") or "root"),
        key=request.get("key"),
        home=str(request.get("home") or "/var/lib/slipway"),
        python=str(request.get("python") or "/usr/bin/python3"),
    )
    existing = stored.find(service.store, name)
    pinned = existing.ssh.fingerprint if existing and existing.ssh else None
    if pinned is not None and pinned != target.fingerprint:
        raise Conflict(
            f"host '{name}' is in the fleet with host key {pinned}: a different key is refused",
            fix=f"`slipway hosts remove {name}` first if it was really reinstalled",
        )
    host = Host(name, str(request["address"]), roles, target)
    transport = SshTransport(host, start_command(target), stored.generation(service.store))
    try:
        await check_host(transport, host)
        facts = await install_agent(service, transport, target)
    finally:
        await transport.close()
    ready = Host(host.name, host.address, roles, target, facts["version"], facts)
    stored.save(service.store, ready)
    service.fleet.forget(name)
    if ready.has("lb") and facts.get("client"):
        await service.hub.listen_on(str(facts["client"]))
    if ready.has("lb"):
        await vip_ops.apply_quietly(service)  # one more lb host: every one's peers change
    await firewall_ops.apply_quietly(service)  # its own, and the others' if it is an lb host
    return ready


async def check_host(transport: SshTransport, host: Host) -> None:
    """What the host needs: a Python of 3.11 or newer, HAProxy on an lb host."""
    assert host.ssh is not None
    python = shlex.quote(host.ssh.python)
    code, out, err = await transport.run(f"{python} -c 'import sys; print(*sys.version_info[:2])'")
    if code != 0:
        raise PreflightError(
            f"host {host.name} has no Python at {host.ssh.python}: {err.strip()[-200:]}",
            fix="install Python 3.11 or newer there (apt-get install python3), or give --python",
        )
    version = tuple(int(v) for v in out.split())
    if version < MIN_PYTHON:
        raise PreflightError(
            f"host {host.name} has Python {'.'.join(map(str, version))}; the agent needs 3.11+",
            fix="install a newer Python there and give its path with --python",
        )
    if host.has("lb"):
        code, _, _ = await transport.run("command -v haproxy >/dev/null")
        if code != 0:
            raise PreflightError(
                f"lb host {host.name} has no HAProxy",
                fix="install it there: apt-get install haproxy (2.6 or newer)",
            )


async def install_agent(
    service: Service, transport: SshTransport, target: SshTarget
) -> dict[str, Any]:
    """Copy this slipway's agent to the host and run it (replacing an older one)."""
    zipapp, build = agent_zipapp(service)
    home = shlex.quote(target.home)
    code, _, err = await transport.run(f"mkdir -p {home} && chmod 700 {home}")
    if code != 0:
        raise PreflightError(f"cannot create {target.home} on the host: {err.strip()}")
    await transport.put(zipapp, f"{target.home}/{AGENT_FILE}.new")
    await transport.run(f"mv {home}/{AGENT_FILE}.new {home}/{AGENT_FILE}")
    try:
        facts = await transport.call("hello")
    except HostUnreachable:
        facts = None
    if facts is not None and facts.get("build") != build:
        await stop_agent(transport, target)  # an older agent: its instances run on
        facts = None
    if facts is None:
        facts = await transport.call("hello")  # starts it (agent_start) and waits for it
    if facts.get("build") != build or facts.get("version") != __version__:
        raise PreflightError(
            f"the agent on the host runs {facts.get('version')} ({facts.get('build')}), "
            f"not this slipway's {__version__} ({build})",
            fix="see its agent.log",
        )
    return dict(facts) | {"checked_at": time.time()}


async def stop_agent(transport: SshTransport, target: SshTarget) -> None:
    home = shlex.quote(target.home)
    await transport.run(
        f"kill $({shlex.quote(target.python)} -c 'import json,sys; "
        f'print(json.load(open(sys.argv[1]))["pid"])\' {home}/agent.pid) 2>/dev/null; '
        f"for i in $(seq 50); do test -S {home}/agent.sock || break; sleep 0.1; done"
    )


async def upgrade_host(service: Service, name: str) -> Host:
    host = stored.host(service.store, name)
    if host.ssh is None:
        raise UsageError("the local host's agent is this daemon itself: nothing to upgrade")
    transport = SshTransport(host, start_command(host.ssh), stored.generation(service.store))
    try:
        facts = await install_agent(service, transport, host.ssh)
    finally:
        await transport.close()
    ready = Host(host.name, host.address, host.roles, host.ssh, facts["version"], facts)
    stored.save(service.store, ready)
    service.fleet.forget(name)
    return ready


async def set_roles(service: Service, name: str, roles: list[str]) -> Host:
    """A host that stops being an lb host stops its HAProxy (it left the tier)."""
    host = stored.host(service.store, name)
    changed = Host(host.name, host.address, check_roles(roles), host.ssh, host.agent_version,
                   host.facts)  # fmt: skip
    stored.save(service.store, changed)
    if host.has("lb") and not changed.has("lb"):
        await vip_ops.stop_everywhere(service, [changed])  # gives the address away first
        await service.fleet.transport(name).call("router.stop", timeout=30.0, _timeout=40.0)
    if host.has("lb") != changed.has("lb"):
        await vip_ops.apply_quietly(service)
        await firewall_ops.apply_quietly(service)
    return changed


def set_capacity(service: Service, name: str, cpu: float | None, memory: int | None) -> Host:
    """What slipway may place on the host from now on (None: what the host has). Instances
    already there stay: a host set below what it runs takes no new ones until some leave."""
    setting = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    return stored.update_facts(service.store, name, capacity=setting or None)


async def remove_host(service: Service, name: str) -> None:
    """Only a host that runs nothing: first its roles go (no new instances land there), and
    each app's instances move elsewhere with a scale (the CLI does both)."""
    host = stored.host(service.store, name)
    if host.local:
        raise UsageError("the local host cannot leave the fleet", fix="take its roles instead")
    left = [i for i in service.store.instances() if i.host == name]
    if left:
        apps = sorted({i.app for i in left})
        raise Conflict(
            f"host {name} still runs {len(left)} instance(s) of {', '.join(apps)}",
            fix=f"`slipway hosts remove {name}` moves them first (or scale them elsewhere)",
        )
    if host.has("lb"):
        raise Conflict(f"host {name} is an lb host", fix=f"`slipway hosts roles {name}` first")
    replica = service.replicator.settings
    if replica is not None and replica.host == name:
        raise Conflict(
            f"host {name} keeps the control plane's replica",
            fix="`slipway control replicate --to OTHER` (or `--off`) first",
        )
    try:
        assert host.ssh is not None
        await stop_agent(SshTransport(host, generation=stored.generation(service.store)), host.ssh)
    except SlipwayError:
        pass  # unreachable: it is removed from the fleet anyway
    stored.remove(service.store, name)
    service.fleet.forget(name)


async def host_views(service: Service) -> list[dict[str, Any]]:
    """Every host with its roles, agent version, whether it answers, load, instances: every
    host asked at once (a listing costs the slowest host, not the sum)."""
    instances = service.store.instances()
    replica = service.replicator.view()
    hosts = service.fleet.hosts()
    answers = await asyncio.gather(*(_ask(service, host) for host in hosts))
    room = usage.room(service.store, hosts)
    views = []
    for host, (facts, reachable, error, firewall) in zip(hosts, answers, strict=True):
        reach = service.host_watch.state(host.name)
        state = "up" if reachable else "unreachable"
        if reach is not None and reach.state == "down":
            state = "down"  # unreachable, and the lb hosts see none of its instances up
        views.append(
            {
                "name": host.name,
                "address": host.address,
                "roles": sorted(host.roles),
                "agent": facts.get("version"),
                "reachable": reachable,
                "state": state,
                "since": reach.since if reach is not None and state != "up" else None,
                "error": error,
                "load": facts.get("load"),
                "cores": facts.get("cores"),
                "memory": facts.get("memory"),
                "instances": len([i for i in instances if i.host == host.name]),
                # what slipway may place there, and what its instances take of it
                "capacity": dataclasses.asdict(room.total[host.name]),
                "used": dataclasses.asdict(room.total[host.name] - room.free[host.name]),
                "fingerprint": host.ssh.fingerprint if host.ssh else None,
                "firewall": firewall,
                "replica": replica if replica.get("host") == host.name else None,
            }
        )
    return views


async def _ask(
    service: Service, host: Host
) -> tuple[dict[str, Any], bool, str | None, dict[str, Any] | None]:
    """(facts, reachable, error, firewall) of one host, as it answers now."""
    reach = service.host_watch.state(host.name)
    if reach is not None and reach.state != "up":  # no need to wait for it again
        return host.facts, False, reach.error, None
    try:
        transport = service.fleet.transport(host.name)
        facts = await transport.call("hello", _timeout=3.0)
        firewall = None
        if not host.local:
            firewall = await transport.call("firewall.verify", _timeout=3.0)
    except SlipwayError as exc:
        return host.facts, False, exc.message, None
    return facts, True, None, firewall


async def refresh_seen_as(service: Service) -> None:
    """At start: the address each remote host sees this control plane by, as the connection
    says now, saved where it changed. A control plane restored on another machine is seen
    at another address: the lb hosts' request logs must come to it, and the firewalls must
    let it in. A host that does not answer keeps what was known (briefly tried, all at once)."""

    async def one(host: Host) -> None:
        transport = service.fleet.transport(host.name)
        if not isinstance(transport, SshTransport):
            return
        try:
            address = await transport.seen_as(timeout=3.0)
        except (SlipwayError, TimeoutError):
            return
        if address != host.facts.get("client"):
            log.info("host %s sees this control plane at %s now", host.name, address)
            facts = host.facts | {"client": address}
            stored.save(service.store, dataclasses.replace(host, facts=facts))

    await asyncio.gather(*(one(h) for h in service.fleet.hosts() if not h.local))
