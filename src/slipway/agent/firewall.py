"""A fleet host's firewall for slipway's own ports, kept by its agent: the ports its instances
listen on accept only the addresses the control plane allows (the lb hosts, this host, the
control host); nothing else of the host is touched. One nftables table of slipway's own
(`inet slipway`), replaced whole in one nftables transaction, so a rule is never half there;
its sets are read back to verify it.

The instance ports change with every deploy: the port of an instance joins the set before
the instance starts (it is never open to all), and leaves it once the instance is gone.
Standard library only."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slipway.agent.public_ports import PublicPort, rules
from slipway.errors import PreflightError, RouterError
from slipway.paths import Home
from slipway.runtime.local import LocalRuntime

log = logging.getLogger("slipway.agent")
TABLE = "slipway"
WATCH_EVERY = 2.0
MAX_ALLOWED = 1024


def render(allowed: list[str], ports: list[int], public: Sequence[PublicPort] = ()) -> str:
    """The whole table, replaced in one transaction (the empty `table` line makes the
    `delete` valid when the table does not exist yet). `public`: HAProxy's listeners on
    this host that only `[edge] allow` may reach (agent/public_ports.py)."""

    def elements(values: list[Any]) -> str:
        return f" elements = {{ {', '.join(str(v) for v in values)} }};" if values else ""

    public_sets, public_rules = rules(list(public))
    return (
        f"table inet {TABLE} {{}}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        f"    set instance_ports {{ type inet_service;{elements(sorted(set(ports)))} }}\n"
        f"    set allowed {{ type ipv4_addr;{elements(sorted(set(allowed)))} }}\n"
        + "".join(line + "\n" for line in public_sets)
        + "    chain input {\n"
        "        type filter hook input priority filter - 1; policy accept;\n"
        '        iif "lo" accept\n'
        "        tcp dport @instance_ports ip saddr != @allowed counter drop\n"
        + "".join(line + "\n" for line in public_rules)
        + "    }\n"
        "}\n"
    )


def check_allowed(allowed: list[str]) -> list[str]:
    if len(allowed) > MAX_ALLOWED:
        raise PreflightError(f"{len(allowed)} allowed addresses: at most {MAX_ALLOWED}")
    checked = []
    for address in allowed:
        try:
            checked.append(str(ipaddress.IPv4Address(address)))
        except ValueError:
            raise PreflightError(f'"{address}" is not an IPv4 address') from None
    return sorted(set(checked))


def read_sets(listing: str) -> dict[str, list[Any]]:
    """The sets of our table from `nft -j list table`, by name."""
    sets: dict[str, list[Any]] = {}
    for item in json.loads(listing).get("nftables", []):
        found = item.get("set")
        if found and found.get("table") == TABLE:
            sets[found["name"]] = list(found.get("elem", []))
    return sets


class Firewall:
    def __init__(self, home: Home, runtime: LocalRuntime) -> None:
        self.wanted_file = home.root / "firewall.json"
        self.runtime = runtime
        self._applied: str | None = None
        self._lock = asyncio.Lock()
        # ports of instances being started: in the table before their spec is written, and
        # kept there by every refresh meanwhile (the watch's would otherwise drop them)
        self.starting: set[int] = set()

    def _wanted(self) -> dict[str, Any]:
        try:
            wanted = json.loads(self.wanted_file.read_text())
        except (OSError, ValueError):
            return {}
        return wanted if isinstance(wanted, dict) else {}

    def _save(self, **changes: Any) -> None:
        tmp = self.wanted_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._wanted() | changes))
        tmp.replace(self.wanted_file)

    def allowed(self) -> list[str] | None:
        """The addresses the control plane allows, None if it keeps no firewall here."""
        allowed = self._wanted().get("allowed")
        return [str(a) for a in allowed] if isinstance(allowed, list) else None

    def public(self) -> list[PublicPort]:
        """HAProxy's listeners here that only `[edge] allow` may reach (set by the router)."""
        try:
            return [
                PublicPort(int(p["port"]), p["address"], tuple(p["v4"]), tuple(p["v6"]))
                for p in self._wanted().get("public", [])
            ]
        except (KeyError, TypeError, ValueError):
            return []

    async def apply(self, allowed: list[str]) -> dict[str, Any]:
        self._save(allowed=check_allowed(allowed))
        await self.refresh(force=True)
        return await self.verify()

    async def set_public(self, ports: list[PublicPort]) -> None:
        """After every HAProxy config change on this host: its filtered public listeners."""
        if ports != self.public():
            self._save(public=[dataclasses.asdict(p) for p in ports])
            await self.refresh()

    async def refresh(self, also: int | None = None, force: bool = False) -> None:
        """The table for the instances running now (and `also`, the port of one about to
        start). A failure is logged: serving never waits on the firewall."""
        allowed = self.allowed()
        if allowed is None:
            return
        async with self._lock:
            if also:
                self.starting.add(also)
            ports = await asyncio.to_thread(self.instance_ports)
            rules = render(allowed, ports + sorted(self.starting), self.public())
            if rules == self._applied and not force:
                return
            try:
                await asyncio.to_thread(nft, ["-f", "-"], rules)
                self._applied = rules
            except (RouterError, PreflightError) as exc:
                self._applied = None
                log.warning("the firewall could not be applied: %s", exc.message)

    async def verify(self) -> dict[str, Any]:
        """What the kernel holds against what it should: {ok, allowed, ports, problem}."""
        allowed = self.allowed()
        if allowed is None:
            return {"ok": None, "problem": "no firewall is kept on this host"}
        ports = sorted(set(await asyncio.to_thread(self.instance_ports)))
        try:
            sets = read_sets(await asyncio.to_thread(nft, ["-j", "list", "table", "inet", TABLE]))
        except (RouterError, PreflightError) as exc:
            return {"ok": False, "allowed": allowed, "ports": ports, "problem": exc.message}
        have_ports = sorted(int(p) for p in sets.get("instance_ports", []))
        have_allowed = sorted(str(a) for a in sets.get("allowed", []))
        problems = []
        if not set(ports) <= set(have_ports):
            problems.append(f"instance port(s) open to all: {sorted(set(ports) - set(have_ports))}")
        if have_allowed != sorted(allowed):
            problems.append(f"allowed {have_allowed}, should be {sorted(allowed)}")
        public = self.public()
        unfiltered = [p.port for p in public if p.set_name(p.families[0]) not in sets]
        if unfiltered:
            problems.append(f"public port(s) open beyond [edge] allow: {unfiltered}")
        return {
            "ok": not problems,
            "allowed": allowed,
            "ports": ports,
            "public": {str(p.port): [*p.v4, *p.v6] for p in public},
            "problem": "; ".join(problems) or None,
        }

    async def remove(self) -> None:
        async with self._lock:
            self.wanted_file.unlink(missing_ok=True)
            self._applied = None
            try:
                await asyncio.to_thread(
                    nft, ["-f", "-"], f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"
                )
            except (RouterError, PreflightError) as exc:
                log.warning("the firewall could not be removed: %s", exc.message)

    async def watch(self) -> None:
        """Forever: the table follows the instances (a shim that ended, an agent restarted)."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            await self.refresh()

    def instance_ports(self) -> list[int]:
        """The ports of the instances running here, from their specs."""
        ports = []
        for app, instance_id, _ in self.runtime.supervised():
            spec = self.runtime.instance_dir(app, instance_id) / "spec.json"
            try:
                port = json.loads(spec.read_text())["env"].get("PORT")
            except (OSError, ValueError, KeyError, AttributeError):
                continue
            if isinstance(port, str) and port.isdigit():
                ports.append(int(port))
        return ports


def nft(args: list[str], stdin: str | None = None) -> str:
    binary = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(binary).exists():
        raise PreflightError(
            "this host has no nft", fix="install nftables there: apt-get install nftables"
        )
    done = subprocess.run([binary, *args], input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RouterError(f"nft {' '.join(args)} failed: {done.stderr.strip()[-400:]}")
    return done.stdout
