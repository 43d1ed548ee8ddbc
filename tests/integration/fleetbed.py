"""A running fleet for the fleet tests: a testbed of namespaces (testbed.py), a control plane
in the root namespace that serves nothing itself, every bed host added over SSH, and the
hello app deployed over them. Shared by the modules that test a fleet (each with its own
bed: its own subnet, bridge and namespace prefix)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import App, Slipway, stop_all
from tests.integration.testbed import Bed

FAST = {
    "health_timeout": "20s",
    "drain_timeout": "5s",
    "stop_grace": "3s",
    "keep_warm": "5m",
}


class Fleet:
    def __init__(self, slipway: Slipway, bed: Bed, app: App) -> None:
        self.slipway, self.bed, self.app = slipway, bed, app

    def url(self, lb: str) -> str:
        return f"http://{self.bed.hosts[lb].address}:{self.app.port}/"

    def release_on(self, lb: str) -> str:
        return str(httpx.get(self.url(lb), timeout=5).json()["release"])

    def configure(self, **sections: Any) -> None:
        env = {"GREETING": f"g{time.monotonic_ns()}"} | sections.pop("env", {})
        self.app.write_config(
            listen={"address": "0.0.0.0", "port": self.app.port},
            scale=sections.pop("scale", {"web": 3}),
            deploy=FAST | sections.pop("deploy", {}),
            env=env,
            **sections,
        )

    def add(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        host = self.bed.hosts[name]
        role = "lb" if name.startswith("lb") else "app"
        return self.slipway.run(
            "hosts", "add", name, "--address", host.address, "--role", role,
            "--key", str(self.bed.key), "--remote-home", str(host.home),
            "--fingerprint", self.bed.fingerprint(name), *args, check=check,
        )  # fmt: skip

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.slipway.json("hosts")}


@contextlib.contextmanager
def running_fleet(bed: Bed, names: list[str], prefix: str) -> Iterator[Fleet]:
    """`names` (lb… and app… hosts) up with their agents, hello deployed over the app hosts;
    everything stopped and removed afterwards (a process left behind fails the module)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    slipway = Slipway(home=bed.folder / "control", workdir=work)
    try:
        bed.up(names)
        slipway.run("up")
        slipway.run("hosts", "roles", "local")  # the control host serves nothing
        app = slipway.make_app()
        fleet = Fleet(slipway, bed, app)
        for name in names:
            fleet.add(name)
        fleet.configure()
        slipway.deploy(app)
        yield fleet
    finally:
        leftovers = stop_all(slipway)
        bed.down()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    assert not leftovers, leftovers


def instances(fleet: Fleet, settled: bool = True) -> list[dict[str, Any]]:
    """With `settled`, once retired instances are gone (on hosts that answer)."""
    return fleet.slipway.ps("hello", settled=settled)


def serving_hosts(fleet: Fleet) -> list[str]:
    return sorted(i["host"] for i in instances(fleet) if i["role"] == "serving")
