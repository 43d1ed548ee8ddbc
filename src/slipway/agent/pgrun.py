"""Running PostgreSQL's and pgBackRest's programs as the `postgres` system user, and giving
that user its folders. PostgreSQL refuses to run as root; an agent that is not root runs
them as itself (it cannot switch users). Standard library only."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from slipway.errors import PreflightError, RuntimeFailure

BIN = Path(os.environ.get("SLIPWAY_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "postgres"
# A fixed, small environment: no PG* variable of the agent's leaks into a server, and no
# secret of the agent's environment reaches PostgreSQL's or pgBackRest's processes.
ENV = {"PATH": f"{BIN}:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def switching() -> bool:
    return os.geteuid() == 0


def account() -> pwd.struct_passwd | None:
    """The postgres account when the agent is root (None: run as the agent's own user)."""
    if not switching():
        return None
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        raise PreflightError(
            "this host has no postgres user",
            fix="install PostgreSQL 15 there: apt-get install postgresql-15 pgbackrest",
        ) from None


def check_installed() -> None:
    missing = [str(p) for p in (BIN / "initdb", BIN / "pg_ctl") if not p.exists()]
    if not shutil.which("pgbackrest") and not Path("/usr/bin/pgbackrest").exists():
        missing.append("pgbackrest")
    if missing:
        raise PreflightError(
            f"this host lacks {', '.join(missing)}",
            fix="apt-get install postgresql-15 pgbackrest (scripts/install-system-deps.sh)",
        )


def run(
    argv: list[str], timeout: float, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """One program as postgres, cwd /, the fixed environment; a failure raises with the
    program's own last words."""
    user = account()
    try:
        done = subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            env=ENV,
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
            start_new_session=True,  # a signal to the agent's group never reaches PostgreSQL
        )
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(
            f"{Path(argv[0]).name} did not finish in {timeout:.0f}s",
            fix="see the database's log folder on its host",
        ) from None
    if check and done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip())[-800:]
        raise RuntimeFailure(
            f"{Path(argv[0]).name} {argv[-1] if len(argv) > 1 else ''} failed "
            f"(exit {done.returncode}): {said}",
            fix="see the database's log folder on its host",
        )
    return done


def own(path: Path, mode: int = 0o700) -> None:
    """A folder (made if missing) of the postgres user's, closed to everyone else."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    user = account()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, mode)


def give(path: Path, mode: int = 0o600) -> None:
    user = account()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    os.chmod(path, mode)


def passable(home: Path, folders: list[Path]) -> None:
    """postgres must pass through the home and its parents to reach its own folders: the
    home and slipway's `databases`/`backups` folders are opened for traversal only (o+x, no
    listing); a parent that blocks it is named, with the fix."""
    user = account()
    if user is None:
        return
    for folder in reversed(home.parents):
        info = folder.stat()
        if not info.st_mode & stat.S_IXOTH and info.st_uid != user.pw_uid:
            raise PreflightError(
                f"the postgres user cannot reach slipway's home {home}: {folder} is "
                f"{stat.S_IMODE(info.st_mode):o}, owned by uid {info.st_uid}",
                fix="keep the home where every user may pass through, e.g. "
                "SLIPWAY_HOME=/var/lib/slipway (its own files stay private)",
            )
    for folder in [home, *folders]:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)
