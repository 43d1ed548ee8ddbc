"""Faults of a fleet, caused for real under load: an app host whose link goes down, one whose
every process is killed, and a control plane cut off from a host that still serves. Two lb
hosts and three app hosts, each a network namespace with its own sshd and slipway's agent
(testbed.py); a bed of its own (subnet, bridge, namespace prefix), so it can run beside
test_fleet.py's.

What is measured under load through both lb hosts: failed requests (no answer, or a 5xx) and
the slowest answer (a request HAProxy retried on another host waits for its connect timeout
first). The tests run in order and each leaves the fleet serving."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from slipway.hosts.reachability import DOWN_AFTER
from slipway.loadgen import BackgroundLoad, LoadResult, Sample
from tests.integration.conftest import wait_for
from tests.integration.fleetbed import Fleet, instances, running_fleet, serving_hosts
from tests.integration.testbed import Bed

LBS, APPS = ("lb1", "lb2"), ("app1", "app2", "app3")


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    bed = Bed(
        Path(tempfile.mkdtemp(prefix="swfx-", dir="/tmp")),
        subnet="10.208.0",
        prefix="swfx-",
        bridge="swfx0",
    )
    with running_fleet(bed, [*LBS, *APPS], "swfxapp-") as running:
        yield running


def state_of(fleet: Fleet, host: str) -> str:
    return str(fleet.hosts()[host]["state"])


def web_hosts(fleet: Fleet) -> list[str]:
    """Where the serving release's instances run that have traffic."""
    live = instances(fleet, settled=False)
    return sorted(i["host"] for i in live if i["role"] == "serving")


def stale_on(fleet: Fleet, host: str) -> list[dict[str, Any]]:
    """What the host runs besides the warm release (kept at weight 0 for an instant
    rollback; started again on a host that comes back)."""
    return [i for i in instances(fleet, settled=False) if i["host"] == host and i["role"] != "warm"]


def fired(fleet: Fleet, rule: str) -> list[dict[str, Any]]:
    events = fleet.slipway.json("alerts", "--app", "hello", "--history")["events"]
    return [e for e in events if e["rule"] == rule and e["state"] == "firing"]


def report(what: str, results: tuple[LoadResult, ...], since: float) -> str:
    """One line for the test log: what the fault cost the requests sent through each lb."""
    parts = [
        f"{r.sent} sent, {r.failed} failed, slowest {max(r.latencies_ms, default=0):.0f} ms"
        for r in results
    ]
    return f"{what}: {' | '.join(parts)} ({time.monotonic() - since:.1f}s of fault)"


UNDO = {"cut": "mend", "crash": "reboot"}
# The honest bound: a request in flight on the host when it dies gets no answer (nothing can
# tell HAProxy it is safe to replay), and each client has one in flight at most; every
# request sent after that is answered (measured: 0 or 1 of ~2,900 per lb host).
IN_FLIGHT = 4


def lose_a_host_under_load(fleet: Fleet, host: str, cause: str) -> tuple[LoadResult, ...]:
    """Cause the fault to `host` under load through both lbs; return once the control plane
    has it down and its instances serve again elsewhere, with what it cost each lb's
    clients, and bring the host back (a failure brings it back too: the fleet is shared)."""
    try:
        return measure_loss(fleet, host, cause)
    finally:
        getattr(fleet.bed, UNDO[cause])(host)


def measure_loss(fleet: Fleet, host: str, cause: str) -> tuple[LoadResult, ...]:
    before = fleet.slipway.app_status("hello")["current_release"]
    alerts = len(fired(fleet, "host down"))
    samples: list[Sample] = []
    with (
        BackgroundLoad(fleet.url("lb1"), concurrency=4, samples=samples) as one,
        BackgroundLoad(fleet.url("lb2"), concurrency=4) as two,
    ):
        wait_for(lambda: len(samples) > 100, 30, "traffic on every host first")
        began = time.monotonic()
        getattr(fleet.bed, cause)(host)
        wait_for(lambda: state_of(fleet, host) == "down", 30, f"{host} shown down", 0.2)
        down_after = time.monotonic() - began
        assert "down:" in fleet.slipway.run("hosts").stdout  # the table, for people
        wait_for(
            lambda: host not in web_hosts(fleet) and len(web_hosts(fleet)) == 3,
            60,
            f"{host}'s instances replaced on the other hosts",
            0.2,
        )
        replaced_after = time.monotonic() - began
        results = one.stop(), two.stop()
    wait_for(lambda: len(fired(fleet, "host down")) > alerts, 15, "a 'host down' alert", 0.5)
    print(report(f"{cause} {host}", results, began))
    # the last request (through lb1) that met the lost host and was retried: traffic whole
    met = [x.done - began for x in samples if x.t >= began and x.latency_ms > 500]
    print(f"{host}: {len(met)} request(s) through lb1 retried after a connect timeout, the "
          f"last answered {max(met, default=0):.1f}s after the fault")  # fmt: skip
    print(f"{host} down after {down_after:.1f}s, replaced after {replaced_after:.1f}s")
    status = fleet.slipway.app_status("hello")
    assert status["current_release"] == before  # the same release, on the other hosts
    restore = status["last_deployment"]
    assert restore["kind"] == "restore" and restore["skip_hosts"] == [host], restore
    print(f"restore #{restore['id']} took {restore['finished_at'] - restore['started_at']:.1f}s")
    return results


def test_an_app_host_cut_off_under_load_loses_only_requests_in_flight(fleet: Fleet) -> None:
    results = lose_a_host_under_load(fleet, "app3", "cut")
    for result in results:
        assert result.failed <= IN_FLIGHT and result.sent > 50, result.summary()

    wait_for(lambda: state_of(fleet, "app3") == "up", 30, "app3 back", 0.2)
    # its stale instance is stopped, and it never got weight again
    wait_for(lambda: not stale_on(fleet, "app3"), 30, "app3's stale instance stopped", 0.2)
    assert sorted(set(serving_hosts(fleet))) == ["app1", "app2"]


def test_an_app_host_whose_processes_die_loses_only_requests_in_flight(fleet: Fleet) -> None:
    assert "app2" in web_hosts(fleet)  # one instance (app1 took app3's)
    results = lose_a_host_under_load(fleet, "app2", "crash")
    for result in results:
        assert result.failed <= IN_FLIGHT and result.sent > 50, result.summary()
    fleet.bed.reboot("app2")  # sshd only: the agent is started again by the control plane
    wait_for(lambda: state_of(fleet, "app2") == "up", 30, "app2 back", 0.2)
    wait_for(lambda: not stale_on(fleet, "app2"), 30, "app2's stale instance forgotten", 0.2)
    assert sorted(set(serving_hosts(fleet))) == ["app1", "app3"]


def test_a_host_cut_off_from_the_control_plane_only_keeps_serving(fleet: Fleet) -> None:
    before = fleet.slipway.app_status("hello")["current_release"]
    serving = web_hosts(fleet)
    assert serving.count("app1") == 2, serving
    alerts = len(fired(fleet, "host down"))
    with (
        BackgroundLoad(fleet.url("lb1"), concurrency=4, record_key="instance") as one,
        BackgroundLoad(fleet.url("lb2"), concurrency=4, record_key="instance") as two,
    ):
        fleet.bed.partition("app1", fleet.bed.gateway)  # the control plane's address
        try:
            wait_for(lambda: state_of(fleet, "app1") == "unreachable", 30, "app1 unreachable")

            def cut_off_for(seconds: float) -> bool:
                view = fleet.hosts()["app1"]
                assert view["state"] == "unreachable", view  # never down: it serves
                return bool(time.time() - view["since"] > seconds)

            # twice as long as a host that serves nothing takes to be declared down
            wait_for(lambda: cut_off_for(2 * DOWN_AFTER), 30, "app1 cut off a while", 0.5)
            assert web_hosts(fleet) == serving  # nothing moved or doubled
            fleet.configure()
            refused = fleet.slipway.deploy(fleet.app, check=False)
            said = refused.stdout + refused.stderr
            assert refused.returncode != 0 and "host app1 does not answer" in said, said
            assert "--skip-host app1" in said
            results = one.stop(), two.stop()
            for result in results:
                assert result.failed == 0 and result.sent > 50, result.summary()
                served_by = {value for value in result.bodies if value}
                assert len(served_by) == 3, served_by  # app1's instances served all along
            assert fleet.slipway.app_status("hello")["current_release"] == before
            assert len(fired(fleet, "host down")) == alerts  # a host that serves is not down

            # deployed without it (recorded): the new release runs on the other hosts
            fleet.slipway.deploy(fleet.app, "--skip-host", "app1", "--reason", "partitioned")
            after = fleet.slipway.app_status("hello")
            assert after["current_release"] != before
            assert after["last_deployment"]["skip_hosts"] == ["app1"]
            assert fleet.release_on("lb1") == fleet.release_on("lb2") == after["current_release"]
        finally:
            fleet.bed.heal("app1")
    wait_for(lambda: state_of(fleet, "app1") == "up", 30, "app1 reconnected", 0.2)
    # app1's instances of the old release left the lbs with the deploy: they stay warm there,
    # at weight 0, and nothing of app1 serves until a deploy places instances there again
    wait_for(lambda: not stale_on(fleet, "app1"), 30, "app1 reconciled", 0.2)
    placed = serving_hosts(fleet)
    assert len(placed) == 3 and set(placed) == {"app2", "app3"}, placed
    assert fleet.release_on("lb1") == fleet.release_on("lb2") == after["current_release"]


def test_down_all_stops_what_it_reaches_and_names_a_host_cut_off(fleet: Fleet) -> None:
    """Last in the module (the fleet ends stopped): a host the control plane cannot reach
    does not hold `slipway down --all` back; it is named, its instances keep running, and
    the next `slipway up` stops them once it reaches the host again."""
    live = instances(fleet, settled=False)
    on_app3 = [i["pid"] for i in live if i["host"] == "app3" and i["pid"]]
    elsewhere = [i["pid"] for i in live if i["host"] != "app3" and i["pid"]]
    assert on_app3 and elsewhere, live
    fleet.bed.partition("app3", fleet.bed.gateway)
    try:
        wait_for(lambda: state_of(fleet, "app3") == "unreachable", 30, "app3 unreachable")
        done = fleet.slipway.run("down", "--all", "--json")
        not_stopped = json.loads(done.stdout)["not_stopped"]
        assert any(p.startswith("host app3 does not answer") for p in not_stopped), not_stopped
        assert not any(psutil.pid_exists(pid) for pid in elsewhere)
        assert all(psutil.pid_exists(pid) for pid in on_app3)  # out of reach: left running
    finally:
        fleet.bed.heal("app3")
    fleet.slipway.run("up")
    wait_for(
        lambda: not any(psutil.pid_exists(pid) for pid in on_app3),
        60,
        "app3's instances stopped once the control plane reaches it",
    )
