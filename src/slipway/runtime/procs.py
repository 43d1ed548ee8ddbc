"""Finding processes by what they are, not by a pid someone may have failed to record.

Every process an instance starts (its app and the app's children) carries MARKER in its
environment, naming the instance's folder: unique per home, app and instance. So even when a
supervisor died before it recorded its child (a full disk, a kill -9), what it left running
can be found and stopped, and a port held by a stranger can be named.

Standard library only: the shim imports it."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection
from pathlib import Path

MARKER = "SLIPWAY_INSTANCE_DIR"


def marked(directory: Path) -> list[int]:
    """Pids of live processes started for the instance whose folder is `directory`."""
    needle = b"\0" + f"{MARKER}={directory}".encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = b"\0" + handle.read() + b"\0"
        except OSError:
            continue  # gone, or not ours to read
        if needle in environ:
            found.append(int(entry.name))
    return found


def kill_marked(directory: Path, spare: Collection[int] = ()) -> list[int]:
    """SIGKILL every process of the instance except `spare`; returns the pids killed."""
    killed = []
    for pid in marked(directory):
        if pid in spare:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def port_holder(port: int) -> tuple[int | None, str] | None:
    """Who listens on TCP `port` (any address): (pid or None if unknown, its command line)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry.name}/fd/{fd}") in inodes:
                        return int(entry.name), command_line(int(entry.name))
    return None, "a process this user cannot see"


def command_line(pid: int, limit: int | None = 200) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    text = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return (text[:limit] if limit else text) or "?"


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user and system) of `pid` and every process below it now; None if `pid`
    is gone. Read from /proc: the agent has no psutil on other hosts."""
    clock = os.sysconf("SC_CLK_TCK")
    total, stack, seen = 0.0, [pid], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / clock  # utime, stime
            for task in os.scandir(f"/proc/{current}/task"):
                stack.extend(int(c) for c in Path(task.path, "children").read_text().split())
        except (OSError, IndexError, ValueError):
            if current == pid:
                return None
    return total


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
