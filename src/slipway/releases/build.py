"""Building a release: an immutable snapshot of the app's files (or `git archive` of a revision)
with its own virtualenv, made by the app's build command."""

from __future__ import annotations

import asyncio
import fnmatch
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from slipway.config.schema import AppConfig
from slipway.errors import BuildError

ALWAYS_IGNORED = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".slipway",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}
IGNORE_FILE = ".slipwayignore"
BUILD_NICENESS = 10
BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


def base_env(venv: Path) -> dict[str, str]:
    """What every build and instance starts from: a clean env, not the daemon's."""
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def git(app_dir: Path, *args: str) -> str:
    """git's output; bytes that are not UTF-8 kept as lone surrogates (surrogateescape), so a
    file shown with `git show` can be reported by its bytes, not as a crash."""
    proc = subprocess.run(["git", "-C", str(app_dir), *args], capture_output=True, timeout=60)
    stdout = proc.stdout.decode("utf-8", "surrogateescape")
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace")
        raise BuildError(
            f"git {' '.join(args)} failed: {stderr.strip() or stdout.strip()}",
            where=str(app_dir),
            fix="pass a revision that exists in this repository (a branch, tag or commit sha)",
        )
    return stdout


def resolve_git_rev(app_dir: Path, rev: str) -> str:
    return git(app_dir, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()


def working_tree_sha(app_dir: Path) -> str | None:
    """The commit the folder is at (with -dirty if it has changes), or None outside git."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(app_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(app_dir), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sha.stdout.strip()[:12] + ("-dirty" if dirty else "")


def snapshot_dir(source: Path, dest: Path, exclude: Path | None = None) -> None:
    patterns = _ignore_patterns(source)

    def ignore(directory: str, names: list[str]) -> set[str]:
        rel_dir = Path(directory).relative_to(source)
        skipped = set()
        for name in names:
            full = Path(directory) / name
            rel = str(rel_dir / name)
            if (
                name in ALWAYS_IGNORED
                or (exclude is not None and full == exclude)
                or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(rel, p) for p in patterns)
            ):
                skipped.add(name)
        return skipped

    shutil.copytree(source, dest, symlinks=True, ignore=ignore)


def snapshot_git(source: Path, rev: str, dest: Path) -> None:
    data = subprocess.run(
        ["git", "-C", str(source), "archive", "--format=tar", rev], capture_output=True, timeout=300
    )
    if data.returncode != 0:
        raise BuildError(
            f"git archive {rev} failed: {data.stderr.decode().strip()}",
            where=str(source),
            fix="check the revision with `git log`",
        )
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data.stdout)) as archive:
        archive.extractall(dest, filter="data")


def _ignore_patterns(source: Path) -> list[str]:
    path = source / IGNORE_FILE
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


async def build(release_dir: Path, config: AppConfig, log_path: Path, release_name: str) -> float:
    """Make the virtualenv and run the build command. Returns seconds taken."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    venv = release_dir / ".venv"
    with open(log_path, "ab") as log:
        log.write(f"$ virtualenv {venv}\n".encode())
        log.flush()
        await _run(
            [sys.executable, "-m", "virtualenv", "-q", str(venv)],
            release_dir,
            dict(os.environ),
            log,
            300.0,
            "creating the virtualenv",
            log_path,
            release_name,
        )
        if config.build.command:
            env = base_env(venv) | config.env
            log.write(f"$ {config.build.command}\n".encode())
            log.flush()
            await _run(
                ["/bin/sh", "-c", config.build.command],
                release_dir,
                env,
                log,
                config.build.timeout,
                "the build command",
                log_path,
                release_name,
            )
    return time.monotonic() - started


async def _run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log: io.BufferedWriter,
    timeout: float,
    what: str,
    log_path: Path,
    release_name: str,
) -> None:
    nice = shutil.which("nice")
    if nice:  # a build must not take the CPU from the instances serving traffic
        argv = [nice, "-n", str(BUILD_NICENESS), *argv]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        code = await asyncio.wait_for(proc.wait(), timeout)
    except asyncio.CancelledError:  # the deployment was aborted: leave nothing running
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise BuildError(
            f"{what} timed out after {timeout:g}s",
            where=f"release {release_name}",
            details=tail_lines(log_path, 20),
            fix=f"make it faster or raise [build] timeout; full log: {log_path}",
        ) from None
    if code != 0:
        raise BuildError(
            f"{what} failed with exit code {code}",
            where=f"release {release_name}",
            details=tail_lines(log_path, 20),
            fix=f"run it in the app folder to reproduce; full log: {log_path}",
        )


def tail_lines(path: Path, count: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-count:]
    except OSError:
        return []
