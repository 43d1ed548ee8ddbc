"""Is a daemon running for this home, and may one start? Light: the CLI imports it."""

from __future__ import annotations

import os

import psutil

from slipway.errors import PreflightError
from slipway.paths import Home


def running_daemon_pid(home: Home) -> int | None:
    """The pid of a live daemon for this home, if any."""
    try:
        pid = int(home.pidfile.read_text().strip())
        proc = psutil.Process(pid)
    except (OSError, ValueError, psutil.Error):
        return None
    if pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
        return None
    return pid if "slipway" in " ".join(proc.cmdline()) else None


def preflight(home: Home) -> str:
    """Checks that fail before anything starts. Returns the haproxy binary."""
    from slipway.router.haproxy import find_haproxy  # asyncio and more: only when starting

    home.ensure()
    pid = running_daemon_pid(home)
    if pid is not None:
        raise PreflightError(
            f"a slipway daemon is already running for this home (pid {pid})",
            where=str(home.root),
            fix="use it, or stop it first with `slipway down`",
        )
    return find_haproxy()
