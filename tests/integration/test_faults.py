"""Faults inside the daemon's "record, then act" windows, and around it (a full disk, a frozen
instance, HAProxy killed): nothing may run that the daemon cannot find, no request may fail
that could have been served, and no deployment may hang."""

from __future__ import annotations

import time
from typing import Any

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import App, Slipway, wait_for
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
    pid = daemon_pid(slipway)
    slipway.deploy(app, check=False)
    wait_for(lambda: gone(pid), 30, "the daemon to be killed at its fault point")


def test_kill_9_while_starting_instances_leaves_no_process_unknown(slipway: Slipway) -> None:
    """The daemon dies after the first shim started and before any pid was recorded, while
    the other shims are still starting: the restarted daemon finds them all by their folder,
    rolls the deployment back and stops every one of them."""
    sections = {"processes": WEB_AND_WORKER, "scale": {"web": 2, "worker": 2}}
    app = deployed_with_fault(slipway, "crash-at:start:spawned", **sections)
    with BackgroundLoad(app.url, concurrency=4) as load:
        deploy_until_killed(slipway, app)
        slipway.run("up")
        status = slipway.wait_idle("hello")
        result = load.stop()
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
        slipway.run("up")
        status = slipway.wait_idle("hello")
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert status["current_release"] == "r2"
    assert status["last_deployment"]["outcome"] == "succeeded"
    assert_consistent(slipway, "hello", "r2", web=2)
