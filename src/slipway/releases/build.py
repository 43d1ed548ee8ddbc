"""Building a release: an immutable snapshot of the app's files (or `git archive` of a revision)
with its own virtualenv, made by the app's build command."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fnmatch
import io
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from slipway.config import CONFIG_FILE
from slipway.config.load import load_config, parse_config
from slipway.config.schema import AppConfig
from slipway.errors import BuildError
from slipway.releases import venvs

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


def snapshot_dir(source: Path, dest: Path, exclude: Path | None = None) -> float:
    """Copy the app folder to `dest`, less what is ignored; returns the seconds it took (part
    of the build's time). Links are copied as links, and only links that stay inside the
    folder; sparse files stay sparse. On any failure `dest` is removed: never half a release."""
    started = time.monotonic()
    limit = load_config(source).build.max_file_size
    patterns = _ignore_patterns(source)
    root = os.path.realpath(source)

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
            elif full.is_symlink():
                _check_link(rel, os.readlink(full), os.path.realpath(full), root)
        return skipped

    def copy(src: str, dst: str) -> str:
        return copy_file(src, dst, os.path.relpath(src, source), limit)

    with _removed_on_failure(dest):
        shutil.copytree(source, dest, symlinks=True, ignore=ignore, copy_function=copy)
    return time.monotonic() - started


def snapshot_git(source: Path, rev: str, dest: Path) -> float:
    """Extract `git archive` of `rev` to `dest`, streamed; returns the seconds it took. A link
    that leaves the tree or a file over [build] max_file_size is refused by name, and on any
    failure `dest` is removed."""
    started = time.monotonic()
    text = git(source, "show", f"{rev}:{CONFIG_FILE}")
    limit = parse_config(text, f"{CONFIG_FILE} at {rev}").build.max_file_size
    dest.mkdir(parents=True)
    with (
        _removed_on_failure(dest),
        subprocess.Popen(
            ["git", "-C", str(source), "archive", "--format=tar", rev],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc,
    ):
        assert proc.stdout is not None and proc.stderr is not None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                archive.extractall(dest, filter=lambda m, path: _member(m, path, limit))
        except tarfile.TarError as exc:
            proc.kill()
            proc.wait()
            raise _tar_error(exc, rev, source, proc.stderr.read()) from None
        finally:
            proc.stdout.close()
        if proc.wait(timeout=300) != 0:
            raise BuildError(
                f"git archive {rev} failed: {proc.stderr.read().decode(errors='replace')}",
                where=str(source),
                fix="check the revision with `git log`",
            )
    return time.monotonic() - started


def _member(member: tarfile.TarInfo, path: str, limit: int) -> tarfile.TarInfo | None:
    """tarfile's "data" filter (no absolute paths, no links out of the tree, no devices)
    plus the size limit, checked from the header before a byte of the file is written."""
    checked = tarfile.data_filter(member, path)
    if checked.isfile() and checked.size > limit:
        raise BuildError(
            f"{member.name} is {checked.size} bytes, over [build] max_file_size ({limit})",
            where=member.name,
            fix="remove it from the repository, or raise [build] max_file_size",
        )
    return checked


def _tar_error(exc: tarfile.TarError, rev: str, source: Path, stderr: bytes) -> BuildError:
    if isinstance(exc, tarfile.FilterError):
        name = exc.tarinfo.name
        target = exc.tarinfo.linkname
        if isinstance(exc, tarfile.AbsoluteLinkError | tarfile.LinkOutsideDestinationError):
            return _link_error(name, target)
        return BuildError(
            f"{name} cannot be part of a release: {exc}",
            where=f"{name} at {rev}",
            fix="remove it from the repository or make it a plain file",
        )
    return BuildError(
        f"git archive {rev} could not be read: {exc}; {stderr.decode(errors='replace')}",
        where=str(source),
        fix="check the revision with `git log` and the repository with `git fsck`",
    )


def _check_link(rel: str, target: str, resolved: str, root: str) -> None:
    """A link is copied as a link: one that is absolute, or that leads out of the app folder
    (`..`, or through other links), would make the release depend on files outside it."""
    if os.path.isabs(target) or os.path.commonpath([resolved, root]) != root:
        raise _link_error(rel, target)


def _link_error(name: str, target: str) -> BuildError:
    kind = "an absolute path" if os.path.isabs(target) else "a path outside the app folder"
    return BuildError(
        f"the symbolic link {name} points to {kind} ({target}): a release holds only "
        "the app's own files",
        where=name,
        fix="replace the link with the file it points to, make it a relative link inside "
        f"the app folder, or list it in {IGNORE_FILE}",
    )


def copy_file(src: str, dst: str, rel: str, limit: int) -> str:
    """Copy one file with its metadata, its holes kept holes (SEEK_DATA/SEEK_HOLE): a sparse
    1 GB file must not become 1 GB on disk in every release."""
    info = os.stat(src, follow_symlinks=False)
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block the copy forever
        raise BuildError(
            f"{rel} is not a regular file (a FIFO, socket or device)",
            where=rel,
            fix=f"list it in {IGNORE_FILE}",
        )
    if info.st_size > limit:
        raise BuildError(
            f"{rel} is {info.st_size} bytes, over [build] max_file_size ({limit})",
            where=rel,
            fix=f"list it in {IGNORE_FILE}, or raise [build] max_file_size",
        )
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        for start, end in _data_ranges(fin.fileno(), info.st_size):
            _copy_range(fin.fileno(), fout.fileno(), start, end)
        os.ftruncate(fout.fileno(), info.st_size)  # a hole at the end stays a hole
    shutil.copystat(src, dst)
    return dst


def _data_ranges(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """The (start, end) byte ranges of a file that hold data, in order."""
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here on
                return
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # no hole support: all data
                yield position, size
                return
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        position = end


def _copy_range(fin: int, fout: int, start: int, end: int) -> None:
    position = start
    while position < end:
        count = min(end - position, 8 * 1024 * 1024)
        try:
            copied = os.copy_file_range(fin, fout, count, position, position)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            copied = os.pwrite(fout, os.pread(fin, count, position), position)
        if copied == 0:  # the file shrank while it was copied
            return
        position += copied


@contextlib.contextmanager
def _removed_on_failure(dest: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _ignore_patterns(source: Path) -> list[str]:
    path = source / IGNORE_FILE
    if not path.is_file():
        return []
    # names from the folder are str with undecodable bytes as surrogates: so are patterns
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    return [ln.strip().rstrip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


async def build(release_dir: Path, config: AppConfig, log_path: Path, release_name: str) -> float:
    """The release's virtualenv: an earlier release's when the build's inputs are the same
    (releases/venvs.py), else made here and the build command run. Returns seconds taken."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    venv_key = venvs.key(release_dir, config)
    if venv_key is None:
        await make_venv(release_dir, release_dir / ".venv", config, log_path, release_name)
        return time.monotonic() - started
    venv = venvs.folder(release_dir.parent.parent, venv_key)
    # linked first: pruning keeps what a release links to, and a build command may name
    # .venv/bin/… itself
    venv.parent.mkdir(parents=True, exist_ok=True)
    venvs.link(release_dir, venv)
    if venvs.complete(venv):
        with open(log_path, "ab") as log:
            log.write(
                f"reusing the virtualenv {venv_key}: the Python, the build command, [env] "
                "and the dependency files are those of an earlier release "
                "([build] reuse = false builds every release anew)\n".encode()
            )
    else:
        shutil.rmtree(venv, ignore_errors=True)  # half-built by a build that failed
        try:
            await make_venv(release_dir, venv, config, log_path, release_name)
        except BaseException:  # e.g. a full disk: what it wrote is given back at once
            shutil.rmtree(venv, ignore_errors=True)
            raise
        if venvs.names_release(venv, release_dir):
            with open(log_path, "ab") as log:
                log.write(b"this virtualenv is not reused: it points into the release's own "
                          b"folder (an editable install)\n")  # fmt: skip
        else:
            venvs.mark_complete(venv)
    return time.monotonic() - started


async def make_venv(
    release_dir: Path, venv: Path, config: AppConfig, log_path: Path, release_name: str
) -> None:
    """A new virtualenv at `venv`, then the build command in the release's folder."""
    with open(log_path, "ab") as log:
        log.write(f"$ virtualenv {venv}\n".encode())
        log.flush()
        await _run(
            [
                sys.executable,
                "-m",
                "virtualenv",
                "-q",
                "-p",
                str(config.build.interpreter()),
                str(venv),
            ],
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
        details = tail_lines(log_path, 20)
        if any("No space left on device" in line for line in details):
            raise BuildError(
                f"{what} failed: the disk is full",
                where=str(cwd),
                details=details,
                fix=f"free space on the filesystem that holds {cwd} (see `df -h {cwd}`), "
                "then deploy again",
            )
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
