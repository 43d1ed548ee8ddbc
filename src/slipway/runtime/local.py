"""The local supervisor: one shim process per instance on this host.

A shim is found by its instance's folder (shim.pid, written by the shim itself before it
starts the app), not only by the pid the daemon recorded: a daemon killed while starting
shims never learned their pids, and must still be able to see and stop them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import slipway
from slipway.errors import ConfigError, RuntimeFailure, disk_error
from slipway.paths import Home
from slipway.runtime import logfile, pidfile, procs, users
from slipway.runtime.base import Handle, InstanceSpec, Observed
from slipway.runtime.shim import STATUS_NAME

# A new instance boots at a lower CPU priority, so on a busy machine the instances serving
# traffic keep theirs; it gets normal priority once healthy. Lowering a niceness again needs
# root, so a daemon that is not root leaves priorities alone.
BOOT_NICE = 5
RETIRE_NICE = 10

SUPERVISION = {
    "backoff_initial": 0.5,
    "backoff_max": 30.0,
    "crashloop_restarts": 3,
    "crashloop_window": 60.0,
    "stable_after": 10.0,
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Where the slipway package is imported from (a folder, or the agent's zipapp): the shim
# imports it the same way. Apps never see it: they get their own environment.
PACKAGE_ROOT = str(Path(slipway.__file__).parent.parent)


def process_alive(handle: Handle | None) -> bool:
    """The very process the handle names (pid and start time) runs."""
    if handle is None:
        return False
    return pidfile.start_ticks(handle.pid) == handle.ctime and procs.running(handle.pid)


def handle_of(pid: int) -> Handle | None:
    ticks = pidfile.start_ticks(pid)
    return None if ticks is None else Handle(pid, float(ticks))


class LocalRuntime:
    def __init__(self, home: Home) -> None:
        self.home = home

    def instance_dir(self, app: str, instance_id: str) -> Path:
        return self.home.instance_dir(app, instance_id)

    def locate(self, app: str, instance_id: str, recorded: Handle | None = None) -> Handle | None:
        """The instance's running shim: the one its folder names, else the recorded one."""
        pid = pidfile.running(self.instance_dir(app, instance_id))
        if pid is not None:
            return handle_of(pid)
        return recorded if process_alive(recorded) else None

    def supervised(self) -> list[tuple[str, str, Handle]]:
        """(app, instance, shim) for every running shim of this home, recorded or not."""
        found = []
        for directory in self.home.root.glob("apps/*/instances/*"):
            app, instance_id = directory.parent.parent.name, directory.name
            handle = self.locate(app, instance_id)
            if handle is not None:
                found.append((app, instance_id, handle))
        return found

    async def start(self, spec: InstanceSpec) -> Handle:
        running = self.locate(spec.app, spec.instance_id)
        if running is not None:  # started before the daemon learned of it: adopt it
            return running
        spec = dataclasses.replace(spec, user=await asyncio.to_thread(self.app_user, spec))
        directory = self.instance_dir(spec.app, spec.instance_id)
        spec_path = directory / "spec.json"
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._write_spec(spec, directory, spec_path)
        except OSError as exc:
            what = f"could not prepare instance {spec.instance_id}"
            raise disk_error(exc, directory, what) from None
        return await self._launch(spec, spec_path)

    def app_user(self, spec: InstanceSpec) -> str | None:
        """The user the app runs as: `[run] user` where this host's runtime is root (only
        root can switch), once its release's files are given to that user's group (read
        only; never to everyone). The same on every host: the control host's runtime or an
        agent's."""
        if spec.user is None or os.geteuid() != 0:
            return None
        where = f"app {spec.app}: slipway.toml [run] user"
        entry = users.account(spec.user, where)
        if not users.granted(spec.cwd, entry.pw_gid):  # once per release
            users.grant_release(spec.cwd, self.home.root, entry.pw_gid)
        blocked = users.blocked_by(spec.cwd, entry)
        if blocked is not None:
            raise ConfigError(
                f"[run] user '{spec.user}' cannot reach its release {spec.cwd}: {blocked}",
                where=where,
                fix="keep slipway's home where every user may pass through, e.g. "
                "/var/lib/slipway (its own files stay private)",
            )
        users.check_python(spec.cwd / ".venv" / "bin" / "python", spec.user, where)
        return spec.user

    def _write_spec(self, spec: InstanceSpec, directory: Path, spec_path: Path) -> None:
        payload = {
            "dir": str(directory),
            "command": spec.command,
            "cwd": str(spec.cwd),
            "env": spec.env,
            "stop_grace": spec.stop_grace,
            "boot_nice": BOOT_NICE if os.geteuid() == 0 else 0,
            "log_max_bytes": spec.log_max_bytes,
            "log_keep": spec.log_keep,
            "user": spec.user,
            "secrets_on_stdin": True,
            **SUPERVISION,
        }
        fd = os.open(spec_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        (directory / STATUS_NAME).unlink(missing_ok=True)

    async def _launch(self, spec: InstanceSpec, spec_path: Path) -> Handle:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "slipway.runtime.shim",
            str(spec_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=os.environ | {"PYTHONPATH": PACKAGE_ROOT},  # also from the agent's zipapp
        )
        out, err = await proc.communicate(json.dumps(spec.secrets).encode())
        if proc.returncode != 0 or not out.strip().isdigit():
            raise RuntimeFailure(
                "could not start the instance's supervisor",
                where=f"instance {spec.instance_id}",
                details=err.decode(errors="replace").strip().splitlines()[-10:],
                fix="check that slipway is installed in the daemon's Python environment",
            )
        pid = int(out.strip())
        return handle_of(pid) or Handle(pid, 0.0)

    def observe(self, app: str, instance_id: str, handle: Handle | None) -> Observed:
        status = self._status(app, instance_id)
        handle = self.locate(app, instance_id, handle)
        if handle is None:
            state = "stopped" if status.get("state") == "stopped" else "gone"
            return Observed(
                alive=False,
                state=state,
                last_exit=status.get("last_exit"),
                restarts=int(status.get("restarts") or 0),
            )
        child = status.get("child_pid")
        return Observed(
            alive=True,
            state=str(status.get("state") or "starting"),
            child_pid=child,
            restarts=int(status.get("restarts") or 0),
            crashloop=bool(status.get("crashloop")),
            last_exit=status.get("last_exit"),
            child_started=status.get("child_started"),
            log_dropped=int(status.get("log_dropped") or 0),
            log_error=status.get("log_error"),
            blocked=status.get("blocked"),
            cpu_seconds=procs.cpu_seconds(child) if isinstance(child, int) else None,
        )

    def set_priority(self, app: str, instance_id: str, handle: Handle | None, nice: int) -> None:
        """Niceness of an instance's shim and its process group (best effort)."""
        handle = self.locate(app, instance_id, handle)
        if handle is None or (nice < BOOT_NICE and os.geteuid() != 0):
            return
        child = self._status(app, instance_id).get("child_pid")
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, handle.pid, nice)
            if child:
                os.setpriority(os.PRIO_PGRP, int(child), nice)

    async def stop(self, app: str, instance_id: str, handle: Handle | None, grace: float) -> None:
        """SIGTERM the shim (which forwards it and SIGKILLs after `grace`); wait for it."""
        handle = self.locate(app, instance_id, handle)
        if handle is not None:
            self.set_priority(app, instance_id, handle, RETIRE_NICE)  # no traffic left
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace + 5.0
            while process_alive(handle) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process_alive(handle):
                os.kill(handle.pid, signal.SIGKILL)
        self.kill_orphan(app, instance_id)

    def restart_process(self, app: str, instance_id: str, handle: Handle | None) -> bool:
        """SIGKILL the app's process group (a stopped or hung process dies of it too); its
        shim sees it exit and starts it again with its usual backoff."""
        if self.locate(app, instance_id, handle) is None:
            return False
        status = self._status(app, instance_id)
        pid, ticks = status.get("child_pid"), status.get("child_ticks")
        if not (pid and ticks and pidfile.start_ticks(int(pid)) == ticks):
            return False
        try:
            os.killpg(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True

    def kill_orphan(self, app: str, instance_id: str) -> list[int]:
        """A shim that died (e.g. SIGKILL) leaves its app running: end that process group,
        and any other process of the instance (found by its environment, even one the shim
        never recorded). Returns the pids killed."""
        if self.locate(app, instance_id) is not None:
            return []  # supervised: the shim stops its own
        status = self._status(app, instance_id)
        pid, ticks = status.get("child_pid"), status.get("child_ticks")
        if pid and ticks and pidfile.start_ticks(int(pid)) == ticks:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGKILL)
        return procs.kill_marked(self.instance_dir(app, instance_id))

    def log_tail(self, app: str, instance_id: str, lines: int) -> list[dict[str, Any]]:
        return logfile.tail(self.instance_dir(app, instance_id), lines)

    def logs_last(
        self, app: str, instances: list[str], lines: int
    ) -> dict[str, tuple[list[dict[str, Any]], int]]:
        """The newest lines of each instance, and where its current file ends."""
        return {i: logfile.last(self.instance_dir(app, i), lines) for i in instances}

    def logs_after(
        self, app: str, offsets: dict[str, int], max_bytes: int
    ) -> dict[str, tuple[list[dict[str, Any]], int]]:
        """What each instance wrote after its offset."""
        return {
            i: logfile.after(self.instance_dir(app, i), offset, max_bytes)
            for i, offset in offsets.items()
        }

    def log_page(
        self,
        app: str,
        instance_id: str,
        cursor: logfile.Cursor | None,
        since: float | None,
        max_bytes: int,
    ) -> tuple[list[dict[str, Any]], logfile.Cursor | None, int]:
        return logfile.page(self.instance_dir(app, instance_id), cursor, since, max_bytes)

    def _status(self, app: str, instance_id: str) -> dict[str, Any]:
        path = self.instance_dir(app, instance_id) / STATUS_NAME
        for _ in range(3):  # on a full disk the shim overwrites it in place: a read may tear
            try:
                data = json.loads(path.read_bytes())
            except OSError:
                return {}
            except ValueError:
                continue
            return data if isinstance(data, dict) else {}
        return {}
