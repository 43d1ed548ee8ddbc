"""A fleet on this machine: two lb hosts and three app hosts, each a network namespace with its
own address and a real sshd, each running slipway's agent installed over SSH; the control
plane in the root namespace. One testbed for the whole module (building it takes ~1 s,
adding the hosts ~2 s); each test leaves the fleet serving and its hosts reachable."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from slipway.loadgen import BackgroundLoad, LoadResult, Sample
from tests.integration.conftest import wait_for
from tests.integration.fleetbed import Fleet, instances, running_fleet, serving_hosts
from tests.integration.testbed import Bed

LBS, APPS = ("lb1", "lb2"), ("app1", "app2", "app3")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    bed = Bed(Path(tempfile.mkdtemp(prefix="swfleet-", dir="/tmp")))
    with running_fleet(bed, [*LBS, *APPS], "swfapp-") as running:
        yield running


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


def test_the_app_runs_as_its_run_user_on_every_host(fleet: Fleet) -> None:
    """`[run] user` on remote hosts as on the control host: each host's agent gives the
    shipped release to the user's group (nothing to others) and starts the app as it."""
    name = f"swt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", name], check=True)  # fmt: skip
    try:
        user = pwd.getpwnam(name)
        fleet.configure(run={"user": name}, build={"python": "/usr/bin/python3"})
        fleet.slipway.deploy(fleet.app)
        release = fleet.slipway.app_status("hello")["current_release"]
        serving = [i for i in instances(fleet) if i["role"] == "serving"]
        assert sorted(i["host"] for i in serving) == sorted(APPS)
        for instance in serving:
            assert psutil.Process(instance["pid"]).uids().real == user.pw_uid, instance
            folder = fleet.bed.hosts[instance["host"]].home / "apps" / "hello" / "releases"
            (shipped,) = [f for f in folder.iterdir() if (f / "app.py").exists()
                          and f.stat().st_gid == user.pw_gid]  # fmt: skip
            for path in [shipped, *shipped.rglob("*")]:
                if not path.is_symlink():
                    assert path.stat().st_mode & 0o007 == 0, f"others may read {path}"
        assert fleet.release_on("lb1") == fleet.release_on("lb2") == release
    finally:
        fleet.configure()  # as root again: the other tests' app
        fleet.slipway.deploy(fleet.app)
        subprocess.run(["userdel", name], check=False)


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


def deploy_through_a_crash(
    fleet: Fleet, point: str, settle: float, **sections: Any
) -> tuple[str, dict[str, Any], LoadResult]:
    """Under load through lb1: a deploy whose daemon dies at `point`, then `slipway up`;
    what `up` said, the app once idle again, and the load's result."""
    fleet.slipway.run("down")
    fleet.slipway.run("up", env=fleet.slipway.env(SLIPWAY_FAULT=f"crash-at:{point}"))
    pid = int((fleet.slipway.home / "daemon.pid").read_text())
    fleet.configure(**sections)
    with BackgroundLoad(fleet.url("lb1"), concurrency=4) as load:
        fleet.slipway.deploy(fleet.app, check=False)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, "the daemon to die")
        up = fleet.slipway.run("up").stdout
        status = fleet.slipway.wait_idle("hello", timeout=settle)
        result = load.stop()
    return up, status, result


def test_the_control_plane_killed_mid_fleet_deploy_finishes_it_everywhere(fleet: Fleet) -> None:
    up, status, result = deploy_through_a_crash(fleet, "shift:recorded", 60)
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
    up, status, result = deploy_through_a_crash(fleet, "roll:planned", 90, deploy=rolling)
    assert "was interrupted at step 'roll': finishing it" in up, up
    assert result.failed == 0, result.summary()
    assert status["last_deployment"]["outcome"] == "succeeded"
    live = instances(fleet)
    shown = [(i["release"], i["id"], i["role"], i["host"], i.get("status")) for i in live]
    assert {i["release"] for i in live} == {status["current_release"]}, shown
    assert serving_hosts(fleet) == sorted(APPS)
    fleet.configure()
    fleet.slipway.deploy(fleet.app)


def test_a_canary_splits_traffic_across_the_fleet_and_is_judged_on_every_lb(
    fleet: Fleet,
) -> None:
    canary = {
        "strategy": "canary",
        "steps": [10, 50, 100],
        "step_min_seconds": "3s",
        "step_min_requests": 30,
    }
    analysis = {"latency_quantiles": [0.5, 0.9]}  # p99 takes minutes of traffic to prove
    with (
        BackgroundLoad(fleet.url("lb1"), concurrency=3, rate=75) as one,
        BackgroundLoad(fleet.url("lb2"), concurrency=3, rate=75) as two,
    ):
        fleet.configure(deploy=canary, analysis=analysis)
        out = fleet.slipway.deploy(fleet.app).stdout
        results = one.stop(), two.stop()
    assert "no regression through 2 step(s)" in out, out
    for result in results:
        assert result.failed == 0 and result.sent > 50, result.summary()
    verdicts = fleet.slipway.json("analysis", "--app", "hello")["verdicts"]
    first = next(v for v in verdicts if v["decision"] == "promote")["evidence"]["verdict"]
    share = first["candidate_requests"] / (first["candidate_requests"] + first["stable_requests"])
    assert 0.05 < share < 0.15, share  # both lb hosts split 10% the same way

    # errors seen only through lb2: its request log reaches the judge, which rolls back
    good = fleet.slipway.app_status("hello")["current_release"]
    with BackgroundLoad(fleet.url("lb2"), concurrency=4, rate=150) as load:
        fleet.configure(deploy=canary, analysis=analysis, env={"FAIL_RATE": "0.2"})
        refused = fleet.slipway.deploy(fleet.app, check=False)
        load.stop()
    assert refused.returncode == 1 and "error rate" in refused.stderr, refused.stderr
    assert fleet.release_on("lb1") == fleet.release_on("lb2") == good
    fleet.configure()
    fleet.slipway.deploy(fleet.app)


def test_the_virtual_address_moves_off_an_lb_host_that_fails(fleet: Fleet) -> None:
    address = f"{fleet.bed.subnet}.100"
    url = f"http://{address}:{fleet.app.port}/"

    def vip() -> dict[str, Any]:
        return dict(fleet.slipway.json("hosts", "vip"))

    def held_by_one() -> str | None:
        holders = vip()["holders"]
        return str(holders[0]) if len(holders) == 1 else None

    def after(fault: Callable[[str], None], what: str) -> tuple[str, str]:
        """Under load through the address: the fault on its holder; the address moves to
        the other lb host, and every request sent a few seconds after the fault succeeds."""
        holder = wait_for(held_by_one, 20, "one lb host to hold the address", every=0.2)
        samples: list[Sample] = []
        with BackgroundLoad(url, concurrency=2, rate=50, samples=samples):
            wait_for(lambda: any(s.status == 200 for s in samples), 10, "traffic via the address")
            struck = time.monotonic()
            fault(holder)
            moved = wait_for(lambda: (held_by_one() or holder) != holder and held_by_one(), 15,
                             f"the address to move ({what})")  # fmt: skip
            wait_for(lambda: time.monotonic() > struck + SETTLE + 2, SETTLE + 15, "more load")
        failed = [s for s in samples if s.status != 200]
        late = [s for s in samples if s.t > struck + SETTLE]
        assert len(late) > 20 and all(s.status == 200 for s in late), (what, late[:3])
        # none failed before the fault (one in flight then may: 1.7 s slow in CI, then cut)
        assert all(s.done >= struck for s in failed), failed[:3]
        return holder, str(moved)

    SETTLE = 5.0  # seconds: 3 adverts of 0.5 s and the skew, with room for a busy machine
    shown = fleet.slipway.run("hosts", "vip", f"{address}/24").stdout
    assert f"virtual address {address}/24" in shown, shown
    cut: list[str] = []  # mended whatever happens: the tests after this one need the host

    def cut_link(name: str) -> None:
        cut.append(name)
        fleet.bed.cut(name)

    try:
        first, second = after(cut_link, "its link down")
        fleet.bed.mend(first)
        assert held_by_one() == second  # nopreempt: the address does not move back

        def crash(name: str) -> None:  # the lb host's every process but sshd: HAProxy too
            for pid in fleet.bed.pids(name):
                if "sshd" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                    os.kill(pid, signal.SIGKILL)

        _, back = after(crash, "its HAProxy, keepalived and agent killed")
        assert back == first
        # the crashed host is brought back (agent, HAProxy, keepalived) and stands by
        wait_for(
            lambda: all(s["running"] for s in vip()["hosts"].values()),
            60,
            "keepalived to run again on both lb hosts",
            every=0.5,
        )
        assert "standby" in fleet.slipway.run("hosts").stdout
    finally:
        for name in cut:
            fleet.bed.mend(name)
        fleet.slipway.run("hosts", "vip", "--remove")
    assert vip()["address"] is None
    wait_for(lambda: "inet " + address not in lb_addresses(fleet), 10, "the address gone")


def lb_addresses(fleet: Fleet) -> str:
    return "".join(
        subprocess.run(
            ["ip", "-n", fleet.bed.hosts[lb].netns, "-o", "-4", "addr"],
            capture_output=True, text=True, check=False,
        ).stdout
        for lb in LBS
    )  # fmt: skip


def test_an_instance_port_accepts_only_the_lb_hosts(fleet: Fleet) -> None:
    serving = [i for i in instances(fleet) if i["role"] == "serving"]
    target = next(i for i in serving if i["host"] == "app1")
    address, port = fleet.bed.hosts["app1"].address, int(target["port"])

    hosts = {h["name"]: h for h in fleet.slipway.json("hosts")}
    firewall = hosts["app1"]["firewall"]
    assert firewall["ok"] and port in firewall["ports"], firewall
    assert reaches(fleet, "lb1", address, port) and reaches(fleet, "lb2", address, port)
    assert not reaches(fleet, "app2", address, port)  # another app host: nobody instances answer
    assert httpx.get(f"http://{address}:{port}/", timeout=5).status_code == 200  # control
    # the port of an instance that is gone leaves the set; a new instance's port joins it
    fleet.configure()
    fleet.slipway.deploy(fleet.app)
    after = {h["name"]: h for h in fleet.slipway.json("hosts")}["app1"]["firewall"]
    now = [int(i["port"]) for i in instances(fleet) if i["host"] == "app1"]
    assert after["ok"] and set(now) <= set(after["ports"]), (now, after)


def reaches(fleet: Fleet, source: str, address: str, port: int) -> bool:
    """A TCP connection from the namespace of host `source` succeeds within 1 s."""
    probe = (
        "import socket,sys\n"
        "try:\n"
        f"    socket.create_connection(({address!r}, {port}), timeout=1).close()\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    netns = fleet.bed.hosts[source].netns
    done = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c", probe], check=False)
    return done.returncode == 0


def test_the_public_port_accepts_only_what_edge_allows(fleet: Fleet) -> None:
    """`[edge] allow` at the lb hosts' firewalls too: other clients' packets never reach
    HAProxy (which would answer them 403)."""
    lb1 = fleet.bed.hosts["lb1"].address
    assert reaches(fleet, "app2", lb1, fleet.app.port)  # open to all by default
    try:
        fleet.configure(edge={"allow": [f"{fleet.bed.gateway}/32"]})  # the tests' namespace
        fleet.slipway.deploy(fleet.app)
        for lb in LBS:
            shown = {h["name"]: h for h in fleet.slipway.json("hosts")}[lb]["firewall"]
            assert shown["ok"] and shown["public"] == {str(fleet.app.port): [
                f"{fleet.bed.gateway}/32"]}, shown  # fmt: skip
        assert httpx.get(fleet.url("lb1"), timeout=5).status_code == 200
        assert not reaches(fleet, "app2", lb1, fleet.app.port)
    finally:
        fleet.configure()
        fleet.slipway.deploy(fleet.app)
    assert reaches(fleet, "app2", lb1, fleet.app.port)


def test_doctor_checks_every_host_of_the_fleet(fleet: Fleet) -> None:
    report = fleet.slipway.run("doctor", "--json", check=False)
    found = {f["check"]: f for f in json.loads(report.stdout)["findings"]}
    for host in (*LBS, *APPS):
        assert found[f"{host} agent"]["level"] == "ok", found[f"{host} agent"]
        assert found[f"{host} clock"]["level"] == "ok", found[f"{host} clock"]  # one machine
        assert found[f"{host} disk"]["level"] in ("ok", "warn", "fail")
        assert f"{host} ssh" in found  # the machine's own sshd_config: whatever it allows
    for host in APPS:
        assert found[f"{host} firewall"]["level"] == "ok", found[f"{host} firewall"]
        assert found[f"{host} ports"]["level"] == "ok", found[f"{host} ports"]
