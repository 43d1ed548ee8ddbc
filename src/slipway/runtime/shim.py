"""The shim: one small supervisor process per instance, in the spirit of runit's `runsv`.

It owns the instance's process: captures stdout/stderr into rotating JSON-lines files,
restarts the process with exponential backoff when it crashes, flags crash loops, and on
SIGTERM stops it (SIGTERM to its process group, SIGKILL after the grace period). It writes
its state to status.json after every change. It runs detached in its own session, so
instances keep running and being supervised while the daemon is down.

Run as `python -m slipway.runtime.shim SPEC.json`; it forks, and the foreground process
prints the shim's pid and exits once the shim has recorded itself in the instance's folder
(pidfile.py), so no shim ever runs that the daemon cannot find. Standard library only, so it
starts fast.

Nothing the shim writes (logs, status) may stop it: on a full disk it drops log lines and
counts them, keeps the app's pipes drained, and writes its status again when it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import selectors
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from slipway.runtime import pidfile, procs
from slipway.runtime.logfile import LogWriter
from slipway.secrets.redact import redactor

STATUS_NAME = "status.json"
MAX_LINE = 16 * 1024
STATUS_RETRY = 1.0  # seconds between attempts to write a status that could not be written
STATUS_SIZE = 4096


def shell_command(command: str) -> str:
    """Let a simple command replace the shell, so signals and exit codes are the app's own."""
    first_word = command.split(maxsplit=1)[0] if command.strip() else ""
    if any(ch in command for ch in ";&|\n()`") or "=" in first_word or first_word == "exec":
        return command
    return "exec " + command


def as_user(name: str | None) -> dict[str, Any]:
    """Popen arguments that drop a root shim's child to an unprivileged user."""
    if not name:
        return {}
    entry = pwd.getpwnam(name)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class Shim:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.dir = Path(spec["dir"])
        self.log = LogWriter(self.dir, int(spec["log_max_bytes"]), int(spec["log_keep"]))
        self.child: subprocess.Popen[bytes] | None = None
        self.child_started = 0.0
        self.state = "starting"
        self.restarts = 0
        self.backoff = float(spec["backoff_initial"])
        self.next_start = 0.0
        self.exits: deque[float] = deque(maxlen=int(spec["crashloop_restarts"]))
        self.last_exit: dict[str, Any] | None = None
        self.stop_requested = False
        self.kill_at: float | None = None
        self.killed = False
        self.group: int | None = None  # the child's process group; outlives it when stopping
        self.buffers: dict[int, bytes] = {}
        self.streams: dict[int, str] = {}
        self.selector = selectors.DefaultSelector()
        self.redact = redactor(spec.get("redact", []))  # secret values never reach the log
        self.status_due: float | None = None  # when to write the status again
        self.shown_dropped = 0  # dropped log lines the status last showed
        self.blocked: str | None = None  # why the app cannot be started now

    # status ---------------------------------------------------------------------------

    def write_status(self) -> None:
        child_pid = self.child.pid if self.child else None
        status = {
            "shim_pid": os.getpid(),
            "state": self.state,
            "child_pid": child_pid,
            "child_ticks": pidfile.start_ticks(child_pid) if child_pid else None,
            "child_started": self.child_started or None,
            "restarts": self.restarts,
            "crashloop": self.crashlooping(),
            "last_exit": self.last_exit,
            "log_dropped": self.log.dropped,
            "log_error": self.log.error,
            "blocked": self.blocked,
            "updated_at": time.time(),
        }
        # Padded to a fixed size, so that on a full disk the status can still be overwritten
        # in place (its blocks are already allocated); normally it is replaced atomically.
        self.shown_dropped = self.log.dropped
        data = json.dumps(status).encode().ljust(STATUS_SIZE)
        path, tmp = self.dir / STATUS_NAME, self.dir / (STATUS_NAME + ".tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            if not _overwrite(path, data):
                self.status_due = time.time() + STATUS_RETRY  # the main loop tries again
                return
        self.status_due = None

    def note(self, message: str) -> None:
        self.log.write(time.time(), "slipway", message)

    def crashlooping(self) -> bool:
        window = float(self.spec["crashloop_window"])
        return len(self.exits) == self.exits.maxlen and time.time() - self.exits[0] <= window

    # the child ------------------------------------------------------------------------

    def clear_the_way(self) -> bool:
        """Before starting the app: processes left by an earlier supervisor of this instance
        (one killed before it recorded its child) are stopped; a port held by anything else
        keeps the app from starting, and says who holds it."""
        killed = procs.kill_marked(self.dir)
        if killed:
            self.note(f"stopped {len(killed)} leftover process(es) of this instance: {killed}")
        port = self.spec["env"].get("PORT")
        holder = procs.port_holder(int(port)) if port and port.isdigit() else None
        if holder is not None and killed:  # they may take a moment to let go of the port
            deadline = time.time() + 2.0
            while holder is not None and time.time() < deadline:
                time.sleep(0.05)
                holder = procs.port_holder(int(port))
        blocked = None
        if holder is not None:
            pid, command = holder
            blocked = f"port {port} is held by another process (pid {pid}: {command})"
        if blocked != self.blocked:
            self.blocked = blocked
            if blocked:
                self.note(f"not starting: {blocked}; trying again")
            self.write_status()
        return blocked is None

    def spawn(self) -> None:
        if not self.clear_the_way():
            self.state = "blocked"
            self.next_start = time.time() + self.backoff
            self.backoff = min(self.backoff * 2, float(self.spec["backoff_max"]))
            self.write_status()
            return
        self.child = subprocess.Popen(
            ["/bin/sh", "-c", shell_command(self.spec["command"])],
            cwd=self.spec["cwd"],
            env=self.spec["env"] | {procs.MARKER: str(self.dir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: signals reach its children too
            **as_user(self.spec.get("user")),
        )
        self.child_started = time.time()
        self.group = self.child.pid
        assert self.child.stdout is not None and self.child.stderr is not None
        for pipe, name in ((self.child.stdout, "out"), (self.child.stderr, "err")):
            os.set_blocking(pipe.fileno(), False)
            self.streams[pipe.fileno()] = name
            self.buffers[pipe.fileno()] = b""
            self.selector.register(pipe.fileno(), selectors.EVENT_READ)
        self.state = "running"
        self.note(f"started pid {self.child.pid}: {self.spec['command']}")
        self.write_status()

    def signal_group(self, signum: int) -> None:
        if self.group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.group, signum)

    def group_alive(self) -> bool:
        if self.group is None:
            return False
        try:
            os.killpg(self.group, 0)
        except ProcessLookupError:
            return False
        return True

    def read_pipe(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.close_pipe(fd)
            return
        buffer = self.buffers[fd] + data
        *lines, rest = buffer.split(b"\n")
        for line in lines:
            self.emit(fd, line)
        while len(rest) > MAX_LINE:
            self.emit(fd, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self.buffers[fd] = rest

    def emit(self, fd: int, raw: bytes) -> None:
        line = self.redact(raw.decode("utf-8", "replace").rstrip("\r"))
        self.log.write(time.time(), self.streams[fd], line)

    def close_pipe(self, fd: int) -> None:
        if self.buffers.get(fd):
            self.emit(fd, self.buffers[fd])
        self.buffers.pop(fd, None)
        self.selector.unregister(fd)
        os.close(fd)

    def reap(self) -> None:
        """Called when the child has exited: record it and plan what comes next."""
        assert self.child is not None
        code = self.child.returncode
        deadline = time.time() + 0.5  # output still in the pipes (grandchildren may hold them)
        while self.buffers and time.time() < deadline:
            for key, _ in self.selector.select(timeout=0.05):
                if key.fd in self.buffers:
                    self.read_pipe(int(key.fd))
        for fd in list(self.buffers):
            self.close_pipe(fd)
        signal_name = signal.Signals(-code).name if code < 0 else None
        self.last_exit = {
            "code": code if code >= 0 else None,
            "signal": signal_name,
            "at": time.time(),
            "uptime": time.time() - self.child_started,
        }
        how = f"signal {signal_name}" if signal_name else f"code {code}"
        self.child = None
        if self.stop_requested:
            return  # what is left of its group gets the rest of the grace period
        self.signal_group(signal.SIGKILL)  # leftovers of a crashed process
        self.group = None
        self.restarts += 1
        self.exits.append(time.time())
        uptime = self.last_exit["uptime"]
        if uptime >= float(self.spec["stable_after"]):
            self.backoff = float(self.spec["backoff_initial"])
        delay = self.backoff
        self.backoff = min(self.backoff * 2, float(self.spec["backoff_max"]))
        self.next_start = time.time() + delay
        self.state = "crashloop" if self.crashlooping() else "backoff"
        self.note(
            f"exited with {how} after {uptime:.1f}s; restarting in {delay:.1f}s"
            + (" (crash loop)" if self.state == "crashloop" else "")
        )
        self.write_status()

    # main loop ------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        self.stop_requested = True

    def run(self) -> None:
        if self.spec.get("boot_nice"):  # inherited by the child; the daemon lifts it later
            os.nice(int(self.spec["boot_nice"]))
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.selector.register(wake_r, selectors.EVENT_READ)
        grace = float(self.spec["stop_grace"])
        while True:
            now = time.time()
            if self.stop_requested and self.kill_at is None:
                self.kill_at = now + grace
                self.state = "stopping"
                self.signal_group(signal.SIGTERM)
                self.write_status()
            overdue = self.kill_at is not None and now >= self.kill_at and not self.killed
            if overdue and self.group_alive():
                self.note(f"still running {grace:g}s after SIGTERM: sending SIGKILL")
                self.signal_group(signal.SIGKILL)
                self.killed = True
            if self.stop_requested and self.child is None and not self.group_alive():
                break
            if self.child is None and not self.stop_requested and now >= self.next_start:
                self.spawn()
            timeout = 1.0 if self.child is not None else max(0.0, self.next_start - now)
            if self.status_due is not None:
                timeout = min(timeout, STATUS_RETRY)
            if self.stop_requested:
                timeout = 0.05
            for key, _ in self.selector.select(timeout=min(timeout, 1.0)):
                if key.fd == wake_r:
                    _drain(wake_r)
                else:
                    self.read_pipe(int(key.fd))
            if self.child is not None and self.child.poll() is not None:
                self.reap()
            if self.log.dropped != self.shown_dropped and self.status_due is None:
                self.status_due = time.time() + STATUS_RETRY  # at most once a second
            if self.status_due is not None and time.time() >= self.status_due:
                self.write_status()
        self.state = "stopped"
        exit_info = self.last_exit or {}
        how = (
            f"signal {exit_info.get('signal')}"
            if exit_info.get("signal")
            else f"code {exit_info.get('code')}"
        )
        self.note("stopped (signal SIGKILL)" if self.killed else f"stopped ({how})")
        self.write_status()
        self.log.close()


def _overwrite(path: Path, data: bytes) -> bool:
    """Write `data` over the start of an existing file at least as large (no new blocks)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return False
    try:
        return os.fstat(fd).st_size >= len(data) and os.pwrite(fd, data, 0) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _daemonize(directory: Path) -> None:
    """Fork. The foreground process exits, printing the shim's pid, only once the shim has
    recorded itself (shim.pid): from then on the daemon can always find it."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            answer = ready.read().decode(errors="replace")
        if answer != "ok":
            print(answer or "the shim died before it recorded itself", file=sys.stderr)
            os._exit(1)
        print(pid, flush=True)
        os._exit(0)
    os.close(ready_r)
    os.setsid()
    try:
        pidfile.record(directory, os.getpid())
    except OSError as exc:
        _answer(ready_w, f"cannot record the shim in {directory}: {exc}")
        os._exit(1)
    _answer(ready_w, "ok")
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        errors = os.open(directory / "shim.err", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        errors = os.dup(devnull)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(errors, 2)
    os.close(devnull)
    os.close(errors)


def _answer(fd: int, text: str) -> None:
    with contextlib.suppress(OSError):  # the daemon may have died meanwhile: go on anyway
        os.write(fd, text.encode())
    os.close(fd)


def main(argv: list[str]) -> None:
    spec = json.loads(Path(argv[1]).read_text())
    if spec.get("secrets_on_stdin"):  # read before stdin becomes /dev/null
        secrets: dict[str, str] = json.loads(sys.stdin.read() or "{}")
        spec["env"] = spec["env"] | secrets
        spec["redact"] = list(secrets.values())
    directory = Path(spec["dir"])
    lock = pidfile.lock(directory)  # held (inherited by the shim) for the shim's lifetime
    if lock is None:
        print(f"instance {directory.name} already has a running supervisor", file=sys.stderr)
        sys.exit(3)
    _daemonize(directory)
    shim = Shim(spec)
    try:
        shim.run()
    except BaseException:
        shim.signal_group(signal.SIGKILL)  # never leave the app running unsupervised
        raise


if __name__ == "__main__":
    main(sys.argv)
