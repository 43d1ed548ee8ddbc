"""The HTTP API fuzzed from its own OpenAPI description (schemathesis, invalid requests only)
against the real daemon: no answer is a 5xx, and no invalid request changes any state."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.conftest import Slipway


def state(slipway: Slipway, app: str) -> dict[str, Any]:
    tokens = slipway.json("tokens", "list")
    return {
        "apps": [
            (a["name"], a["current_release"], a["formation"], a["last_deployment"])
            for a in slipway.json("status")["apps"]
        ],
        "releases": slipway.json("releases", "--app", app),
        "secrets": slipway.json("secrets", "list", "--app", app),
        "tokens": [(t["id"], t["name"], t["role"], t["state"]) for t in tokens],
    }


def test_invalid_requests_get_no_5xx_and_change_nothing(running: Slipway, tmp_path: Path) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    subprocess.run(
        [sys.executable, "-m", "slipway", "secrets", "set", "FUZZ", "--app", app.name],
        input="value",
        text=True,
        env=running.env(),
        check=True,
        capture_output=True,
    )
    admin = running.json("tokens", "create", "--name", "fuzzer", "--role", "admin")["token"]
    before = state(running, app.name)
    base = (running.home / "http.url").read_text().strip()
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st) if st.exists() else shutil.which("st") or "st",
            "run",
            f"{base}v1/openapi.json",
            "--header",
            f"Authorization: Bearer {admin}",
            "--mode",
            "negative",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--seed",
            "20261127",
            "--exclude-path",
            "/v1/shutdown",  # valid with any body; would stop the daemon under test
            "--exclude-path",
            "/v1/secrets/rotate-key",  # takes no input, so nothing about it is invalid
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    assert state(running, app.name) == before
    assert running.run("audit", "verify").returncode == 0
