"""The fleet on this machine: lb and app hosts, each a network namespace with its own address
on a bridge and a real sshd (the integration tests' testbed, with this benchmark's own names
and subnet), slipway's agent installed on each over SSH by `slipway hosts add`, the control
plane (the real CLI and daemon, bench.zero_downtime's driver) in the root namespace."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.testbed import Bed

from bench.fleet.files import ShipWatch
from bench.zero_downtime.control import (
    BUILD_COMMAND,
    GATES_OFF,
    STOP_GRACE_SECONDS,
    Operation,
    Slipway,
    app_env,
    copy_hello,
)
from slipway.paths import Home

# Our own names and subnet: never the integration tests' (swft-, swft0, 10.207.0).
PREFIX, BRIDGE, SUBNET = "swbf-", "swbf0", "10.209.0"


def bed(folder: Path) -> Bed:
    return Bed(folder, subnet=SUBNET, prefix=PREFIX, bridge=BRIDGE)


def fleet_toml(
    name: str, port: int, env: dict[str, str], web: int, hosts: list[str], keep_warm: str
) -> str:
    """bench.zero_downtime's app settings (same health checks, grace, gates off), listening
    on every address of the lb hosts, `web` instances on `hosts` only."""
    env_lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in env.items())
    return f"""name = "{name}"

[listen]
address = "0.0.0.0"
port = {port}

[processes]
web = "python app.py --port $PORT"

[build]
command = "{BUILD_COMMAND}"

[healthcheck]
path = "/up"
interval = "500ms"
timeout = "1s"
healthy_threshold = 2

[scale]
web = {web}

[placement]
hosts = {json.dumps(hosts)}

[env]
{env_lines}

[deploy]
strategy = "bluegreen"
health_timeout = "30s"
drain_timeout = "5s"
stop_grace = "{STOP_GRACE_SECONDS:g}s"
keep_warm = "{keep_warm}"
{GATES_OFF}"""


@dataclass
class FleetApp:
    """One app of the benchmark: a copy of hello, `web` instances on `hosts`."""

    name: str
    dir: Path
    port: int
    web: int
    hosts: list[str]
    keep_warm: str = "10m"

    def write(self, greeting: str) -> None:
        toml = fleet_toml(
            self.name, self.port, app_env(greeting, 0), self.web, self.hosts, self.keep_warm
        )
        self.dir.joinpath("slipway.toml").write_text(toml)


class Fleet:
    def __init__(
        self,
        root: Path,
        lbs: list[str],
        apps: list[str],
        testbed: Bed | None = None,
        spare: tuple[str, ...] = (),
    ) -> None:
        """`testbed`: another bench's names and subnet (default: this one's); `spare`: hosts
        of the bed that are not added to slipway by `up` (add them with `add_host`)."""
        self.root = root
        self.lbs, self.app_hosts, self.spare = lbs, apps, spare
        self.bed = testbed or bed(root / "bed")
        # the control plane's port for its own listeners is never used (roles local)
        self.slipway = Slipway(root, root / "unused", 0, 0.0)
        self.apps: dict[str, FleetApp] = {}

    def up(self) -> None:
        self.bed.up([*self.lbs, *self.app_hosts, *self.spare])
        self.slipway.up()
        self.slipway.cli("hosts", "roles", "local")  # the control host serves nothing
        for name in [*self.lbs, *self.app_hosts]:
            self.add_host(name, "lb" if name in self.lbs else "app")

    def add_host(self, name: str, *roles: str) -> None:
        host = self.bed.hosts[name]
        self.slipway.cli(
            "hosts", "add", name, "--address", host.address,
            *(arg for role in roles for arg in ("--role", role)),
            "--key", str(self.bed.key), "--remote-home", str(host.home),
            "--fingerprint", self.bed.fingerprint(name),
        )  # fmt: skip

    def add_app(self, name: str, port: int, web: int, hosts: list[str]) -> FleetApp:
        app = FleetApp(name, copy_hello(self.root / name), port, web, hosts)
        self.apps[name] = app
        return app

    def deploy(self, app: FleetApp, greeting: str) -> Operation:
        app.write(greeting)
        return self.slipway.timed("deploy", "deploy", "--app", str(app.dir))

    def rollback(self, app: FleetApp) -> Operation:
        return self.slipway.timed("rollback", "rollback", "--app", app.name)

    def url(self, lb: str, app: FleetApp) -> str:
        return f"http://{self.bed.hosts[lb].address}:{app.port}/"

    def admin_socket(self, lb: str) -> Path:
        return Home(self.bed.hosts[lb].home).haproxy_dir / "admin.sock"

    def ship_watch(self, app: FleetApp) -> ShipWatch:
        hosts = {h: Home(self.bed.hosts[h].home).app_dir(app.name) for h in app.hosts}
        return ShipWatch(Home(self.slipway.home).app_dir(app.name), hosts)

    def hosts(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(self.slipway.cli("hosts", "--json").stdout)
        return listed

    def netns_inodes(self) -> set[int]:
        """The network namespaces of the hosts (their processes are the benchmark's)."""
        return {os.stat(f"/run/netns/{h.netns}").st_ino for h in self.bed.hosts.values()}

    def in_netns(self, host: str, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.bed.hosts[host].netns, *argv]

    def down(self) -> list[str]:
        """`slipway down --all`, then every namespace, the bridge and their folder."""
        try:
            leftovers = self.slipway.down_all()
        finally:
            self.bed.down()
        return leftovers
