"""PostgreSQL clusters on this host, run and watched by the agent (no systemd here): each in a
folder of slipway's home (databases/NAME), as the postgres user, on the port the control
plane chose. Like keepalived, a cluster is wanted while a file says so (databases/NAME/
wanted): the watch starts it again when it dies, and an agent restarted finds it by its
data folder's postmaster.pid. PostgreSQL outlives the agent (its own session).

Every step of `create` can run again: the control plane records a database, then asks for
it, and asks again after a crash in between. Standard library only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from slipway.agent import pgrun
from slipway.databases import model, render
from slipway.databases.render import PGBACKREST, Layout
from slipway.errors import NotFound, RuntimeFailure
from slipway.runtime import procs

log = logging.getLogger("slipway.agent")
WATCH_EVERY = 2.0
MAX_BACKOFF = 60.0
START_TIMEOUT = 60
STOP_TIMEOUT = 30


class Postgres:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.folder = home / "databases"
        self._locks: dict[str, asyncio.Lock] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # name -> (next try, delay)

    def layout(self, name: str) -> Layout:
        return Layout.of(self.home, model.check_name(name))

    def lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def verifying(self, name: str) -> asyncio.Lock:
        """One verification of a database at a time (they share its scratch folder)."""
        return self._locks.setdefault(name + "/verify", asyncio.Lock())

    def pid(self, data: Path) -> int | None:
        """The postmaster serving `data`, if it runs (checked by its command line)."""
        try:
            pid = int((data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if procs.running(pid) and str(data) in procs.command_line(pid, limit=None):
            return pid
        return None

    def ready(self, data: Path) -> bool:
        """The server accepts connections: postmaster.pid's status line says "ready" (it
        says "starting" during a crash recovery, while the process already runs)."""
        try:
            lines = (data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(lines) >= 8 and lines[7].strip() == "ready" and self.pid(data) is not None

    # create ------------------------------------------------------------------------------

    async def create(
        self, name: str, port: int, listen: list[str], verifier: str, cipher_pass: str
    ) -> dict[str, Any]:
        """The cluster, its role and database, its stanza and a first full backup."""
        pgrun.check_installed()
        layout = self.layout(name)
        async with self.lock(name):
            await asyncio.to_thread(self._prepare, name, layout, port, listen, cipher_pass)
            layout.wanted.touch()
            await self._start(layout)
            await asyncio.to_thread(self._role, name, layout, verifier)
            await asyncio.to_thread(self._stanza, name, layout)
        return self.describe(name)

    def _prepare(
        self, name: str, layout: Layout, port: int, listen: list[str], cipher_pass: str
    ) -> None:
        pgrun.passable(self.home, [self.folder, layout.repo.parent])
        if not layout.initialised.exists():  # an interrupted create: start from nothing
            self.stop_now(layout.data)
            shutil.rmtree(layout.root, ignore_errors=True)
            shutil.rmtree(layout.repo, ignore_errors=True)
        for folder in (layout.root, layout.run, layout.log, layout.root / "lock",
                       layout.root / "spool", layout.repo):  # fmt: skip
            pgrun.own(folder)
        if not (layout.data / "PG_VERSION").exists():
            pgrun.run(
                [str(pgrun.BIN / "initdb"), "-D", str(layout.data), "-U", "postgres",
                 "-E", "UTF8", "--locale=C.UTF-8", "--auth-local=trust",
                 "--auth-host=scram-sha-256", "--data-checksums"],
                timeout=120,
            )  # fmt: skip
        settings = render.server_settings(name, layout, port, listen)
        self._write(layout.data / "slipway.conf", settings)
        self._write(layout.data / "pg_hba.conf", render.hba(name))
        conf = layout.data / "postgresql.conf"
        include = "include = 'slipway.conf'\n"
        if include not in conf.read_text():
            with conf.open("a") as handle:
                handle.write("\n# slipway's settings, last so they win\n" + include)
        self._write(layout.backrest_conf, render.backrest_conf(name, layout, port, cipher_pass))
        self._write(layout.initialised, "1\n")

    def _write(self, path: Path, text: str) -> None:
        """Atomically, born 0600 and the postgres user's (the passphrase is in one)."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        pgrun.give(tmp)
        os.replace(tmp, path)

    def _role(self, name: str, layout: Layout, verifier: str) -> None:
        self.psql(layout.run, self.port_of(layout), "postgres", render.role_sql(name, verifier),
                  variables={"name": name})  # fmt: skip

    def _stanza(self, name: str, layout: Layout) -> None:
        pgbackrest(layout, name, "stanza-create", timeout=120)
        pgbackrest(layout, name, "check", timeout=120)  # archiving works end to end
        if not backup_labels(layout, name):
            pgbackrest(layout, name, "backup", "--type=full", timeout=3600)

    def port_of(self, layout: Layout) -> int:
        for line in (layout.data / "slipway.conf").read_text().splitlines():
            if line.startswith("port = "):
                return int(line.split("=")[1])
        raise RuntimeFailure(f"no port in {layout.data / 'slipway.conf'}", fix="report this")

    def psql(
        self,
        run: Path,
        port: int,
        database: str,
        sql: str,
        variables: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> str:
        """SQL on the socket as postgres, from stdin: nothing of it reaches `ps`."""
        argv = [str(pgrun.BIN / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-h", str(run), "-p", str(port), "-d", database]  # fmt: skip
        for key, value in (variables or {}).items():
            argv += ["-v", f"{key}={value}"]
        return pgrun.run(argv, timeout=timeout, stdin=sql).stdout

    # run, stop, drop ---------------------------------------------------------------------

    async def start(self, name: str) -> dict[str, Any]:
        layout = self.layout(name)
        if not layout.initialised.exists():
            raise NotFound(f"database {name} has no cluster on this host", fix="create it again")
        async with self.lock(name):
            layout.wanted.touch()
            await self._start(layout)
        return self.describe(name)

    async def _start(self, layout: Layout) -> None:
        if self.pid(layout.data) is not None:
            return
        # the way in, again: a home restored or re-made since may have closed it
        await asyncio.to_thread(pgrun.passable, self.home, [self.folder, layout.repo.parent])
        with contextlib.suppress(FileNotFoundError):  # a stale one after a crash of the host
            if self.pid(layout.data) is None:
                (layout.data / "postmaster.pid").unlink()
        await asyncio.to_thread(
            pgrun.run,
            [str(pgrun.BIN / "pg_ctl"), "-D", str(layout.data), "-l", str(layout.server_log),
             "-w", "-t", str(START_TIMEOUT), "-s", "start"],
            START_TIMEOUT + 10,
        )  # fmt: skip

    async def stop(self, name: str, keep_wanted: bool = False) -> None:
        layout = self.layout(name)
        async with self.lock(name):
            if not keep_wanted:
                layout.wanted.unlink(missing_ok=True)  # first: the watch leaves it stopped
            await asyncio.to_thread(self.stop_now, layout.data)

    def stop_now(self, data: Path) -> None:
        """Fast shutdown (sessions cut, committed work kept), immediate if that hangs."""
        if self.pid(data) is None:
            return
        stop = [str(pgrun.BIN / "pg_ctl"), "-D", str(data), "-w", "-t", str(STOP_TIMEOUT)]
        done = pgrun.run([*stop, "-m", "fast", "stop"], STOP_TIMEOUT + 10, check=False)
        if done.returncode != 0 and self.pid(data) is not None:
            pgrun.run([*stop, "-m", "immediate", "stop"], STOP_TIMEOUT + 10, check=False)

    async def drop(self, name: str) -> None:
        """The cluster and its repository, gone (the user typed the name to confirm)."""
        layout = self.layout(name)
        await self.stop(name)
        async with self.lock(name):
            await asyncio.to_thread(self.stop_now, layout.scratch / "data")
            await asyncio.to_thread(shutil.rmtree, layout.root, True)
            await asyncio.to_thread(shutil.rmtree, layout.repo, True)

    async def stop_all(self) -> list[str]:
        """`slipway down --all`: every cluster stops (wanted no more until `slipway up`)."""
        names = self.names()
        for name in names:
            await self.stop(name)
        return names

    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.folder.iterdir() if model.NAME.match(p.name))
        except OSError:
            return []

    # what is there ---------------------------------------------------------------------

    def describe(self, name: str) -> dict[str, Any]:
        layout = self.layout(name)
        pid = self.pid(layout.data)
        return {
            "name": name,
            "exists": layout.initialised.exists(),
            "wanted": layout.wanted.exists(),
            "running": pid is not None,
            "ready": self.ready(layout.data),
            "pid": pid,
            "size": folder_size(layout.data),
            "backup_size": folder_size(layout.repo),
        }

    # the watch -------------------------------------------------------------------------

    async def watch(self) -> None:
        """Forever: every wanted cluster runs (backing off if one keeps failing to start)."""
        while True:
            await asyncio.sleep(WATCH_EVERY)
            for name in self.names():
                with contextlib.suppress(asyncio.CancelledError):
                    await self._revive(name)

    async def _revive(self, name: str) -> None:
        layout = self.layout(name)
        if not layout.wanted.exists() or self.pid(layout.data) is not None:
            self._backoff.pop(name, None)
            return
        due, delay = self._backoff.get(name, (0.0, WATCH_EVERY))
        if time.monotonic() < due or self.lock(name).locked():
            return
        log.warning("PostgreSQL of database %s is not running: starting it again", name)
        try:
            async with self.lock(name):
                if layout.wanted.exists() and self.pid(layout.data) is None:
                    await self._start(layout)
            self._backoff.pop(name, None)
        except RuntimeFailure as exc:
            log.warning("database %s: %s", name, exc.message)
            delay = min(MAX_BACKOFF, delay * 2)
            self._backoff[name] = (time.monotonic() + delay, delay)


def pgbackrest(layout: Layout, name: str, command: str, *options: str, timeout: float) -> str:
    argv = [PGBACKREST, f"--config={layout.backrest_conf}", f"--stanza={name}", *options, command]
    return pgrun.run(argv, timeout=timeout).stdout


def backup_info(layout: Layout, name: str) -> Any:
    """`pgbackrest info --output=json`, parsed (the control plane reads it: backups.py)."""
    return json.loads(pgbackrest(layout, name, "info", "--output=json", timeout=60) or "[]")


def backup_labels(layout: Layout, name: str) -> list[str]:
    return [str(b.get("label")) for s in backup_info(layout, name) for b in s.get("backup", [])]


def folder_size(path: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(path):
        for file in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, file)).st_size
    return total
