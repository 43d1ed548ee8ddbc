"""The daemon can die at any moment: instances and HAProxy keep serving, and a restarted
daemon adopts what runs and finishes or rolls back what was in flight."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import psutil
import pytest

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import Slipway, wait_for

FORWARD = ("shift", "drain", "retire", "done")


def daemon_pid(slipway: Slipway) -> int:
    return int((slipway.home / "daemon.pid").read_text())


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def app_pids(slipway: Slipway) -> set[int]:
    """Pids of the hello app's own processes actually running on this machine."""
    pids = set()
    for proc in slipway.our_processes():
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "app.py" in cmdline or "worker.py" in cmdline:
            pids.add(proc.pid)
    return pids


def assert_consistent(slipway: Slipway, app: str, release: str, web: int) -> None:
    """What the daemon reports is what runs: one serving release, every instance has a live
    process and an HAProxy server, no orphans or duplicates. A restarted HAProxy checks
    every server again first ("UP 1/3 INI" for a moment): that settles, within a deadline."""

    def checked() -> list[dict[str, Any]] | None:
        instances = slipway.ps(app)
        serving = [i for i in instances if i["role"] == "serving"]
        settled = all(i["check"] == "UP L7OK" for i in serving)
        return instances if settled else None

    try:
        instances = wait_for(checked, 10, "HAProxy's checks of the serving instances")
    except AssertionError:
        instances = slipway.ps(app)  # the assertions below say what is wrong
    serving = [i for i in instances if i["role"] == "serving"]
    assert {i["release"] for i in serving} == {release}, instances
    assert len(serving) == web, instances
    assert all(i["state"] == "running" and i["check"] == "UP L7OK" for i in serving), instances
    assert all(i["state"] != "gone" for i in instances), instances
    assert {i["pid"] for i in instances} == app_pids(slipway), "orphan or missing processes"


@pytest.mark.parametrize("step", ["build", "start", "health", "shift", "drain", "retire", "done"])
def test_kill_9_at_each_deploy_step(slipway: Slipway, step: str) -> None:
    app = slipway.make_app(scale={"web": 2})
    slipway.run("up")
    slipway.deploy(app)
    slipway.run("down")
    slipway.run("up", env=slipway.env(SLIPWAY_FAULT=f"crash-after-commit:{step}"))
    pid = daemon_pid(slipway)
    app.write_config(scale={"web": 2}, env={"GREETING": "two"})
    with BackgroundLoad(app.url, concurrency=4) as load:
        crashed = slipway.deploy(app, check=False)
        wait_for(lambda: gone(pid), 30, "the daemon to be killed at the fault point")
        assert crashed.returncode != 0 or step == "done"
        time.sleep(0.5)  # HAProxy and the instances serve on without the daemon
        slipway.run("up")
        status = slipway.wait_idle("hello")
        result = load.stop()
    assert result.failed == 0, result.summary()
    expected = "r2" if step in FORWARD else "r1"
    assert status["current_release"] == expected
    outcome = status["last_deployment"]["outcome"]
    assert outcome == ("succeeded" if step in FORWARD else "failed"), status
    if step not in FORWARD:
        assert "daemon restarted" in status["last_deployment"]["error"]["message"]
    assert httpx.get(app.url, timeout=5).json()["release"] == expected
    assert_consistent(slipway, "hello", expected, web=2)
    releases = {r["id"]: r for r in slipway.json("releases", "--app", "hello")}
    assert releases["r2"]["status"] == ("failed" if step == "build" else "ready")


def test_restarted_daemon_adopts_instances_instead_of_duplicating(running: Slipway) -> None:
    app = running.make_app(
        processes={"web": "python app.py --port $PORT", "worker": "python worker.py"},
        scale={"web": 2, "worker": 1},
        env={"JOB_SECONDS": "0.2"},
    )
    running.deploy(app)
    before = {i["id"]: i["pid"] for i in running.ps("hello")}
    with BackgroundLoad(app.url, concurrency=4) as load:
        pid = daemon_pid(running)
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: gone(pid), 10, "the daemon to die")
        time.sleep(1.5)  # nobody drives HAProxy now; it serves regardless
        during = load.result
        running.run("up")
        result = load.stop()
    assert during is None
    assert result.failed == 0 and result.sent > 100, result.summary()
    after = {i["id"]: i["pid"] for i in running.ps("hello")}
    assert after == before, "same instances, same processes"
    assert app_pids(running) == set(before.values())
    assert all(i["restarts"] == 0 for i in running.ps("hello"))


def test_down_leaves_apps_serving_and_down_all_stops_everything(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    running.run("down")
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1"
    assert running.run("status", check=False).returncode == 1
    running.run("up")
    running.run("down", "--all")
    assert running.our_processes() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(app.url, timeout=2)
    # `up` brings back what was recorded.
    running.run("up")
    running.wait_idle("hello")
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1"
    assert_consistent(running, "hello", "r1", web=1)


def test_a_crashed_instance_is_restarted(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    (instance,) = running.ps("hello")
    os.kill(instance["pid"], signal.SIGKILL)

    def restarted() -> dict[str, object] | None:
        (now,) = running.ps("hello")
        ok = now["pid"] != instance["pid"] and now["check"] == "UP L7OK"
        return now if ok and now["state"] == "running" else None

    now = wait_for(restarted, 15, "the instance to be restarted and healthy")
    assert now["restarts"] == 1
    assert now["last_exit"]["signal"] == "SIGKILL"
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1"


def test_haproxy_killed_is_restarted_with_its_servers(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    running.deploy(app)
    router = running.json("status")["router"]["pid"]
    os.kill(router, signal.SIGKILL)
    for child in psutil.Process(router).children() if not gone(router) else []:
        child.kill()

    def serving() -> bool:
        try:
            return httpx.get(app.url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(serving, 15, "HAProxy to be restarted by the daemon")
    assert running.json("status")["router"]["pid"] != router
    assert_consistent(running, "hello", "r1", web=2)
