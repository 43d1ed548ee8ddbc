"""Deploys, rollbacks, scaling and the read commands, against the real daemon and HAProxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx

from tests.integration.conftest import Slipway, wait_for


def release_answering(url: str) -> str:
    return str(httpx.get(url, timeout=5).json()["release"])


def test_first_deploy_serves_through_haproxy(running: Slipway) -> None:
    app = running.make_app(scale={"web": 2})
    result = running.deploy(app)
    for step in ("build", "start", "health", "shift", "drain", "retire"):
        assert f"✓ {step}" in result.stdout, result.stdout
    answers = {httpx.get(app.url, timeout=5).json()["instance"] for _ in range(6)}
    assert len(answers) == 2, "both web instances take traffic (roundrobin)"

    status = running.app_status("hello")
    assert status["current_release"] == "r1"
    assert status["url"] == app.url
    instances = running.ps("hello")
    assert sorted(i["role"] for i in instances) == ["serving", "serving"]
    assert all(i["check"] == "UP L7OK" and i["traffic_percent"] == 50.0 for i in instances)
    releases = running.json("releases", "--app", "hello")
    assert releases[0]["id"] == "r1" and releases[0]["current"] and releases[0]["status"] == "ready"
    assert len(releases[0]["config_hash"]) == 12


def test_redeploy_keeps_previous_warm_and_rollback_is_a_switch(running: Slipway) -> None:
    app = running.make_app()
    running.deploy(app)
    first_pids = {i["pid"] for i in running.ps("hello")}
    app.write_config(env={"GREETING": "second"})
    running.deploy(app)
    assert release_answering(app.url) == "r2"
    roles = {(i["release"], i["role"]) for i in running.ps("hello")}
    assert roles == {("r1", "warm"), ("r2", "serving")}
    assert running.app_status("hello")["warm_release"] == "r1"

    out = running.run("rollback", "--app", "hello").stdout
    assert "reusing 2" in out, out
    assert release_answering(app.url) == "r1"
    # The warm instances took the traffic back: the same processes, nothing restarted.
    serving = [i for i in running.ps("hello") if i["role"] == "serving"]
    assert {i["pid"] for i in serving} == first_pids
    assert running.app_status("hello")["warm_release"] == "r2"


def test_rollback_to_a_named_cold_release_starts_it_again(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1}, deploy={"keep_warm": "0s"})
    for greeting in ("one", "two", "three"):
        app.write_config(scale={"web": 1}, env={"GREETING": greeting}, deploy={"keep_warm": "0s"})
        running.deploy(app)
    assert [i["release"] for i in running.ps("hello")] == ["r3"], "keep_warm=0 stops r2 at once"
    out = running.run("rollback", "r1", "--app", "hello").stdout
    assert "started 1 instance(s)" in out
    body = httpx.get(app.url, timeout=5).json()
    assert body["release"] == "r1" and body["greeting"] == "one"
    assert [i["release"] for i in running.ps("hello")] == ["r1"]


def test_deploy_a_git_revision(running: Slipway) -> None:
    app = running.make_app(env={"GREETING": "committed"})
    git = ["git", "-C", str(app.dir), "-c", "user.email=t@e", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    sha = subprocess.run(
        [*git[:3], "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    app.write_config(env={"GREETING": "uncommitted"})  # must not be deployed
    running.deploy(app, "--git", "HEAD")
    body = httpx.get(app.url, timeout=5).json()
    assert body["greeting"] == "committed"
    release = running.json("releases", "--app", "hello")[0]
    assert release["git_sha"] == sha and release["source_kind"] == "git"

    bad = running.deploy(app, "--git", "no-such-branch", check=False)
    assert bad.returncode == 1
    assert "no-such-branch" in bad.stderr and "fix:" in bad.stderr


def test_scale_up_and_down_without_dropping_traffic(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    running.run("scale", "web=3", "--app", "hello")
    assert len([i for i in running.ps("hello") if i["role"] == "serving"]) == 3
    seen = {httpx.get(app.url, timeout=5).json()["instance"] for _ in range(9)}
    assert len(seen) == 3
    running.run("scale", "web=1", "--app", "hello")
    assert len(running.ps("hello")) == 1
    assert running.app_status("hello")["formation"] == {"web": 1}
    # A later deploy keeps the scale chosen by hand while [scale] is unchanged.
    running.run("scale", "web=2", "--app", "hello")
    running.deploy(app)
    assert running.app_status("hello")["formation"] == {"web": 2}


def test_logs_filter_by_release_and_process(running: Slipway) -> None:
    app = running.make_app(
        processes={"web": "python app.py --port $PORT", "worker": "python worker.py"},
        scale={"web": 1, "worker": 1},
        env={"JOB_SECONDS": "0.2"},
    )
    running.deploy(app)
    app.write_config(
        processes={"web": "python app.py --port $PORT", "worker": "python worker.py"},
        scale={"web": 1, "worker": 1},
        env={"JOB_SECONDS": "0.2"},
    )
    running.deploy(app)

    def worker_lines() -> list[dict[str, object]]:
        lines = running.run(
            "logs", "--app", "hello", "--process", "worker", "--release", "r2", "--json", "-n", "50"
        ).stdout.splitlines()
        return [json.loads(line) for line in lines]

    lines = wait_for(
        lambda: [ln for ln in worker_lines() if "finished" in str(ln["message"])],
        10,
        "worker job lines",
    )
    assert all(ln["release"] == "r2" and ln["process"] == "worker" for ln in lines)
    assert {"time", "app", "release", "instance", "stream", "message"} <= set(lines[0])
    web = running.run("logs", "--app", "hello", "--release", "r1", "--process", "web").stdout
    assert "hello r1 listening" in web and "r2" not in web.split("|")[0]

    follow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "slipway",
            "logs",
            "--app",
            "hello",
            "-f",
            "--process",
            "worker",
            "-n",
            "0",
        ],
        env=running.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        deadline = time.monotonic() + 10
        line = follow.stdout.readline()
        assert "job" in line and time.monotonic() < deadline
    finally:
        follow.terminate()
        follow.wait(5)


def test_read_commands_all_speak_json(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    status = running.json("status")
    assert status["router"]["running"] and status["daemon"]["pid"] > 0
    assert status["apps"][0]["url"] == app.url and status["apps"][0]["current_release"] == "r1"
    assert running.json("releases", "--app", "hello")[0]["id"] == "r1"
    assert running.json("ps", "--app", "hello")[0]["release"] == "r1"
    check = running.json("config", "check", "--app", str(app.dir))
    assert check["valid"] and check["config"]["name"] == "hello"
    deployed = running.json("deploy", "--app", str(app.dir))
    assert deployed["deployment"]["outcome"] == "succeeded"
    ok_steps = [e["step"] for e in deployed["events"] if e["status"] == "ok"]
    assert ok_steps[:3] == ["build", "gates", "start"]


def test_a_full_host_takes_no_more_instances_and_the_fleet_full_alert_says_why(
    running: Slipway,
) -> None:
    needs: dict[str, Any] = {"resources.web": {"cpu": 0.5, "memory": "64MB"}}
    app = running.make_app(scale={"web": 2}, **needs)
    running.run("hosts", "capacity", "local", "--cpus", "1.2")
    running.deploy(app)  # 1 of the 1.2 cores slipway may use
    refused = running.run("scale", "web=3", "--app", "hello", check=False)
    assert refused.returncode != 0
    assert "the fleet is full" in refused.stdout + refused.stderr
    assert len(running.ps("hello")) == 2  # nothing squeezed in, nothing taken away
    assert httpx.get(app.url, timeout=5).status_code == 200
    local = next(h for h in running.json("hosts") if h["name"] == "local")
    assert (local["used"]["cpu"], local["capacity"]["cpu"]) == (1.0, 1.2)

    def fleet_full() -> bool:
        alerts = running.json("alerts", "--app", "hello")["alerts"]
        return any(a["rule"] == "fleet full" and a["state"] == "firing" for a in alerts)

    wait_for(fleet_full, 20, "the fleet-full alert")
    running.run("hosts", "capacity", "local", "--reset")
    running.run("scale", "web=3", "--app", "hello")  # room again: the alert resolves
    wait_for(lambda: not fleet_full(), 20, "the fleet-full alert to resolve")
