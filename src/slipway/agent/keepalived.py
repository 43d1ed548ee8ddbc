"""keepalived on an lb host, run and watched by the agent: in the foreground with its own pid
files in the agent's home (Debian's defaults under /run would make a second keepalived on
the machine exit 0 with "already running"), started again when it dies, for as long as a
config is wanted. The config is kept in the home, so an agent restarted goes on watching.

keepalived outlives the agent (its own session): the address stays where it is while the
agent restarts. Standard library only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from slipway.errors import PreflightError, RouterError
from slipway.paths import Home
from slipway.runtime import procs

log = logging.getLogger("slipway.agent")
START_TIMEOUT = 5.0
WATCH_EVERY = 1.0
MAX_BACKOFF = 30.0


class Keepalived:
    def __init__(self, home: Home) -> None:
        self.dir = home.root / "keepalived"
        self.conf = self.dir / "keepalived.conf"
        self.pidfile = self.dir / "keepalived.pid"
        self.output = self.dir / "keepalived.log"
        self.haproxy_pidfile = home.haproxy_dir / "haproxy.pid"
        self._child: subprocess.Popen[bytes] | None = None  # reaped by the watch
        self._lock = asyncio.Lock()

    def check_command(self) -> str:
        """Is this host's HAProxy running? keepalived runs it every second."""
        return f"/bin/sh -c 'kill -0 $(cat {self.haproxy_pidfile})'"

    def pid(self) -> int | None:
        """keepalived's parent if ours runs (checked by its config path)."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if procs.running(pid) and str(self.conf) in procs.command_line(pid, limit=None):
            return pid
        return None

    async def apply(self, config: str) -> None:
        """Run keepalived with this config: started if it does not run, reloaded (SIGHUP)
        if it changed."""
        async with self._lock:
            changed = not self.conf.exists() or self.conf.read_text() != config
            if changed:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                tmp = self.conf.with_suffix(".tmp")
                tmp.write_text(config)
                await asyncio.to_thread(config_test, binary(), tmp)  # the running one stays
                tmp.replace(self.conf)
            pid = self.pid()
            if pid is None:
                await self._start()
            elif changed:
                os.kill(pid, signal.SIGHUP)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: keepalived gives the address away (priority 0) and removes it here."""
        async with self._lock:
            self.conf.unlink(missing_ok=True)  # wanted no more: the watch leaves it stopped
            pid = self.pid()
            if pid is None:
                return
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid() is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            with contextlib.suppress(ProcessLookupError):
                if self.pid() is not None:
                    os.kill(pid, signal.SIGKILL)
            self._reap()

    async def watch(self) -> None:
        """Forever: keepalived runs while a config is wanted (backing off if it keeps dying)."""
        backoff = WATCH_EVERY
        while True:
            await asyncio.sleep(backoff)
            self._reap()
            if not self.conf.exists() or self.pid() is not None:
                backoff = WATCH_EVERY
                continue
            async with self._lock:
                if self.conf.exists() and self.pid() is None:
                    log.warning("keepalived is not running: starting it again")
                    try:
                        await self._start()
                        backoff = WATCH_EVERY
                    except RouterError as exc:
                        log.warning("%s", exc.message)
                        backoff = min(MAX_BACKOFF, backoff * 2)

    async def _start(self) -> None:
        self._reap()
        with open(self.output, "ab") as output:
            # fmt: off
            self._child = subprocess.Popen(
                [binary(), "--dont-fork", "--log-console", "--log-detail",
                 "--use-file", str(self.conf), "--pid", str(self.pidfile),
                 "--vrrp_pid", str(self.dir / "vrrp.pid"),
                 "--checkers_pid", str(self.dir / "checkers.pid")],
                stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                cwd="/", start_new_session=True,
            )  # fmt: on
        deadline = time.monotonic() + START_TIMEOUT
        while self.pid() is None:
            if self._child.poll() is not None or time.monotonic() > deadline:
                raise RouterError(
                    f"keepalived did not start: {tail(self.output)}",
                    fix=f"see {self.output} on the lb host",
                )
            await asyncio.sleep(0.05)

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None


def binary() -> str:
    found = shutil.which("keepalived") or "/usr/sbin/keepalived"
    if not Path(found).exists():
        raise PreflightError(
            "this lb host has no keepalived", fix="install it there: apt-get install keepalived"
        )
    return found


def config_test(keepalived: str, config: Path) -> None:
    """keepalived's own check of a config (`--config-test`), before it replaces the one in use."""
    checked = subprocess.run(
        [keepalived, "--config-test", "--use-file", str(config)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if checked.returncode != 0:
        said = (checked.stderr or checked.stdout).strip()[-600:]
        raise RouterError(f"keepalived refused its config: {said}", fix="please report this")


def tail(path: Path, limit: int = 600) -> str:
    try:
        return path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return "(no output)"


def interface_of(address: str) -> str:
    """The network interface that has this address on this host."""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == "inet" and fields[3].split("/")[0] == address:
            return fields[1].split("@")[0]
    raise PreflightError(
        f"no interface of this host has the address {address}",
        fix="the lb host's --address must be its own address in the lb network",
    )


def holds(address: str) -> bool:
    """Is the virtual address on one of this host's interfaces now?"""
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, timeout=10
    ).stdout
    return any(f" inet {address}/" in line for line in out.splitlines())
