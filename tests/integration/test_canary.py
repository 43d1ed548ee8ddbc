"""Canary releases with the real daemon, HAProxy and examples/hello under live traffic."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest

from slipway.loadgen import BackgroundLoad
from tests.integration.conftest import App, Prometheus, Slipway, wait_for

CANARY = {
    "strategy": "canary",
    "steps": [10, 50, 100],
    "step_min_seconds": "3s",
    "step_min_requests": 30,
    "health_timeout": "20s",
    "drain_timeout": "5s",
    "stop_grace": "3s",
    "keep_warm": "5m",
}


# Proving p99 no worse takes a few thousand candidate requests (a minute at these rates): the
# end-to-end tests watch p50 and p90; p99 is covered by tests/unit/test_judge.py and bench/judge.
ANALYSIS = {"latency_quantiles": [0.5, 0.9]}


def canary_app(slipway: Slipway, **env: str) -> App:
    app = slipway.make_app(scale={"web": 2}, deploy=CANARY, analysis=ANALYSIS)
    slipway.deploy(app)  # r1: the first deploy has nothing to compare with, so blue-green
    app.write_config(
        scale={"web": 2}, deploy=CANARY, analysis=ANALYSIS, env={"GREETING": "two", **env}
    )
    return app


def analysis(slipway: Slipway) -> dict[str, Any]:
    result: dict[str, Any] = slipway.json("analysis", "--app", "hello")
    return result


def canary_state(slipway: Slipway) -> dict[str, Any] | None:
    canary: dict[str, Any] | None = slipway.app_status("hello")["canary"]
    return canary


def test_a_release_with_errors_is_rolled_back_automatically(running: Slipway) -> None:
    app = canary_app(running, FAIL_RATE="0.2")
    with BackgroundLoad(app.url, concurrency=4, rate=150, record_key="release") as load:
        time.sleep(1)
        result = running.deploy(app, check=False)
        after = time.monotonic()
        time.sleep(1)
        tail = load.stop()
    assert result.returncode == 1, result.stdout
    assert "rolled back" in result.stderr and "error rate" in result.stderr
    assert "slipway analysis" in result.stderr
    status = running.app_status("hello")
    assert status["current_release"] == "r1"
    assert {i["release"] for i in running.ps("hello")} == {"r1"}
    verdicts = analysis(running)["verdicts"]
    assert verdicts[-1]["decision"] == "rollback"
    errors = verdicts[-1]["evidence"]["verdict"]["checks"][0]
    assert errors["metric"] == "error rate" and errors["regression"]
    assert errors["candidate"] > 0.1 and errors["worse"] >= errors["needed"]
    # The blast radius: only the candidate's share saw errors, and none after the rollback.
    assert tail.failed < 0.2 * 0.5 * tail.sent, tail.summary()
    assert after > 0 and httpx.get(app.url, timeout=5).json()["release"] == "r1"


def test_a_release_much_slower_than_stable_is_rolled_back(running: Slipway) -> None:
    app = canary_app(running, EXTRA_LATENCY_MS="150")
    with BackgroundLoad(app.url, concurrency=6, rate=150):
        result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "regression: latency p" in result.stderr
    assert running.app_status("hello")["current_release"] == "r1"
    checks = analysis(running)["verdicts"][-1]["evidence"]["verdict"]["checks"]
    latency = [c for c in checks if c["metric"].startswith("latency")]
    assert any(c["regression"] for c in latency)
    assert latency[0]["metric"] == "latency p50" and latency[0]["candidate"] > 100


def test_a_good_release_is_promoted_through_every_step(running: Slipway) -> None:
    app = canary_app(running)
    with BackgroundLoad(app.url, concurrency=4, rate=150, record_key="release") as load:
        result = running.deploy(app)
        served = load.stop()
    out = result.stdout
    assert "step 1 of 2: 10% of traffic on r2" in out and "step 2 of 2: 50%" in out, out
    assert "no regression through 2 step(s)" in out
    assert served.failed == 0, served.summary()
    assert running.app_status("hello")["current_release"] == "r2"
    verdicts = analysis(running)["verdicts"]
    promotes = [v for v in verdicts if v["decision"] == "promote"]
    assert [v["step"] for v in promotes][:1] == [1] and promotes[-1]["step"] == 2
    # The judge compared like with like: in step 1 the candidate got about 10% of requests.
    first = promotes[0]["evidence"]["verdict"]
    share = first["candidate_requests"] / (first["candidate_requests"] + first["stable_requests"])
    assert 0.05 < share < 0.15, share


def test_no_traffic_is_inconclusive_and_never_a_failure(running: Slipway) -> None:
    app = canary_app(running)
    app.write_config(
        scale={"web": 2},
        env={"GREETING": "two"},
        deploy=CANARY | {"step_timeout": "3s", "on_inconclusive": "pause"},
        analysis=ANALYSIS,
    )
    running.deploy(app, "--detach")

    def paused() -> dict[str, Any] | None:
        state = canary_state(running)
        return state if state and state["paused"] else None

    state = wait_for(paused, 30, "the canary to pause for lack of traffic")
    assert state["verdict"]["decision"] == "inconclusive"
    assert state["verdict"]["reason"].startswith("inconclusive: 0 of 30 requests")
    status = running.app_status("hello")
    assert status["deployment"]["state"] == "canary" and status["current_release"] == "r1"
    out = running.run("status", "--app", "hello").stdout
    assert "(paused)" in out and "inconclusive: 0 of 30 requests" in out
    running.run("promote", "--app", "hello")
    final = running.wait_idle("hello")
    assert final["current_release"] == "r2"
    assert final["last_deployment"]["outcome"] == "succeeded"


def test_inconclusive_for_too_long_aborts_with_the_reason(running: Slipway) -> None:
    app = canary_app(running)
    app.write_config(scale={"web": 2}, deploy=CANARY | {"step_timeout": "2s"}, analysis=ANALYSIS)
    result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "inconclusive: 0 of 30 requests after 2s" in result.stderr
    assert running.app_status("hello")["current_release"] == "r1"


def test_pause_resume_and_abort_by_hand(running: Slipway) -> None:
    app = canary_app(running)
    app.write_config(
        scale={"web": 2},
        env={"GREETING": "two"},
        deploy=CANARY | {"step_min_seconds": "2s"},
        analysis=ANALYSIS,
    )
    with BackgroundLoad(app.url, concurrency=4, rate=150) as load:
        running.deploy(app, "--detach")
        wait_for(lambda: canary_state(running), 30, "the canary to start")
        running.run("pause", "--app", "hello")
        time.sleep(5)  # longer than step_min_seconds: a running canary would have moved on
        state = canary_state(running)
        assert state is not None and state["step"] == 1 and state["paused"]
        running.run("resume", "--app", "hello")
        wait_for(lambda: (canary_state(running) or {}).get("step") == 2, 20, "step 2")
        running.run("abort", "--app", "hello")
        final = running.wait_idle("hello")
        result = load.stop()
    assert final["current_release"] == "r1"
    assert "aborted by" in final["last_deployment"]["error"]["message"]
    assert result.failed == 0, result.summary()
    assert {i["release"] for i in running.ps("hello")} == {"r1"}
    refused = running.run("promote", "--app", "hello", check=False)
    assert refused.returncode == 2 and "no canary in progress" in refused.stderr


def test_a_restarted_daemon_resumes_the_judge(running: Slipway) -> None:
    app = canary_app(running)
    app.write_config(
        scale={"web": 2},
        env={"GREETING": "two"},
        deploy=CANARY | {"step_min_seconds": "8s"},
        analysis=ANALYSIS,
    )
    with BackgroundLoad(app.url, concurrency=4, rate=150) as load:
        running.deploy(app, "--detach")
        wait_for(lambda: len(analysis(running)["verdicts"]) >= 3, 30, "some verdicts")
        before = analysis(running)["verdicts"][-1]
        pid = int((running.home / "daemon.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        running.run("up")
        final = running.wait_idle("hello", timeout=90)
        result = load.stop()
    assert final["current_release"] == "r2", final
    assert result.failed == 0, result.summary()
    verdicts = analysis(running)["verdicts"]
    after = [v for v in verdicts if v["id"] > before["id"]]
    assert after, "the judge went on after the restart"
    n_before = before["evidence"]["verdict"]["candidate_requests"]
    assert after[0]["evidence"]["verdict"]["candidate_requests"] >= n_before, (
        "the judge resumed from the recorded traffic, not from zero"
    )


@pytest.mark.parametrize("command", ["promote", "pause"])
def test_commands_without_a_canary_are_refused(running: Slipway, command: str) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    result = running.run(command, "--app", "hello", check=False)
    assert result.returncode == 2 and "no canary in progress" in result.stderr


def test_a_prometheus_check_rolls_back_what_only_the_app_knows(
    running: Slipway, prometheus: Prometheus
) -> None:
    check = (
        "[[analysis.prometheus]]\n"
        'name = "queue depth"\n'
        "query = 'max(hello_queue_depth{release=\"$CANDIDATE\"})'\n"
        "threshold = 10\n"
        'direction = "above"\n'
        f'url = "{prometheus.url}"\n'
        'every = "1s"\n'
    )
    deploy = CANARY | {"step_min_seconds": "15s"}
    app = running.make_app(scale={"web": 2}, deploy=deploy, analysis=check)
    running.deploy(app)
    app.write_config(scale={"web": 2}, deploy=deploy, env={"QUEUE_DEPTH": "50"}, analysis=check)
    with BackgroundLoad(app.url, concurrency=4, rate=100):
        result = running.deploy(app, check=False)
    assert result.returncode == 1, result.stdout
    assert "prometheus check 'queue depth': 50 > threshold 10" in result.stderr
    assert running.app_status("hello")["current_release"] == "r1"

    # Prometheus scraped the instances slipway listed for it, labelled per release (r2's
    # are gone now: look back over the last minutes).
    def releases_scraped() -> set[str] | None:  # its next scrape may not have run yet
        series = prometheus.query("count by (release) (count_over_time(hello_queue_depth[5m]))")
        seen = {str(s["metric"]["release"]) for s in series}
        return seen if seen >= {"r1", "r2"} else None

    wait_for(releases_scraped, 20, "Prometheus to hold both releases' series")


def test_a_candidate_that_crashes_is_rolled_back_whatever_the_numbers(running: Slipway) -> None:
    app = canary_app(running)
    app.write_config(
        scale={"web": 2}, env={"GREETING": "two"}, deploy=CANARY | {"step_min_seconds": "30s"}
    )
    with BackgroundLoad(app.url, concurrency=4, rate=150) as load:
        running.deploy(app, "--detach")
        wait_for(lambda: canary_state(running), 30, "the canary to start")
        victim = next(i for i in running.ps("hello") if i["release"] == "r2")
        os.kill(victim["pid"], signal.SIGKILL)
        final = running.wait_idle("hello")
        load.stop()
    assert final["current_release"] == "r1"
    error = final["last_deployment"]["error"]
    assert f"instance {victim['id']} crashed during the canary" in error["message"]
    assert "last exit: signal SIGKILL" in error["message"]
