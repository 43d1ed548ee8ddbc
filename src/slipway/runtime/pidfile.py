"""Who supervises an instance. A shim records itself in its instance's folder before it
starts the app, so the daemon finds every shim by a name the daemon chose (the folder), even
one whose pid it never learned because it was killed while starting it.

Standard library only: the shim imports it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

PID_NAME = "shim.pid"
LOCK_NAME = "shim.lock"


def start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot: with the pid, names it uniquely."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def record(directory: Path, pid: int, name: str = PID_NAME) -> None:
    """Atomically: a reader sees the old record or the new one, never half of one."""
    ticks = start_ticks(pid)
    tmp = directory / (name + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, "ticks": ticks}))
    os.replace(tmp, directory / name)


def running(directory: Path, name: str = PID_NAME) -> int | None:
    """The pid of the process recorded in `directory` if that very process still runs."""
    try:
        data = json.loads((directory / name).read_text())
        pid, ticks = int(data["pid"]), data["ticks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if ticks is None or start_ticks(pid) != ticks or _zombie(pid):
        return None
    return pid


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def lock(directory: Path, name: str = LOCK_NAME) -> int | None:
    """An exclusive lock for the process's lifetime (the fd stays open): two shims never
    supervise one instance, two agents never serve one home. None if another holds it."""
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd
