"""Bad input: a clear message (what, where, how to fix), a non-zero exit, nothing serving
touched."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx

from tests.integration.conftest import Slipway, free_port


def assert_serving(url: str, release: str) -> None:
    for _ in range(4):
        response = httpx.get(url, timeout=5)
        assert response.status_code == 200 and response.json()["release"] == release


def test_crash_on_boot_aborts_and_keeps_old_release(running: Slipway) -> None:
    app = running.make_app()
    running.deploy(app)
    app.write_config(env={"CRASH_ON_BOOT": "1"})
    result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "is crash-looping" in result.stderr
    assert "CRASH_ON_BOOT=1: failing before listening" in result.stderr, "last log lines shown"
    assert "last exit: code 3" in result.stderr and "fix:" in result.stderr
    assert_serving(app.url, "r1")
    assert {i["release"] for i in running.ps("hello")} == {"r1"}
    last = running.app_status("hello")["last_deployment"]
    assert last["outcome"] == "failed" and last["to_release"] == "r2"


def test_never_healthy_times_out_with_evidence(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    app.write_config(scale={"web": 1}, env={"BOOT_SECONDS": "60"}, deploy={"health_timeout": "3s"})
    result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "did not become healthy within 3s" in result.stderr
    assert "last check: GET /up failed" in result.stderr
    assert "booting for 60.0s" in result.stderr
    assert_serving(app.url, "r1")
    assert {i["release"] for i in running.ps("hello")} == {"r1"}


def test_failed_build_is_recorded_and_touches_nothing(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    app.write_config(scale={"web": 1}, build={"command": "echo compiling; echo oops >&2; exit 7"})
    result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "the build command failed with exit code 7" in result.stderr
    assert "oops" in result.stderr and "full log:" in result.stderr
    releases = running.json("releases", "--app", "hello")
    assert releases[0]["id"] == "r2" and releases[0]["status"] == "failed"
    assert not releases[0]["on_disk"]
    log = running.home / "apps" / "hello" / "builds" / "r2.log"
    assert "compiling" in log.read_text()
    assert_serving(app.url, "r1")


def test_second_deploy_is_refused_while_one_runs(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1}, env={"BOOT_SECONDS": "4"})
    running.deploy(app)
    running.deploy(app, "--detach")
    refused = running.deploy(app, check=False)
    assert refused.returncode == 1
    assert "is locked by deployment #2" in refused.stderr
    assert "started by" in refused.stderr and "at step" in refused.stderr
    scale = running.run("scale", "web=2", "--app", "hello", check=False)
    assert scale.returncode == 1 and "locked by deployment #2" in scale.stderr
    running.wait_idle("hello")
    assert running.app_status("hello")["current_release"] == "r2"


def test_port_in_use_is_refused_and_other_apps_keep_serving(running: Slipway) -> None:
    other = running.make_app("other", scale={"web": 1})
    running.deploy(other)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        app = running.make_app("hello", scale={"web": 1})
        app.port = port
        app.write_config(scale={"web": 1})
        result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert f"held by pid {os.getpid()}" in result.stderr
    assert "listen.port" in result.stderr and "fix:" in result.stderr
    assert_serving(other.url, "r1")
    assert [i["app"] for i in running.json("ps")] == ["other"], "hello's instances were stopped"


def test_two_apps_on_one_port_need_host_names(running: Slipway) -> None:
    first = running.make_app("first", scale={"web": 1})
    running.deploy(first)
    second = running.make_app("second", scale={"web": 1})
    second.port = first.port
    second.write_config(scale={"web": 1})
    result = running.deploy(second, check=False)
    assert result.returncode == 1
    assert "both listen on" in result.stderr and "first" in result.stderr
    assert "hosts" in result.stderr
    assert_serving(first.url, "r1")
    # With host names, both share the port.
    first.write_config(scale={"web": 1}, listen={"hosts": ["first.test"]})
    second.write_config(scale={"web": 1}, listen={"hosts": ["second.test"]})
    running.deploy(first)
    running.deploy(second)
    for host, app in (("first.test", "first"), ("second.test", "second")):
        response = httpx.get(first.url, headers={"Host": host}, timeout=5)
        assert response.status_code == 200 and response.json()["release"] in ("r1", "r2")
        assert response.json()["instance"].startswith("r")
        assert app in running.json("ps", "--app", app)[0]["app"]
    unknown = httpx.get(first.url, headers={"Host": "nobody.test"}, timeout=5)
    assert unknown.status_code == 404


def test_invalid_config_names_key_and_line(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    config = app.dir / "slipway.toml"
    config.write_text(
        config.read_text()
        .replace('interval = "500ms"', 'interval = "soon"')
        .replace("[deploy]", "[deploy]\ncolour = 1")
    )
    for args in (("deploy", "--app", str(app.dir)), ("config", "check", "--app", str(app.dir))):
        result = running.run(*args, check=False)
        assert result.returncode == 1
        assert (
            "healthcheck.interval" in result.stderr and 'invalid duration "soon"' in result.stderr
        )
        assert "deploy.colour: unknown key 'colour'" in result.stderr
        assert "slipway.toml:" in result.stderr and "fix:" in result.stderr
    line = next(n for n, text in enumerate(config.read_text().splitlines(), 1) if "soon" in text)
    assert (
        f"slipway.toml:{line}: healthcheck.interval"
        in running.run("config", "check", "--app", str(app.dir), check=False).stderr
    )
    assert_serving(app.url, "r1")


def test_folder_without_config(running: Slipway) -> None:
    empty = running.workdir / "empty"
    empty.mkdir()
    result = running.run("deploy", "--app", str(empty), check=False)
    assert result.returncode == 1
    assert "no slipway.toml in this folder" in result.stderr and "slipway init" in result.stderr


def test_rollback_to_unknown_or_missing_release(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    nothing = running.run("rollback", "--app", "hello", check=False)
    assert nothing.returncode == 1 and "no app named 'hello'" in nothing.stderr
    running.deploy(app)
    first = running.run("rollback", "--app", "hello", check=False)
    assert first.returncode == 1 and "no earlier release" in first.stderr
    unknown = running.run("rollback", "r9", "--app", "hello", check=False)
    assert unknown.returncode == 1
    assert "has no release 'r9'" in unknown.stderr and "r1" in unknown.stderr
    assert_serving(app.url, "r1")


def test_scale_bad_counts(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    negative = running.run("scale", "web=-1", "--app", "hello", check=False)
    assert negative.returncode == 2 and "cannot be negative" in negative.stderr
    unknown = running.run("scale", "cron=1", "--app", "hello", check=False)
    assert unknown.returncode == 2 and "no process type 'cron'" in unknown.stderr
    assert "process types: web" in unknown.stderr
    zero = running.run("scale", "web=0", "--app", "hello", check=False)
    assert zero.returncode == 2 and "nowhere to go" in zero.stderr
    assert len(running.ps("hello")) == 1


def test_daemon_not_running(slipway: Slipway) -> None:
    for args in (("status",), ("ps",), ("deploy", "--app", str(slipway.make_app().dir))):
        result = slipway.run(*args, check=False)
        assert result.returncode == 1, args
        assert "the slipway daemon is not running" in result.stderr
        assert "slipway up" in result.stderr


def test_haproxy_missing_says_how_to_install(slipway: Slipway) -> None:
    path = ":".join(p for p in os.environ["PATH"].split(":") if "sbin" not in p)
    env = slipway.env(PATH=path)
    env.pop("SLIPWAY_HAPROXY", None)
    result = subprocess.run(
        [sys.executable, "-m", "slipway", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "HAProxy is not installed" in result.stderr
    assert "apt-get install haproxy" in result.stderr
    assert not (slipway.home / "daemon.pid").exists()


def test_usage_errors_exit_2(slipway: Slipway) -> None:
    result = slipway.run("deploy", "--no-such-flag", check=False)
    assert result.returncode == 2
    assert slipway.run("scale", check=False).returncode == 2
    assert free_port() > 0
