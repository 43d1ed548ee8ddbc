"""Secrets end to end: encrypted at rest, given to instances as env vars at start, hidden in
every log, response and page, tied to releases (a rollback returns to the old values)."""

from __future__ import annotations

import base64
import os
import pwd
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.conftest import App, Slipway, wait_for

TRICKY = "p@ss \"w0rd\" '$(rm -rf /)' # not a comment \\n ünïcødé ☃\nsecond line of it"
CANARY = "canary-7f3a9c1e-do-not-leak-4b2d"
CRASHER = """\
import os, sys
print("environment at boot:", dict(os.environ), flush=True)
print(os.environ.get("CANARY_SECRET"), file=sys.stderr, flush=True)
raise SystemExit("crashing on purpose")
"""


def set_secret(slipway: Slipway, app: App, name: str, value: str, *args: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "slipway", "secrets", "set", name, "--app", app.name, *args],
        input=value,
        capture_output=True,
        text=True,
        env=slipway.env(),
        cwd=app.dir,
        timeout=120,
    )


def reveal(slipway: Slipway, app: App, name: str) -> subprocess.CompletedProcess[str]:
    return slipway.run("secrets", "get", name, "--reveal", "--app", app.name, check=False)


def instance_env(slipway: Slipway, app: App, release: str) -> dict[str, str]:
    serving = [i for i in slipway.ps(app.name) if i["release"] == release and i["pid"]]
    assert serving, slipway.ps(app.name)
    environ: dict[str, str] = psutil.Process(serving[0]["pid"]).environ()
    return environ


def test_a_secret_reaches_instances_round_trips_and_follows_releases(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    config = app.dir / "slipway.toml"
    config.write_text('secrets = ["API_TOKEN"]\n' + config.read_text())

    refused = running.deploy(app, check=False)
    assert refused.returncode == 1
    assert "needs secret(s) API_TOKEN, which are not set" in refused.stderr
    assert "slipway secrets set API_TOKEN" in refused.stderr
    assert running.json("status")["apps"] == [], "nothing was built or started"

    assert set_secret(running, app, "API_TOKEN", TRICKY + "\n").returncode == 0
    assert reveal(running, app, "API_TOKEN").stdout == TRICKY  # exact, piped
    running.deploy(app)
    assert instance_env(running, app, "r1")["API_TOKEN"] == TRICKY

    changed = set_secret(running, app, "API_TOKEN", "second-value\n")
    assert changed.returncode == 0, changed.stderr
    assert "r2 is live" in changed.stdout  # a new release, deployed with the new value
    assert instance_env(running, app, "r2")["API_TOKEN"] == "second-value"
    listing = running.json("secrets", "list", "--app", app.name)
    assert [(s["name"], s["version"], s["set"]) for s in listing] == [("API_TOKEN", 2, True)]
    assert "second-value" not in str(listing)

    running.run("rollback", "--app", app.name)
    assert instance_env(running, app, "r1")["API_TOKEN"] == TRICKY, "rollback: old values"

    needed = running.run("secrets", "unset", "API_TOKEN", "--app", app.name, check=False)
    assert needed.returncode != 0 and "runs with secret API_TOKEN" in needed.stderr
    argv = running.run("secrets", "set", "API_TOKEN=x", "--app", app.name, check=False)
    assert argv.returncode != 0 and "read from stdin" in argv.stderr


def test_a_wrong_key_tampered_or_truncated_data_is_refused_never_plain_text(
    running: Slipway,
) -> None:
    app = running.make_app()
    assert set_secret(running, app, "DB_URL", "postgres://u:pw@db/x").returncode == 0
    key_file = running.home / "secrets.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    good_key = key_file.read_bytes()

    rotated = running.json("secrets", "rotate-key")
    assert rotated["reencrypted"] == 1 and rotated["old_key"] != rotated["new_key"]
    assert key_file.read_bytes() != good_key
    assert reveal(running, app, "DB_URL").stdout == "postgres://u:pw@db/x"

    db = running.home / "state.db"

    def corrupt(sql: str) -> None:
        with sqlite3.connect(db) as conn:
            conn.execute(sql)

    corrupt("UPDATE secrets SET ciphertext = ciphertext || X'00'")  # tampered
    tampered = reveal(running, app, "DB_URL")
    assert tampered.returncode != 0 and "tampered or moved" in tampered.stderr
    corrupt("UPDATE secrets SET ciphertext = substr(ciphertext, 1, 4)")  # truncated
    truncated = reveal(running, app, "DB_URL")
    assert truncated.returncode != 0 and "truncated" in truncated.stderr
    for result in (tampered, truncated):
        assert "postgres" not in result.stdout + result.stderr

    # A different key (the daemon reads it at start): refused, naming both key ids.
    running.run("down")
    key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
    running.run("up")
    wrong = reveal(running, app, "DB_URL")
    assert wrong.returncode != 0 and "was encrypted with key" in wrong.stderr

    # A truncated store: the daemon refuses to start on it, and says so.
    running.run("down", "--all")
    pidfile = running.home / "daemon.pid"
    wait_for(lambda: not pidfile.exists(), 10, "the daemon to close its database")
    with open(db, "r+b") as damaged:
        damaged.truncate(8192)

    started = running.run("up", check=False)
    assert started.returncode != 0
    assert "the state database is damaged or truncated" in started.stdout + started.stderr


def test_the_secret_canary_appears_nowhere_outside_the_encrypted_store(
    running: Slipway,
) -> None:
    app = running.make_app(processes={"web": "python crasher.py --port $PORT"})
    (app.dir / "crasher.py").write_text(CRASHER)
    config = app.dir / "slipway.toml"
    config.write_text('secrets = ["CANARY_SECRET"]\n' + config.read_text())
    assert set_secret(running, app, "CANARY_SECRET", CANARY).returncode == 0

    failed = running.deploy(app, check=False)
    assert failed.returncode == 1 and "crash" in failed.stderr
    assert "[redacted]" in failed.stderr  # the crash log is the evidence, value hidden

    said = [failed.stdout, failed.stderr]
    for command in (
        ["status"],
        ["ps", "--app", app.name],
        ["releases", "--app", app.name],
        ["logs", "--app", app.name, "-n", "500"],
        ["secrets", "list", "--app", app.name],
        ["gates", "--app", app.name],
    ):
        said.append(running.run(*command, "--json", check=False).stdout)
    logs = running.run("logs", "--app", app.name, "-n", "500").stdout
    assert "environment at boot" in logs and "[redacted]" in logs
    said.append(logs)
    url = (running.home / "http.url").read_text().strip()
    token = running.json("tokens", "create", "--name", "reader", "--role", "viewer")["token"]
    cookies = {"slipway_session": token}
    for page in ("", f"apps/{app.name}", f"v1/apps/{app.name}/deployments", "v1/status"):
        answer = httpx.get(url + page, cookies=cookies, timeout=5)
        assert answer.status_code == 200, (page, answer.text[:200])
        said.append(answer.text)

    leaks = [text[:200] for text in said if CANARY in text]
    assert not leaks, leaks
    on_disk = [
        str(path)
        for path in running.home.rglob("*")
        if path.is_file() and CANARY.encode() in path.read_bytes()
    ]
    assert not on_disk, on_disk
    wait_for(lambda: reveal(running, app, "CANARY_SECRET").stdout == CANARY, 5, "the value")


def test_secret_values_round_trip_exactly(running: Slipway, tmp_path: Path) -> None:
    app = running.make_app()
    values = {
        "NEWLINES": "a\nb\n\nc",
        "QUOTES": 'it\'s "quoted" `x`',
        "SHELL": "$(id) ${HOME} && rm -rf / ; echo",
        "HASH": "# not a comment = 1",
        "UNICODE": "ünïcødé — 日本語 — 🔑",
        "EMPTY": "",
    }
    for name, value in values.items():
        proc = set_secret(running, app, name, value)
        assert proc.returncode == 0, proc.stderr
        assert reveal(running, app, name).stdout == value, name


def test_a_root_daemon_runs_the_app_as_its_user_and_keeps_state_private(
    running: Slipway,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root daemon switches users")
    nobody = pwd.getpwnam("nobody")
    running.home.parent.chmod(0o711)  # the test's own temp folder: enter, not list
    missing = running.make_app(run={"user": "no-such-user-here"})
    failed = running.deploy(missing, check=False)
    assert failed.returncode == 1 and "does not exist on this host" in failed.stderr
    # The system's Python (for the app and its release's virtualenv): the Python that runs
    # slipway lives under /root (0700) here, where no other user may execute anything.
    app = running.make_app(
        name="privy",
        run={"user": "nobody"},
        scale={"web": 1},
        processes={"web": "/usr/bin/python3 app.py --port $PORT"},
        build={"python": "/usr/bin/python3"},
    )
    assert set_secret(running, app, "X_TOKEN", "unused-value").returncode == 0
    running.deploy(app)
    (serving,) = running.ps(app.name)
    assert psutil.Process(serving["pid"]).uids().real == nobody.pw_uid
    assert httpx.get(app.url, timeout=5).status_code == 200
    for private in ("secrets.key", "state.db", "audit.key", "audit.log"):
        assert (running.home / private).stat().st_mode & 0o077 == 0, private
