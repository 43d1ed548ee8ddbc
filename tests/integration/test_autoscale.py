"""Autoscaling with real HAProxy and app processes: load makes slipway add instances (HAProxy's
in-flight counters over the target), no request fails while they come and go, the count
goes back down once the load has been gone for the stabilization window, every change is
recorded with its numbers, and a manual scale pauses it."""

from __future__ import annotations

from typing import Any

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import Slipway, wait_for

FAST: dict[str, Any] = {
    "min": 1,
    "max": 4,
    "target": 2,  # requests in flight per instance
    "every": "1s",
    "window": "2s",
    "scale_down_after": "4s",
}


def web_count(slipway: Slipway) -> int:
    return int(slipway.app_status("hello")["formation"]["web"])


def test_load_scales_web_up_then_down_without_a_failed_request(running: Slipway) -> None:
    sections: dict[str, Any] = {"autoscale.web": FAST}
    app = running.make_app(scale={"web": 1}, env={"EXTRA_LATENCY_MS": "200"}, **sections)
    running.deploy(app)
    with BackgroundLoad(app.url, concurrency=8) as load:  # about 8 in flight: 4 instances
        wait_for(lambda: web_count(running) == 4, 30, "four web instances")
        wait_for(lambda: len(running.ps("hello")) == 4 and running.app_status("hello")[
            "deployment"] is None, 30, "the scale deployment to end")  # fmt: skip
    result = load.stop()
    assert result.failed == 0, result.summary()
    wait_for(lambda: web_count(running) == 1, 30, "back to one web instance")
    history = running.json("autoscale", "--app", "hello", "--history", "50")["history"]
    changes = [(d["current"], d["desired"]) for d in reversed(history)
               if d["result"].startswith("scaling")]  # fmt: skip
    assert changes[0][0] == 1 and changes[-1][1] == 1, history
    assert max(d for _, d in changes) == 4
    first = next(d for d in reversed(history) if d["result"].startswith("scaling"))
    assert first["signal"] == "inflight" and first["observed"] > 2 * 1.1, first

    shown = running.run("autoscale", "--app", "hello", "--history", "50").stdout
    assert "→ 4" in shown and "inflight" in shown  # in one step or two on a busy machine

    running.run("scale", "web=2", "--app", "hello")  # by hand: autoscaling pauses
    view = running.json("autoscale", "--app", "hello")["processes"][0]
    assert view["paused"]["count"] == 2
    running.run("autoscale", "resume", "web", "--app", "hello")
    wait_for(lambda: web_count(running) == 1, 30, "the autoscaler to take web back to 1")
