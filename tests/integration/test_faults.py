"""Faults inside the daemon's "record, then act" windows, and around it (a full disk, a frozen
instance, HAProxy killed): nothing may run that the daemon cannot find, no request may fail
that could have been served, and no deployment may hang."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import App, Slipway, stop_all, wait_for
from tests.integration.test_crash_recovery import app_pids, assert_consistent, daemon_pid, gone

WEB_AND_WORKER = {"web": "python app.py --port $PORT", "worker": "python worker.py"}


def deployed_with_fault(slipway: Slipway, point: str, **sections: Any) -> App:
    """r1 deployed, and a daemon that will die at `point`; the config now describes r2."""
    app = slipway.make_app(**sections)
    slipway.run("up")
    slipway.deploy(app)
    slipway.run("down")
    slipway.run("up", env=slipway.env(SLIPWAY_FAULT=point))
    app.write_config(**(sections | {"env": {"GREETING": "two", "JOB_SECONDS": "0.2"}}))
    return app


def deploy_until_killed(slipway: Slipway, app: App) -> None:
    """The CLI following the deploy says the daemon stopped, not that the deploy failed."""
    pid = daemon_pid(slipway)
    cut = slipway.deploy(app, check=False)
    wait_for(lambda: gone(pid), 30, "the daemon to be killed at its fault point")
    assert cut.returncode == 3, cut.stdout + cut.stderr
    said = cut.stdout + cut.stderr
    assert "the daemon stopped during step '" in said, said  # the last step it was told of
    assert "of deployment #2; the deployment did not end" in said, said
    assert "did not succeed" not in said
    assert "`slipway up` finishes the deployment or rolls it back" in said, said


def test_kill_9_while_starting_instances_leaves_no_process_unknown(slipway: Slipway) -> None:
    """The daemon dies after the first shim started and before any pid was recorded, while
    the other shims are still starting: the restarted daemon finds them all by their folder,
    rolls the deployment back and stops every one of them."""
    sections = {"processes": WEB_AND_WORKER, "scale": {"web": 2, "worker": 2}}
    app = deployed_with_fault(slipway, "crash-at:start:spawned", **sections)
    with BackgroundLoad(app.url, concurrency=4) as load:
        deploy_until_killed(slipway, app)
        up = slipway.run("up").stdout
        status = slipway.wait_idle("hello")
        result = load.stop()
    recovered = "deployment #2 of hello (deploy of r2) was interrupted at step 'start': rolled back"
    assert f"{recovered}; r1 keeps serving" in up, up
    assert result.failed == 0, result.summary()
    assert status["current_release"] == "r1"
    assert status["last_deployment"]["outcome"] == "failed"
    # once the rollback's stops are done, only r1's processes run, and ps shows each of them
    wait_for(lambda: len(app_pids(slipway)) == 4, 20, "only r1's four processes to run")
    assert_consistent(slipway, "hello", "r1", web=2)
    assert all(i["release"] == "r1" for i in slipway.ps("hello"))
    time.sleep(1.5)  # a supervisor left alive would restart its app within its backoff
    assert len(app_pids(slipway)) == 4


def test_kill_9_between_recording_and_applying_a_shift_fails_no_request(slipway: Slipway) -> None:
    """The new weights are recorded, HAProxy still has the old ones: the restarted daemon's
    sync raises r2's servers before it lowers r1's, so the backend never has no server."""
    app = deployed_with_fault(slipway, "crash-at:shift:recorded", scale={"web": 2})
    with BackgroundLoad(app.url, concurrency=16) as load:
        deploy_until_killed(slipway, app)
        up = slipway.run("up").stdout
        status = slipway.wait_idle("hello")
        result = load.stop()
    assert "deployment #2 of hello (deploy of r2) was interrupted at step 'shift': finishing" in up
    assert result.failed == 0, result.summary()
    assert status["current_release"] == "r2"
    assert status["last_deployment"]["outcome"] == "succeeded"
    assert_consistent(slipway, "hello", "r2", web=2)


# a full disk ------------------------------------------------------------------------------


@pytest.fixture
def tight() -> Iterator[Slipway]:
    """A daemon whose home is on its own small tmpfs, which a test can fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = Path(tempfile.mkdtemp(prefix="swdisk-", dir="/tmp"))
    work = Path(tempfile.mkdtemp(prefix="swapp-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(disk)], check=True)
    instance = Slipway(home=disk / "home", workdir=work)
    try:
        yield instance
    finally:
        for filler in disk.glob("filler*"):
            filler.unlink()
        leftovers = stop_all(instance)
        subprocess.run(["umount", str(disk)], check=False)
        shutil.rmtree(disk, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    assert not leftovers, f"processes left behind after `slipway down --all`: {leftovers}"


def fill(slipway: Slipway, leave: int) -> Path:
    """Take all the free space of the home's disk but `leave` bytes."""
    disk = slipway.home.parent
    filler = disk / f"filler-{time.monotonic_ns()}"
    with open(filler, "wb") as handle:
        # apps logging meanwhile take space between the look and the take: ask a little less
        # each time (what is left, they fill within moments)
        for attempt in range(20):
            stats = os.statvfs(disk)
            size = max(0, stats.f_bavail * stats.f_frsize - leave - attempt * 65536)
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
                return filler
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        raise AssertionError(f"could not take the free space of {disk}")


def test_a_full_disk_fails_a_deploy_clearly_and_never_locks_the_app(tight: Slipway) -> None:
    app = tight.make_app(scale={"web": 1})
    tight.run("up")
    tight.deploy(app)
    filler = fill(tight, leave=512 * 1024)
    app.write_config(scale={"web": 1}, env={"GREETING": "two"})
    # new dependencies: this release needs a virtualenv of its own (a code-only change
    # reuses r1's and needs next to no room: it deploys, rightly, on this disk too)
    (app.dir / "requirements.txt").write_text("# two\n")
    with BackgroundLoad(app.url, concurrency=2) as load:
        failed = tight.deploy(app, check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        said = failed.stdout + failed.stderr
        assert "the disk is full" in said, said
        assert str(tight.home) in said, said  # where: a path on the full disk
        filler.unlink()
        # no `down` and `up`: once there is room the failure is recorded and the lock freed
        status = wait_for(
            lambda: (s := tight.app_status("hello"))["deployment"] is None
            and s["last_deployment"]["outcome"] == "failed"
            and s,
            10,
            "the failed deployment to be recorded",
        )
        assert status["current_release"] == "r1"
        tight.deploy(app)
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert httpx.get(app.url, timeout=5).json()["greeting"] == "two"
    releases = {r["id"]: r for r in tight.json("releases", "--app", "hello")}
    assert releases["r2"]["status"] == "failed"
    assert not (tight.home / "apps" / "hello" / "releases" / "r2").exists()


def test_a_full_disk_never_takes_an_app_down(tight: Slipway) -> None:
    """Instances log every request; the disk fills up under load. The apps keep serving, their
    supervisors drop log lines and count them (ps, an alert), a supervisor killed meanwhile
    is replaced without a second process on its port, and the log says what was lost."""
    app = tight.make_app(scale={"web": 2}, env={"ACCESS_LOG": "1"})
    tight.run("up")
    tight.deploy(app)
    with BackgroundLoad(app.url, concurrency=4) as load:
        filler = fill(tight, leave=0)

        def dropping() -> list[dict[str, Any]] | None:
            instances = tight.ps("hello")
            return instances if all(i["log_dropped"] > 50 for i in instances) else None

        instances = wait_for(dropping, 20, "both instances to drop log lines")
        victim = instances[0]
        shim = psutil.Process(victim["pid"]).parent()
        assert shim is not None
        shim.kill()  # its app keeps running, unsupervised, on the instance's port
        time.sleep(2)  # housekeeping tries to restart its supervisor on the full disk
        filler.unlink()

        def replaced() -> bool:
            now = {i["id"]: i for i in tight.ps("hello")}[victim["id"]]
            return bool(now["pid"] != victim["pid"] and now["check"] == "UP L7OK")

        wait_for(replaced, 20, "the instance's supervisor and app to be replaced")
        time.sleep(0.5)
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert_consistent(tight, "hello", "r1", web=2)
    logs = tight.run("logs", "--app", "hello", "--lines", "2000").stdout
    assert "output line(s) were dropped: the log could not be written" in logs
    assert "No space left on device" in logs

    def alerted() -> bool:
        events = tight.json("alerts", "--app", "hello")["events"]
        return any(e["rule"] == "logs dropped" and e["state"] == "firing" for e in events)

    wait_for(alerted, 15, "the 'logs dropped' alert to fire")


def test_a_port_taken_by_a_stranger_is_named_and_given_back(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    (instance,) = running.ps("hello")
    stranger = socket.socket()
    stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        os.kill(instance["pid"], signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(instance["pid"]), 5, "the app to die")
        stranger.bind(("127.0.0.1", instance["port"]))  # before its supervisor restarts it
        stranger.listen()

        def blocked() -> str | None:
            (now,) = running.ps("hello")
            return now["blocked"] if now["state"] == "blocked" else None

        reason = wait_for(blocked, 10, "the instance to report its port taken")
        assert f"port {instance['port']} is held by another process (pid {os.getpid()}" in reason
    finally:
        stranger.close()

    def serving() -> bool:
        (now,) = running.ps("hello")
        return now["state"] == "running" and now["check"] == "UP L7OK" and not now["blocked"]

    wait_for(serving, 40, "the instance to start again once its port is free")
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1"


# the warm release -------------------------------------------------------------------------


def warm_pids(slipway: Slipway) -> set[int]:
    """The warm instances' processes (an instance whose process is not known yet: none)."""
    return {i["pid"] for i in slipway.ps("hello") if i["role"] == "warm" and i["pid"]}


def rolled_back_warm(slipway: Slipway, pids: set[int]) -> None:
    """A rollback to the warm release is a traffic switch onto the very same processes (and,
    after a scale up, more of them: a rollback keeps the current count)."""
    slipway.run("rollback", "--app", "hello")
    serving = {i["pid"] for i in slipway.ps("hello") if i["role"] == "serving"}
    assert pids <= serving
    assert {i["release"] for i in slipway.ps("hello") if i["role"] == "serving"} == {"r1"}


def test_scaling_keeps_the_warm_release(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    running.deploy(app)
    app.write_config(scale={"web": 2}, env={"GREETING": "two"})
    running.deploy(app)
    before = warm_pids(running)
    assert len(before) == 2
    until = running.app_status("hello")["warm_until"]
    running.run("scale", "web=3", "--app", "hello")
    status = running.app_status("hello")
    assert (status["warm_release"], status["warm_until"]) == ("r1", until)
    assert warm_pids(running) == before, running.ps("hello")
    rolled_back_warm(running, before)


def test_down_all_and_up_bring_the_warm_release_back(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    running.deploy(app)
    app.write_config(scale={"web": 2}, env={"GREETING": "two"})
    running.deploy(app)
    running.run("down", "--all")
    running.run("up")
    running.wait_idle("hello")

    def warm_again() -> set[int] | None:
        pids = warm_pids(running)
        return pids if len(pids) == 2 else None

    rewarmed = wait_for(warm_again, 30, "r1's web instances to be warm again")
    status = running.wait_idle("hello")
    assert (status["current_release"], status["warm_release"]) == ("r2", "r1")
    assert httpx.get(app.url, timeout=5).json()["release"] == "r2"
    rolled_back_warm(running, rewarmed)


# a frozen instance ------------------------------------------------------------------------


def test_a_frozen_instance_is_taken_out_of_traffic_then_restarted(running: Slipway) -> None:
    """SIGSTOP: alive, silent. With the default checks (1s interval, 2s timeout, 3 failures)
    HAProxy alone would keep sending it requests for ~8 s; slipway's probe takes it out at
    its first silent check, and restarts it after `restart_after`. The requests it held are
    retried by HAProxy on another instance when it dies: none fails."""
    app = running.make_app(
        scale={"web": 3},
        healthcheck={"interval": "1s", "timeout": "2s", "unhealthy_threshold": 3,
                     "restart_after": "4s"},
    )  # fmt: skip
    running.deploy(app)
    victim = running.ps("hello")[0]

    def seen() -> dict[str, Any]:
        return {i["id"]: i for i in running.ps("hello")}[victim["id"]]

    with BackgroundLoad(app.url, concurrency=8) as load:
        os.kill(victim["pid"], signal.SIGSTOP)
        wait_for(lambda: seen()["check"].startswith("DOWN"), 4.5, "HAProxy to take it out")
        restarted = wait_for(
            lambda: (now := seen())["pid"] != victim["pid"] and now["check"] == "UP L7OK",
            20,
            "the frozen instance to be restarted and serving",
        )
        assert restarted
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert seen()["last_exit"]["signal"] == "SIGKILL"
    assert_consistent(running, "hello", "r1", web=3)


def test_haproxy_killed_is_started_again_the_moment_it_exits(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    running.deploy(app)
    master = running.json("status")["router"]["pid"]
    workers = psutil.Process(master).children()
    killed_at = time.monotonic()
    os.kill(master, signal.SIGKILL)
    for worker in workers:
        worker.kill()

    def serving() -> float | None:
        try:
            httpx.get(app.url, timeout=1).raise_for_status()
        except httpx.HTTPError:
            return None
        return time.monotonic() - killed_at

    back_after = wait_for(serving, 10, "HAProxy to serve again", every=0.01)
    log = (running.home / "daemon.log").read_text()
    assert f"HAProxy (pid {master}) exited: starting it with the recorded servers" in log
    assert "HAProxy is not running" not in log  # not left for housekeeping to find
    print(f"serving again {back_after * 1000:.0f} ms after HAProxy was killed")
    assert_consistent(running, "hello", "r1", web=2)
