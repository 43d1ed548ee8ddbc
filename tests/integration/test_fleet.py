"""A fleet on this machine: two lb hosts and three app hosts, each a network namespace with its
own address and a real sshd, each running slipway's agent installed over SSH; the control
plane in the root namespace. One testbed for the whole module (building it takes ~1 s,
adding the hosts ~2 s); each test leaves the fleet serving and its hosts reachable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import App, Slipway, stop_all, wait_for
from tests.integration.testbed import Bed

LBS, APPS = ("lb1", "lb2"), ("app1", "app2", "app3")
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


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    bed = Bed(Path(tempfile.mkdtemp(prefix="swfleet-", dir="/tmp")))
    work = Path(tempfile.mkdtemp(prefix="swfapp-", dir="/tmp"))
    slipway = Slipway(home=bed.folder / "control", workdir=work)
    try:
        bed.up([*LBS, *APPS])
        slipway.run("up")
        slipway.run("hosts", "roles", "local")  # the control host serves nothing
        app = slipway.make_app()
        fleet = Fleet(slipway, bed, app)
        for name in (*LBS, *APPS):
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


def test_hosts_are_ready_and_instances_spread_over_the_app_hosts(fleet: Fleet) -> None:
    hosts = {h["name"]: h for h in fleet.slipway.json("hosts")}
    assert set(hosts) == {"local", *LBS, *APPS}
    assert all(h["reachable"] and h["agent"] for h in hosts.values())
    assert hosts["lb1"]["roles"] == ["lb"] and hosts["app2"]["roles"] == ["app"]
    assert serving_hosts(fleet) == sorted(APPS)  # one each: spread evenly
    assert fleet.release_on("lb1") == fleet.release_on("lb2")


def test_a_changed_host_key_is_refused(fleet: Fleet) -> None:
    wrong = fleet.bed.fingerprint("app1")  # another host's key
    host = fleet.bed.hosts["app2"]
    refused = fleet.slipway.run(
        "hosts", "add", "app2b", "--address", host.address, "--role", "app",
        "--key", str(fleet.bed.key), "--remote-home", str(host.root / "other"),
        "--fingerprint", wrong, check=False,
    )  # fmt: skip
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"not the pinned {wrong}: refused" in said, said
    assert "app2b" not in {h["name"] for h in fleet.slipway.json("hosts")}


def test_deploy_rollback_and_scale_across_hosts_fail_no_request(fleet: Fleet) -> None:
    with (
        BackgroundLoad(fleet.url("lb1"), concurrency=4) as one,
        BackgroundLoad(fleet.url("lb2"), concurrency=4) as two,
    ):
        fleet.configure()
        fleet.slipway.deploy(fleet.app)
        new = fleet.slipway.app_status("hello")["current_release"]
        fleet.slipway.run("rollback", "--app", "hello")
        old = fleet.slipway.app_status("hello")["current_release"]
        fleet.slipway.run("scale", "web=5", "--app", "hello")
        results = one.stop(), two.stop()
    for result in results:
        assert result.failed == 0 and result.sent > 50, result.summary()
    assert new != old and fleet.release_on("lb1") == fleet.release_on("lb2") == old
    placed = serving_hosts(fleet)
    assert len(placed) == 5 and {placed.count(h) for h in APPS} == {1, 2}  # evenly
    fleet.slipway.run("scale", "web=3", "--app", "hello")


def test_a_host_unreachable_when_a_deploy_starts_is_named_and_can_be_skipped(
    fleet: Fleet,
) -> None:
    before = fleet.slipway.app_status("hello")["current_release"]
    fleet.bed.cut("app3")
    try:
        fleet.configure()
        refused = fleet.slipway.deploy(fleet.app, check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert "host app3 does not answer" in said and "nothing was built" in said, said
        assert "--skip-host app3" in said
        assert fleet.slipway.app_status("hello")["current_release"] == before
        fleet.slipway.deploy(fleet.app, "--skip-host", "app3", "--reason", "app3 is down")
        after = fleet.slipway.app_status("hello")
        assert after["current_release"] != before
        # app3's instances are left retiring: nothing can stop them until it answers again
        new = [i for i in instances(fleet, False) if i["release"] == after["current_release"]]
        assert {i["host"] for i in new} == {"app1", "app2"}
        assert fleet.release_on("lb1") == fleet.release_on("lb2") == after["current_release"]
    finally:
        fleet.bed.mend("app3")
    wait_for(lambda: all(h["reachable"] for h in fleet.slipway.json("hosts")), 30, "app3 back")
    fleet.configure()
    fleet.slipway.deploy(fleet.app)  # spread over all three again
    assert serving_hosts(fleet) == sorted(APPS)


def test_a_host_lost_during_a_deploy_stops_it_and_every_lb_agrees(fleet: Fleet) -> None:
    before = fleet.slipway.app_status("hello")["current_release"]
    fleet.configure(env={"BOOT_SECONDS": "4"})  # time to lose it while it boots
    deploy = subprocess.Popen(
        [*fleet.slipway.cli(), "deploy", "--app", str(fleet.app.dir)],
        env=fleet.slipway.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def booting() -> bool:
            return any(
                i["role"] == "starting" and i["state"] == "running" for i in instances(fleet)
            )

        wait_for(booting, 30, "the new instances to start")
        fleet.bed.cut("app2")
        said, _ = deploy.communicate(timeout=120)
    finally:
        fleet.bed.mend("app2")
    assert deploy.returncode != 0, said
    assert "app2" in said and "does not answer" in said, said
    status = fleet.slipway.app_status("hello")
    failed = status["last_deployment"]["to_release"]
    assert status["current_release"] == before and status["last_deployment"]["outcome"] == "failed"
    assert fleet.release_on("lb1") == fleet.release_on("lb2") == before
    wait_for(lambda: all(h["reachable"] for h in fleet.slipway.json("hosts")), 30, "app2 back")
    wait_for(
        lambda: all(i["release"] != failed for i in instances(fleet)),
        60,
        "the stopped deployment's instances to be gone, app2's too",
    )


def test_the_control_plane_killed_mid_fleet_deploy_finishes_it_everywhere(fleet: Fleet) -> None:
    fleet.slipway.run("down")
    fleet.slipway.run("up", env=fleet.slipway.env(SLIPWAY_FAULT="crash-at:shift:recorded"))
    pid = int((fleet.slipway.home / "daemon.pid").read_text())
    fleet.configure()
    with BackgroundLoad(fleet.url("lb1"), concurrency=4) as load:
        fleet.slipway.deploy(fleet.app, check=False)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the daemon to die")
        up = fleet.slipway.run("up").stdout
        status = fleet.slipway.wait_idle("hello", timeout=60)
        result = load.stop()
    assert "was interrupted at step 'shift': finishing it" in up, up
    assert result.failed == 0, result.summary()
    new = status["current_release"]
    assert status["last_deployment"]["outcome"] == "succeeded"
    assert fleet.release_on("lb1") == fleet.release_on("lb2") == new


def test_an_lb_host_that_missed_a_deploy_is_brought_up_to_date(fleet: Fleet) -> None:
    fleet.bed.cut("lb2")
    try:
        fleet.configure()
        fleet.slipway.deploy(fleet.app, "--skip-host", "lb2", "--reason", "lb2 is down")
        new = fleet.slipway.app_status("hello")["current_release"]
        assert fleet.release_on("lb1") == new
    finally:
        fleet.bed.mend("lb2")

    def current() -> bool:
        try:
            return bool(fleet.release_on("lb2") == new)
        except (httpx.HTTPError, ValueError):  # not back yet, or not synced yet (503)
            return False

    wait_for(current, 60, "lb2 to serve the release it missed", every=0.5)


def test_an_agent_of_another_build_is_refused_until_upgraded(fleet: Fleet) -> None:
    home = fleet.bed.hosts["app1"].home
    agent = home / "agent.pyz"
    agent.write_bytes(agent.read_bytes() + b"\n")  # another build: another digest
    pid = int(json.loads((home / "agent.pid").read_text())["pid"])
    os.kill(pid, signal.SIGTERM)  # the next call starts it again, from the changed file
    fleet.configure()
    refused = fleet.slipway.deploy(fleet.app, check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "slipway hosts upgrade app1" in said, said
    fleet.slipway.run("hosts", "upgrade", "app1")
    fleet.slipway.deploy(fleet.app)


def test_logs_come_from_the_instances_on_every_host(fleet: Fleet) -> None:
    serving = [i for i in instances(fleet) if i["role"] == "serving"]
    release = serving[0]["release"]
    every = fleet.slipway.run("logs", "--app", "hello", "--release", release, "--json")
    lines = [json.loads(line) for line in every.stdout.splitlines()]
    hosts_of = {i["id"]: i["host"] for i in serving}
    said = {hosts_of[ln["instance"]] for ln in lines if "listening on" in ln["message"]}
    assert said == set(APPS), lines
    # a filter reads each host's files there, page by page, and keeps what matches
    grep = fleet.slipway.run(
        "logs", "--app", "hello", "--release", release, "--grep", r"listening on 10\.207", "--json"
    )
    matched = [json.loads(line) for line in grep.stdout.splitlines()]
    assert {hosts_of[ln["instance"]] for ln in matched} == set(APPS), matched
    assert all("listening on 10.207" in ln["message"] for ln in matched)


def test_a_rolling_deploy_and_its_rollback_fail_no_request(fleet: Fleet) -> None:
    rolling = {"strategy": "rolling", "max_unavailable": "1 host"}
    fleet.configure(deploy=rolling)
    fleet.slipway.deploy(fleet.app)  # from blue-green to rolling: this one still rolls
    before = fleet.slipway.app_status("hello")["current_release"]
    with (
        BackgroundLoad(fleet.url("lb1"), concurrency=4) as one,
        BackgroundLoad(fleet.url("lb2"), concurrency=4) as two,
    ):
        fleet.configure(deploy=rolling)
        fleet.slipway.deploy(fleet.app)
        rolled = fleet.slipway.app_status("hello")["current_release"]
        fleet.slipway.run("rollback", "--app", "hello")
        results = one.stop(), two.stop()
    for result in results:
        assert result.failed == 0 and result.sent > 50, result.summary()
    assert rolled != before
    assert fleet.release_on("lb1") == fleet.release_on("lb2") == before
    live = instances(fleet)
    assert {i["release"] for i in live} == {before}  # nothing of the rolled release is left
    assert serving_hosts(fleet) == sorted(APPS)  # each replaced on its own host

    # the control plane killed mid-roll, new instances recorded but not started: on restart
    # the roll goes on where it was, and nothing runs twice or unnamed
    fleet.slipway.run("down")
    fleet.slipway.run("up", env=fleet.slipway.env(SLIPWAY_FAULT="crash-at:roll:planned"))
    pid = int((fleet.slipway.home / "daemon.pid").read_text())
    fleet.configure(deploy=rolling)
    with BackgroundLoad(fleet.url("lb1"), concurrency=4) as load:
        fleet.slipway.deploy(fleet.app, check=False)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the daemon to die")
        up = fleet.slipway.run("up").stdout
        status = fleet.slipway.wait_idle("hello", timeout=90)
        result = load.stop()
    assert "was interrupted at step 'roll': finishing it" in up, up
    assert result.failed == 0, result.summary()
    assert status["last_deployment"]["outcome"] == "succeeded"
    assert {i["release"] for i in instances(fleet)} == {status["current_release"]}
    assert serving_hosts(fleet) == sorted(APPS)
    fleet.configure()
    fleet.slipway.deploy(fleet.app)
