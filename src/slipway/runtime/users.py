"""Running an app as its own user (`[run] user`, when the daemon is root): can that user run
the release's Python, and reach and read the release's files, and no one else.

A release is given to the app's group, never to everyone: its files get the group of the
app's user and g+r (g+x where the owner may execute), others get nothing. The folders above
it: the app's own folder and its releases folder belong to that group too (traverse only);
the home and its apps folder are traversable by all (o+x, no listing): everything else in
them stays the daemon's own (0600/0700)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from pathlib import Path

from slipway.errors import ConfigError, DeployError


def account(user: str, where: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise DeployError(
            f"[run] user '{user}' does not exist on this host",
            where=where,
            fix=f"create it (useradd --system {user}) or name an existing user",
        ) from None


def groups_of(entry: pwd.struct_passwd) -> set[int]:
    return {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if entry.pw_name in g.gr_mem}


def blocked_by(path: Path, entry: pwd.struct_passwd) -> str | None:
    """Why `entry`'s user cannot execute `path` (following symlinks), or None if it can."""
    gids = groups_of(entry)
    target = Path(os.path.realpath(path))
    if not target.exists():
        return f"{target} does not exist"
    for step in [*reversed(target.parents), target]:  # enter every folder, run the file
        info = step.stat()
        if not _allowed(info, entry.pw_uid, gids, stat.S_IXUSR):
            return f"{step} is {stat.S_IMODE(info.st_mode):o}, owned by uid {info.st_uid}"
    return None


def _allowed(info: os.stat_result, uid: int, gids: set[int], bit: int) -> bool:
    """`bit` is given as the owner's bit (S_IXUSR); shifted for group and others."""
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & bit)
    if info.st_gid in gids:
        return bool(info.st_mode & (bit >> 3))
    return bool(info.st_mode & (bit >> 6))


def check_run_user(user: str | None, python: Path, home_root: Path) -> None:
    """Before anything is built: the app's user exists, can run the release's Python and can
    reach the home (its release is inside). Only a root daemon switches users; otherwise
    there is nothing to check."""
    if user is None or os.geteuid() != 0:
        return
    where = "slipway.toml [run] user"
    check_python(python, user, where)
    entry = account(user, where)
    for folder in reversed(home_root.parents):
        info = folder.stat()
        if not _allowed(info, entry.pw_uid, groups_of(entry), stat.S_IXUSR):
            raise ConfigError(
                f"[run] user '{user}' cannot reach slipway's home {home_root}: {folder} is "
                f"{stat.S_IMODE(info.st_mode):o}, owned by uid {info.st_uid}",
                where=where,
                fix="keep the home where every user may pass through, e.g. "
                "SLIPWAY_HOME=/var/lib/slipway (its own files stay private)",
            )


def check_python(python: Path, user: str, where: str) -> None:
    """The release's virtualenv runs `python`: the app's user must be able to execute it."""
    why = blocked_by(python, account(user, where))
    if why is not None:
        raise ConfigError(
            f"[run] user '{user}' cannot run {python}: {why}",
            where=where,
            fix='set [build] python to a Python every user can run, e.g. "/usr/bin/python3" '
            "(the release's virtualenv is made from it)",
        )


def grant_release(release_dir: Path, home_root: Path, gid: int) -> None:
    """Let the group `gid` read the release and reach it; nobody else gains anything."""
    app_dir = release_dir.parent.parent
    trees = [release_dir]
    venv = release_dir / ".venv"
    if venv.is_symlink():  # shared with other releases of the app (releases/venvs.py)
        trees.append(Path(os.path.realpath(venv)))
        venvs = trees[-1].parent
        os.chown(venvs, -1, gid)
        os.chmod(venvs, (stat.S_IMODE(venvs.stat().st_mode) & 0o700) | stat.S_IXGRP)
    for tree in trees:
        for top, _dirs, files in os.walk(tree):
            _give(Path(top), gid, directory=True)
            for name in files:
                path = Path(top) / name
                if not path.is_symlink():  # a link's own mode means nothing; its target's
                    _give(path, gid, directory=False)
    for folder in (release_dir.parent, app_dir):  # releases/, the app's folder: traverse
        os.chown(folder, -1, gid)
        os.chmod(folder, (stat.S_IMODE(folder.stat().st_mode) & 0o700) | stat.S_IXGRP)
    for folder in (app_dir.parent, home_root):  # apps/, the home: traverse, no listing
        os.chmod(folder, stat.S_IMODE(folder.stat().st_mode) | stat.S_IXOTH)


def _give(path: Path, gid: int, directory: bool) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    read = stat.S_IRGRP if mode & stat.S_IRUSR else 0
    execute = stat.S_IXGRP if directory or mode & stat.S_IXUSR else 0
    os.chown(path, -1, gid)
    os.chmod(path, (mode & 0o700) | read | execute)


def granted(release_dir: Path, gid: int) -> bool:
    info = release_dir.stat()
    return info.st_gid == gid and bool(info.st_mode & stat.S_IRGRP)
