"""Under steady load through HAProxy, deploys and rollbacks fail no request."""

from __future__ import annotations

import time

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import Slipway

LOAD_SECONDS = 10.0


def test_no_failed_request_during_a_deploy(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2}, env={"BOOT_SECONDS": "1"})
    running.deploy(app)
    began = time.monotonic()
    with BackgroundLoad(app.url, concurrency=8, record_key="release") as load:
        time.sleep(1)
        app.write_config(scale={"web": 2}, env={"BOOT_SECONDS": "1", "GREETING": "new"})
        running.deploy(app)
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - began)))
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert result.sent > 500, result.summary()
    assert result.bodies["r1"] > 0 and result.bodies["r2"] > 0, result.bodies
    assert result.statuses.keys() == {200}


def test_no_failed_request_during_rollbacks(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    running.deploy(app)
    app.write_config(scale={"web": 2}, env={"GREETING": "new"})
    running.deploy(app)
    began = time.monotonic()
    with BackgroundLoad(app.url, concurrency=8, record_key="release") as load:
        time.sleep(1)
        running.run("rollback", "--app", "hello")  # warm: a traffic switch
        time.sleep(1)
        running.run("rollback", "--app", "hello")  # and back again
        time.sleep(max(0.0, LOAD_SECONDS - (time.monotonic() - began)))
        result = load.stop()
    assert result.failed == 0, result.summary()
    assert result.sent > 500, result.summary()
    assert result.bodies["r1"] > 0 and result.bodies["r2"] > 0, result.bodies
