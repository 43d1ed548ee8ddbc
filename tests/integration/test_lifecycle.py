"""`slipway init`, the foreground server, and releases kept on disk."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from tests.integration.conftest import Slipway, wait_for


def test_init_writes_a_config_that_checks(slipway: Slipway) -> None:
    folder = slipway.workdir / "My App"
    folder.mkdir()
    (folder / "main.py").write_text("print('hi')\n")
    (folder / "requirements.txt").write_text("")
    slipway.run("init", str(folder))
    text = (folder / "slipway.toml").read_text()
    assert 'name = "my-app"' in text
    assert 'web = "python main.py --port $PORT"' in text
    assert 'command = "pip install -r requirements.txt"' in text
    assert "# " in text, "the file explains itself"
    check = slipway.json("config", "check", "--app", str(folder))
    assert check["valid"] and check["config"]["processes"]["web"].endswith("$PORT")
    again = slipway.run("init", str(folder), check=False)
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr
    slipway.run("init", str(folder), "--force", "--name", "shop", "--port", "9000")
    assert slipway.json("config", "check", "--app", str(folder))["config"]["listen"]["port"] == 9000


def test_server_runs_in_the_foreground_with_json_logs(slipway: Slipway) -> None:
    app = slipway.make_app(scale={"web": 1})
    server = subprocess.Popen(
        [sys.executable, "-m", "slipway", "server"],
        env=slipway.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: slipway.run("status", check=False).returncode == 0, 30, "the daemon")
        slipway.deploy(app)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0
    assert '"logger": "slipway.deploy"' in err and "r1 is serving" in err
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1", "apps outlive the daemon"


def test_old_releases_are_pruned_and_cannot_be_rolled_back_to(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1}, deploy={"keep_releases": 2, "keep_warm": "0s"})
    for _ in range(4):
        running.deploy(app)
    releases = {r["id"]: r for r in running.json("releases", "--app", "hello")}
    assert [rid for rid, r in releases.items() if r["on_disk"]] == ["r4", "r3"]
    old = running.home / "apps" / "hello" / "releases" / "r1"
    wait_for(lambda: not old.exists(), 10, "r1's files to be deleted")
    refused = running.run("rollback", "r1", "--app", "hello", check=False)
    assert refused.returncode == 1 and "no longer on disk" in refused.stderr
    running.run("rollback", "--app", "hello")
    assert httpx.get(app.url, timeout=5).json()["release"] == "r3"
