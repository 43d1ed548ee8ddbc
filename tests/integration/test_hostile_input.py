"""Hostile and malformed input against the real daemon and CLI: a clear 4xx (what, where, how
to fix) or a clear CLI error, never a 500, a frozen daemon, or a change of state."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from tests.integration.conftest import Slipway, wait_for

LOG_LINES = 200_000


def api(running: Slipway, role: str = "admin") -> tuple[str, dict[str, str]]:
    """The daemon's HTTP base URL and a bearer header for a new token of `role`."""
    token = running.json("tokens", "create", "--name", f"t-{role}", "--role", role)["token"]
    base = (running.home / "http.url").read_text().strip().rstrip("/")
    return base, {"Authorization": f"Bearer {token}"}


def error_of(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, (answer.status_code, answer.text[:500])
    error: dict[str, Any] = answer.json()["error"]
    assert error["fix"], error
    return error


def write_log_lines(running: Slipway, app: str, count: int) -> None:
    """Append `count` lines of 28 x's to the app's instance log, as its output would be."""
    [instance] = running.ps(app)
    log = running.home / "apps" / app / "instances" / instance["id"] / "output.log"
    line = json.dumps({"t": time.time(), "s": "out", "m": "x" * 28}) + "\n"
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(line * count)


def test_a_pathological_grep_answers_fast_and_the_daemon_stays_responsive(
    running: Slipway,
) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    write_log_lines(running, "hello", LOG_LINES)
    base, viewer = api(running, "viewer")
    logs = f"{base}/v1/apps/hello/logs"
    # With backtracking, (x+x+)+y tries ~2^28 ways per line of 28 x's: the old daemon froze.
    result: dict[str, Any] = {}

    def grep() -> None:
        began = time.monotonic()
        answer = httpx.get(
            logs, params={"grep": "(x+x+)+y", "lines": "50"}, headers=viewer, timeout=30
        )
        result.update(answer=answer, seconds=time.monotonic() - began)

    worker = threading.Thread(target=grep)
    worker.start()
    status_seconds = []
    while worker.is_alive():
        began = time.monotonic()
        assert httpx.get(f"{base}/v1/status", headers=viewer, timeout=30).status_code == 200
        if worker.is_alive():  # answered while the scan was going on
            status_seconds.append(time.monotonic() - began)
    worker.join()
    assert result["answer"].status_code == 200 and result["answer"].text == ""
    assert result["seconds"] < 10, f"the grep over {LOG_LINES} lines took {result['seconds']}s"
    assert status_seconds, "the scan ended before any other request could be made"
    assert max(status_seconds) < 2, f"the daemon stalled {max(status_seconds):.1f}s"
    # a linear-time engine still finds what matches
    found = httpx.get(logs, params={"grep": "^x{28}$", "lines": "3"}, headers=viewer, timeout=30)
    assert [json.loads(ln)["message"] for ln in found.text.splitlines()] == ["x" * 28] * 3
    # what RE2 cannot do is named, not a 500
    for pattern, feature in (
        (r"(x)\1", "backreferences"),
        ("x(?=y)", "lookahead"),
        ("(?<!a)x", "negative lookbehind"),
    ):
        error = error_of(httpx.get(logs, params={"grep": pattern}, headers=viewer), 400)
        assert feature in error["message"] and error["where"] == "grep", error
    error = error_of(httpx.get(logs, params={"grep": "x" * 513}, headers=viewer), 400)
    assert "at most 512" in error["message"]


def test_every_query_parameter_is_parsed_and_bounded_with_a_400_naming_it(
    running: Slipway,
) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    base, viewer = api(running, "viewer")
    deployment = running.app_status("hello")["last_deployment"]["id"]
    cases = [
        ("/v1/apps/hello/logs", {"lines": "abc"}, "lines", "whole number"),
        ("/v1/apps/hello/logs", {"lines": "-1"}, "lines", "between 0 and 10000"),
        ("/v1/apps/hello/logs", {"lines": "10001"}, "lines", "between 0 and 10000"),
        ("/v1/apps/hello/logs", {"lines": "9" * 5000}, "lines", "whole number"),
        ("/v1/apps/hello/logs", {"follow": "maybe"}, "follow", "1 or 0"),
        (f"/v1/deployments/{deployment}/events", {"after": "abc"}, "after", "whole number"),
        (f"/v1/deployments/{deployment}/events", {"after": "-5"}, "after", "between 0"),
        (f"/v1/deployments/{deployment}/events", {"after": str(2**64)}, "after", "between 0"),
        (f"/v1/deployments/{deployment}/events", {"follow": "yes"}, "follow", "1 or 0"),
        ("/v1/deployments/99999999999999999999999", {}, "id", "out of range"),
        ("/v1/deployments/" + "9" * 5000, {}, "id", "out of range"),
        ("/v1/deployments/99999999999999999999999/events", {}, "id", "out of range"),
        ("/v1/deployments/99999999999999999999999/analysis", {}, "id", "out of range"),
        ("/v1/apps/hello/requests", {"limit": "lots"}, "limit", "whole number"),
        ("/v1/apps/hello/requests", {"limit": "0"}, "limit", "between 1 and 10000"),
        ("/v1/apps/hello/metrics", {"step": "99999d"}, "step", "longer than the history"),
    ]
    for path, params, where, message in cases:
        answer = httpx.get(f"{base}{path}", params=params, headers=viewer, timeout=10)
        error = error_of(answer, 400)
        assert error["where"] == where and message in error["message"], (path, params, error)
    # in range, the whole answer arrives: exactly the lines asked for, then the stream ends
    write_log_lines(running, "hello", 20)
    answer = httpx.get(f"{base}/v1/apps/hello/logs", params={"lines": "10000"}, headers=viewer)
    assert answer.status_code == 200 and len(answer.text.splitlines()) >= 20
    zero = httpx.get(f"{base}/v1/apps/hello/logs", params={"lines": "0"}, headers=viewer)
    assert zero.status_code == 200 and zero.text == ""
    events = httpx.get(f"{base}/v1/deployments/{deployment}/events", headers=viewer)
    assert events.status_code == 200 and "final" in events.text.splitlines()[-1]
    missing = httpx.get(f"{base}/v1/deployments/{2**63 - 1}", headers=viewer)
    assert error_of(missing, 404)["message"] == f"no deployment #{2**63 - 1}"


def state(running: Slipway) -> dict[str, Any]:
    status = running.app_status("hello")
    return {
        "release": status["current_release"],
        "formation": status["formation"],
        "last": status["last_deployment"]["id"],
        "releases": [r["id"] for r in running.json("releases", "--app", "hello")],
        "secrets": running.json("secrets", "list", "--app", "hello"),
        "tokens": [t["id"] for t in running.json("tokens", "list")],
    }


def test_request_bodies_are_strict_and_bounded_and_a_bad_one_changes_nothing(
    running: Slipway,
) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    running.deploy(app)
    base, admin = api(running)
    before = state(running)
    wrong = [  # one wrongly typed (or unknown) field per request model
        ("POST", "/v1/deploy", {"app_dir": str(app.dir), "check": "yes"}, "check"),
        ("POST", "/v1/deploy", {"app_dir": 7}, "app_dir"),
        (
            "POST",
            "/v1/deploy",
            {"app_dir": str(app.dir), "skip_gates": {"code": 1}},
            "skip_gates.code",
        ),
        ("PUT", "/v1/apps/hello/secrets/TOKEN", {"value": 12345}, "value"),
        ("POST", "/v1/apps/hello/rollback", {"release": 1}, "release"),
        ("POST", "/v1/apps/hello/scale", {"counts": {"web": "2"}}, "counts.web"),
        ("POST", "/v1/apps/hello/scale", {"counts": {"web": 2.0}}, "counts.web"),
        ("POST", "/v1/shutdown", {"all": "yes"}, "all"),
        ("POST", "/v1/shutdown", {"all": 1}, "all"),
        ("POST", "/v1/shutdown", {"everything": True}, "everything"),
        ("POST", "/v1/tokens", {"name": "x", "role": "viewer", "expires": 30}, "expires"),
    ]
    for method, path, payload, where in wrong:
        answer = httpx.request(method, f"{base}{path}", json=payload, headers=admin, timeout=10)
        error = error_of(answer, 400)
        assert error["where"] == where and "bad request body" in error["message"], error
    assert state(running) == before
    assert running.run("status").returncode == 0, "the daemon is still up"
    assert httpx.get(app.url, timeout=5).status_code == 200, "HAProxy still serves the app"

    secret = f"{base}/v1/apps/hello/secrets/BIG"
    declared = httpx.put(secret, content=b"{" + b" " * (1024 * 1024 + 1) + b"}", headers=admin)
    error = error_of(declared, 413)
    assert "larger than 1048576 bytes" in error["message"] and error["where"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"value": "'
        for _ in range(64):
            yield b"x" * 32768
        yield b'"}'

    streamed = httpx.put(secret, content=chunks(), headers=admin, timeout=30)
    assert error_of(streamed, 413)["where"] == "body"
    too_big = httpx.put(secret, json={"value": "x" * (64 * 1024 + 1)}, headers=admin)
    error = error_of(too_big, 400)
    assert error["where"] == "value" and "at most 65536" in error["message"]
    assert state(running) == before, "no secret was stored"
    fits = httpx.put(secret, json={"value": "x" * 64 * 1024}, headers=admin, timeout=60)
    assert fits.status_code in (200, 202), fits.text
    assert "BIG" in {s["name"] for s in running.json("secrets", "list", "--app", "hello")}
    running.wait_idle("hello")


def git_commit(folder: Any) -> None:
    git = ["git", "-C", str(folder), "-c", "user.email=t@e", "-c", "user.name=t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "app"], check=True)


def test_bad_app_folders_get_clear_errors_and_leave_no_release_folder(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    releases = running.home / "apps" / "hello" / "releases"
    on_disk = sorted(p.name for p in releases.iterdir())

    # an absolute symlink in the committed tree
    (app.dir / "etc-link").symlink_to("/etc/passwd")
    git_commit(app.dir)
    result = running.deploy(app, "--git", "HEAD", check=False)
    assert result.returncode == 1, result.stderr
    assert "the symbolic link etc-link points to an absolute path (/etc/passwd)" in result.stderr
    assert "internal error" not in result.stderr and "fix:" in result.stderr
    assert sorted(p.name for p in releases.iterdir()) == on_disk, "a partial release was left"
    # the folder deploy refuses it too, by name
    folder = running.deploy(app, check=False)
    assert folder.returncode == 1 and "etc-link points to an absolute path" in folder.stderr
    assert sorted(p.name for p in releases.iterdir()) == on_disk
    (app.dir / "etc-link").unlink()

    # a file over [build] max_file_size
    config = app.dir / "slipway.toml"
    config.write_text(config.read_text().replace("[build]\n", '[build]\nmax_file_size = "1MB"\n'))
    with open(app.dir / "model.bin", "wb") as handle:
        handle.truncate(5 * 1024 * 1024)
    result = running.deploy(app, check=False)
    assert result.returncode == 1
    assert "model.bin is 5242880 bytes, over [build] max_file_size (1048576)" in result.stderr
    assert sorted(p.name for p in releases.iterdir()) == on_disk
    (app.dir / "model.bin").unlink()

    # a slipway.toml that is not UTF-8: config check and deploy say where and how to fix it
    text = config.read_text().replace('GREETING = "hello"', 'GREETING = "h\xe9llo"')
    config.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xe9")
    for args in (("config", "check", "--app", str(app.dir)), ("deploy", "--app", str(app.dir))):
        result = running.run(*args, check=False)
        assert result.returncode == 1, (args, result.stderr)
        assert f"not valid UTF-8: byte offset {offset}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        assert "save the file as UTF-8" in result.stderr
    git_commit(app.dir)
    result = running.deploy(app, "--git", "HEAD", check=False)
    assert result.returncode == 1 and "not valid UTF-8" in result.stderr, result.stderr

    # [env] that no process could be started with is refused by config check, at its key
    config.write_text(text.replace('GREETING = "h\xe9llo"', 'GREETING = "a\\u0000b"'))
    result = running.run("config", "check", "--app", str(app.dir), check=False)
    assert result.returncode == 1 and "env.GREETING" in result.stderr
    assert "NUL character" in result.stderr
    config.write_text(text.replace('GREETING = "h\xe9llo"', f'GREETING = "{"x" * 140_000}"'))
    result = running.run("config", "check", "--app", str(app.dir), check=False)
    assert result.returncode == 1 and "env.GREETING" in result.stderr
    assert "131072 bytes" in result.stderr
    assert wait_for(lambda: httpx.get(app.url, timeout=5).status_code == 200, 10, "serving")
    assert running.app_status("hello")["current_release"] == "r1"
