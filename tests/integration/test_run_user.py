"""`[run] user`: the app runs as its own user, its release is readable by that user's group
only (never by everyone), and a Python the user cannot run is refused before anything is
built."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import Slipway

SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def app_user() -> Iterator[pwd.struct_passwd]:
    """A system user made for the test (list it before the daemon's fixture: removed last)."""
    if os.geteuid() != 0:
        pytest.skip("running apps as another user needs a root daemon")
    if not Path(SYSTEM_PYTHON).exists():
        pytest.skip(f"{SYSTEM_PYTHON} is needed: a Python every user can run")
    name = f"swt{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("source_mode", [0o755, 0o700])
def test_the_release_is_the_app_users_alone(
    app_user: pwd.struct_passwd, running: Slipway, source_mode: int
) -> None:
    running.home.parent.chmod(0o711)  # as /var/lib is: a home every user may pass through
    app = running.make_app(scale={"web": 1}, run={"user": app_user.pw_name},
                           build={"python": SYSTEM_PYTHON})  # fmt: skip
    private = app.dir / "private.txt"
    private.write_text("only the app may read this\n")
    private.chmod(0o600)
    app.dir.chmod(source_mode)
    running.deploy(app)
    (instance,) = running.ps("hello")
    assert psutil.Process(instance["pid"]).uids().real == app_user.pw_uid
    assert httpx.get(app.url, timeout=5).json()["release"] == "r1"
    release = running.home / "apps" / "hello" / "releases" / "r1"
    for path in [release, *release.rglob("*")]:
        if path.is_symlink():
            continue
        assert mode(path) & 0o007 == 0, f"{path} is {mode(path):o}: others may read it"
        assert path.stat().st_gid == app_user.pw_gid, path
    assert mode(release / "private.txt") == 0o640
    assert (
        mode(release / ".venv" / "bin" / "python") & stat.S_IXGRP
        or (release / ".venv" / "bin" / "python").is_symlink()
    )
    for folder in (release.parent, release.parent.parent):  # releases/, apps/hello/
        assert mode(folder) == 0o710 and folder.stat().st_gid == app_user.pw_gid, folder
    for folder in (running.home, running.home / "apps"):
        assert mode(folder) == 0o701, folder  # others may pass through: nothing to list
    for private_file in ("state.db", "secrets.key", "audit.key"):
        path = running.home / private_file
        if path.exists():
            assert mode(path) == 0o600, path


def test_a_python_the_user_cannot_run_is_refused_before_anything_is_built(
    app_user: pwd.struct_passwd, running: Slipway
) -> None:
    hidden = Path(tempfile.mkdtemp(prefix="swpy-", dir="/tmp"))  # 0700, root's
    try:
        python = hidden / "python3"
        shutil.copy2(os.path.realpath(SYSTEM_PYTHON), python)
        running.home.parent.chmod(0o711)
        app = running.make_app(run={"user": app_user.pw_name}, build={"python": str(python)})
        check = running.run("config", "check", "--app", str(app.dir), check=False)
        assert check.returncode != 0
        said = check.stdout + check.stderr
        assert f"[run] user '{app_user.pw_name}' cannot run {python}" in said, said
        assert f"{hidden} is 700" in said and "[build] python" in said, said
        deploy = running.deploy(app, check=False)
        assert deploy.returncode != 0 and "cannot run" in deploy.stdout + deploy.stderr
        assert running.json("status")["apps"] == []  # nothing was recorded or built
    finally:
        shutil.rmtree(hidden, ignore_errors=True)


def test_a_home_the_user_cannot_reach_is_refused(app_user: pwd.struct_passwd, running: Slipway):
    """The test's home is inside a 0700 folder, as the default home of root (under /root) is."""
    app = running.make_app(run={"user": app_user.pw_name}, build={"python": SYSTEM_PYTHON})
    deploy = running.deploy(app, check=False)
    said = deploy.stdout + deploy.stderr
    assert deploy.returncode != 0
    assert f"[run] user '{app_user.pw_name}' cannot reach slipway's home {running.home}" in said
    assert f"{running.home.parent} is 700" in said and "SLIPWAY_HOME=/var/lib/slipway" in said
