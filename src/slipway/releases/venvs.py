"""Virtualenvs reused across releases. A release's virtualenv is a function of the Python
that makes it, the build command, the `[env]` the build uses and the files that say what it
installs (requirements, lock files, pyproject.toml, and `[build] inputs`): when none of them
changed, a new release gets the virtualenv an earlier one built, at once, instead of
building the same one again (the build is most of a code-only deploy).

Each virtualenv is built in place in the app's `venvs/KEY/` (its scripts name their Python
by that path, so it is never moved) and a release's `.venv` is a link to it. It is marked
complete only once its build succeeded: a half-built one (a failed build, a crash) is
built again. One that no release on disk links to any more is deleted with the releases."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from slipway.config.schema import AppConfig

# what a Python app's dependencies are declared in, by the usual tools
DEPENDENCY_FILES = (
    "requirements*.txt",
    "requirements/*.txt",
    "constraints*.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "poetry.lock",
    "uv.lock",
    "pdm.lock",
    "Pipfile",
    "Pipfile.lock",
)
INSTALLER_ENV = ("PIP_", "UV_", "PYTHON", "VIRTUALENV_", "PDM_", "POETRY_", "PIPENV_")
COMPLETE = ".slipway-complete"
KEY_LENGTH = 20


def key(release_dir: Path, config: AppConfig) -> str | None:
    """The reuse key of the release's virtualenv; None when `[build] reuse = false`."""
    build = config.build
    if not build.reuse:
        return None
    digest = hashlib.sha256()
    interpreter = Path(os.path.realpath(build.interpreter()))
    try:  # the same path after an upgrade is another Python: its size and time change
        info = interpreter.stat()
        digest.update(f"{interpreter}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    except OSError:
        digest.update(f"{interpreter}\0missing\0".encode())
    digest.update(f"{build.command or ''}\0".encode())
    for name, value in sorted(config.env.items()):
        if builds_with(name, build.command or ""):
            digest.update(f"{name}={value}\0".encode())
    for path in inputs(release_dir, [*DEPENDENCY_FILES, *build.inputs]):
        digest.update(f"{path.relative_to(release_dir)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:KEY_LENGTH]


def builds_with(name: str, command: str) -> bool:
    """Whether an [env] variable can change what the build makes: one the installers read,
    or one the command names. Others (a greeting, a feature flag) do not rebuild, as a
    config change does not rebuild on Heroku or with Kamal."""
    return name.startswith(INSTALLER_ENV) or f"${name}" in command or f"${{{name}" in command


def inputs(release_dir: Path, patterns: list[str]) -> list[Path]:
    """The regular files of the release that match `patterns`, each once, in order."""
    found = {p for pattern in patterns for p in release_dir.glob(pattern) if p.is_file()}
    return sorted(p for p in found if ".venv" not in p.relative_to(release_dir).parts)


def names_release(venv: Path, release_dir: Path) -> bool:
    """Whether the virtualenv points into the release's own folder (an editable install,
    `pip install -e .`): another release must not get it, or it would run this one's code."""
    needle = str(release_dir.resolve()).encode()
    for pattern in ("lib/python*/site-packages/*.pth", "lib/python*/site-packages/*.egg-link"):
        for path in venv.glob(pattern):
            try:
                if needle in path.read_bytes():
                    return True
            except OSError:
                continue
    return False


def folder(app_dir: Path, venv_key: str) -> Path:
    return app_dir / "venvs" / venv_key


def complete(venv: Path) -> bool:
    return (venv / COMPLETE).is_file()


def mark_complete(venv: Path) -> None:
    (venv / COMPLETE).write_text("")


def link(release_dir: Path, venv: Path) -> None:
    """The release's `.venv` names the shared virtualenv (by a path relative to the release,
    so a home restored elsewhere keeps working)."""
    target = os.path.relpath(venv, release_dir)
    (release_dir / ".venv").symlink_to(target, target_is_directory=True)


def prune(app_dir: Path) -> list[str]:
    """Delete the virtualenvs no release on disk links to; their keys. Only while no build
    of the app runs (the engine prunes in a deployment, which holds the app's lock): a
    build links its release to its virtualenv before making it."""
    releases = app_dir / "releases"
    used = set()
    if releases.is_dir():
        for release in releases.iterdir():
            venv = release / ".venv"
            if venv.is_symlink():
                used.add(Path(os.path.realpath(venv)).name)
    removed = []
    venvs = app_dir / "venvs"
    for venv in sorted(venvs.iterdir()) if venvs.is_dir() else []:
        if venv.name not in used:
            shutil.rmtree(venv, ignore_errors=True)
            removed.append(venv.name)
    return removed
