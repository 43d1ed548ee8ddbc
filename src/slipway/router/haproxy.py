"""HAProxy as slipway's data plane: its process (master-worker, detached, so it keeps serving
while the daemon is down), reloads (only when listeners change) and runtime server changes
through the admin socket (every deploy)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from slipway.errors import PreflightError, RouterError
from slipway.paths import Home
from slipway.router import certs
from slipway.router.cache import EPOCHS_FILE, epoch_command, new_epoch, render_epochs
from slipway.router.config import (
    Backend,
    RouterState,
    Server,
    backend_name,
    listen_addresses,
    render,
    server_options,
    structure_hash,
)
from slipway.router.stats import (
    CacheCounters,
    ProcInfo,
    ServerStat,
    parse_cache_counters,
    parse_show_proc,
    parse_show_stat,
)
from slipway.router.sync import plan_sync
from slipway.runtime import procs

MIN_VERSION = (2, 6)
INSTALL_HINT = "install it with `apt-get install haproxy` (Debian/Ubuntu; version 2.6 or newer)"


def find_haproxy() -> str:
    """The haproxy binary ($SLIPWAY_HAPROXY or PATH), checked to be 2.6 or newer."""
    binary = os.environ.get("SLIPWAY_HAPROXY") or shutil.which("haproxy")
    if not binary or not Path(binary).exists():
        raise PreflightError("HAProxy is not installed (no `haproxy` on PATH)", fix=INSTALL_HINT)
    try:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreflightError(f"cannot run {binary}: {exc}", fix=INSTALL_HINT) from None
    match = re.search(r"version (\d+)\.(\d+)", out)
    if not match or (int(match.group(1)), int(match.group(2))) < MIN_VERSION:
        raise PreflightError(
            f"{binary} is too old or unrecognised: {out.strip().splitlines()[:1]}",
            fix=INSTALL_HINT,
        )
    return binary


class HAProxyRouter:
    def __init__(self, home: Home, binary: str) -> None:
        self.binary = binary
        self.dir = home.haproxy_dir
        self.cfg = self.dir / "haproxy.cfg"
        self.master_socket = self.dir / "master.sock"
        self.admin_socket = self.dir / "admin.sock"
        self.pidfile = self.dir / "haproxy.pid"
        self.output = self.dir / "haproxy.out"
        self.loaded = self.dir / "loaded.json"
        self.certs_dir = self.dir / "certs"
        self.epochs = self.dir / EPOCHS_FILE  # each cached app's epoch (router/cache.py)
        self._lock = asyncio.Lock()

    # process --------------------------------------------------------------------------

    def master_pid(self) -> int | None:
        """The master's pid if our HAProxy is running (checked by its config path)."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
            if not procs.running(pid) or str(self.cfg) not in procs.command_line(pid, limit=None):
                return None
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        return self.master_pid() is not None

    def haproxy_pids(self) -> set[int]:
        """Our master and its workers: the ports they hold are ours already."""
        pid = self.master_pid()
        if pid is None:
            return set()
        return {pid, *procs.children(pid)}

    async def ensure(self, state: RouterState) -> bool:
        """Run HAProxy with this state's listeners and servers, its TLS certificates read
        from their files here. Returns True if it (re)loaded."""
        prepared = certs.prepare(state, self.certs_dir)  # reads [edge] tls_cert / tls_key
        return await self.apply(prepared.state, prepared.pems, prepared.sources)

    async def apply(
        self,
        state: RouterState,
        pems: dict[str, bytes],
        sources: dict[str, tuple[str, str | None]] | None = None,
    ) -> bool:
        """Run HAProxy with this state, the TLS certificates given (as the control plane
        read them). Returns True if it (re)loaded.

        A reload drops runtime-added servers, so the file always carries the current ones."""
        async with self._lock:
            state = dataclasses.replace(
                state, admin_socket=str(self.admin_socket), certs_dir=str(self.certs_dir)
            )
            prepared = certs.Prepared(state, pems, sources or {})
            loaded = self._loaded()
            wanted = structure_hash(state)
            if self.running() and loaded.get("hash") == wanted:
                return False
            for address, port in sorted(listen_addresses(state)):
                ensure_port_free(address, port, self.haproxy_pids())
            certs.install(self.certs_dir, prepared)
            cached = [b.name for b in state.backends if b.edge.cache is not None]
            self.epochs.write_text(render_epochs(cached))  # `haproxy -c` loads it too
            await self._write_checked(render(state))
            if self.running():
                await self._reload()
            else:
                await self._start()
            self.loaded.write_text(json.dumps({"hash": wanted}))
            certs.prune(self.certs_dir, keep=set(pems))
            return True

    async def _write_checked(self, text: str) -> None:
        candidate = self.cfg.with_suffix(".new")
        candidate.write_text(text)
        proc = await asyncio.create_subprocess_exec(
            self.binary,
            "-c",
            "-q",
            "-f",
            str(candidate),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise RouterError(
                "HAProxy rejected the generated configuration; nothing was changed",
                where=str(candidate),
                details=out.decode(errors="replace").strip().splitlines()[-15:],
                fix="this is a slipway bug if your slipway.toml passed `slipway config check`; "
                "please report it with the file above",
            )
        os.replace(candidate, self.cfg)

    async def _start(self) -> None:
        for stale in (self.master_socket, self.admin_socket):
            stale.unlink(missing_ok=True)
        with open(self.output, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                self.binary,
                "-W",
                "-D",
                "-S",
                f"{self.master_socket},mode,600",
                "-p",
                str(self.pidfile),
                "-f",
                str(self.cfg),
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            code = await proc.wait()
        if code != 0:
            raise RouterError(
                f"HAProxy failed to start (exit code {code})",
                where=str(self.cfg),
                details=self._output_tail(),
                fix="read the lines above; a port in use or a bad certificate are common causes",
            )
        await self._wait(
            lambda: self.running() and self.admin_socket.exists(), 10.0, "HAProxy did not come up"
        )
        await self._wait_admin()

    async def _reload(self) -> None:
        before = parse_show_proc(await self.master_command("show proc"))
        await self.master_command("reload")
        deadline = time.monotonic() + 15.0
        after: ProcInfo = before
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            try:  # the master re-executes itself: its socket is briefly unavailable
                after = parse_show_proc(await self.master_command("show proc"))
            except RouterError:
                continue
            if after.reloads > before.reloads and after.workers:
                break
        if after.failed > before.failed or after.reloads <= before.reloads:
            raise RouterError(
                "HAProxy did not take the new configuration; the previous one keeps serving",
                where=str(self.cfg),
                details=self._output_tail(),
                fix="read the lines above; a port in use is the most common cause",
            )
        await self._wait_admin()

    async def stop(self, timeout: float = 30.0) -> None:
        """Soft-stop: listeners close, in-flight requests finish, then HAProxy exits."""
        pid = self.master_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while self.master_pid() is not None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.master_pid() is not None:
            os.kill(pid, signal.SIGTERM)
            await self._wait(lambda: self.master_pid() is None, 5.0, "HAProxy did not stop")
        self.loaded.unlink(missing_ok=True)

    # runtime API ----------------------------------------------------------------------

    async def add_server(self, backend: Backend, server: Server) -> None:
        be = backend_name(backend.app)
        answer = await self.command(
            f"add server {be}/{server.name} {server.address}:{server.port} "
            f"{server_options(backend, server.weight)}"
        )
        if "Already exists" not in answer and "New server registered" not in answer:
            raise RouterError(
                f"HAProxy refused to add server {server.name}: {answer.strip()}",
                where=f"backend {be}",
            )
        await self.command(f"enable health {be}/{server.name}")
        await self.command(f"enable server {be}/{server.name}")
        if server.weight > 0:  # traffic to a release it may not have had: a new cache epoch
            self._check_epoch(be, await self.command(self._epoch_command(be)))

    async def set_weight(self, app: str, name: str, weight: int) -> None:
        await self.set_weights(app, {name: weight})

    async def set_weights(self, app: str, weights: dict[str, int]) -> None:
        """One switch: every server with weight > 0 (in the given order), then, only if
        HAProxy has all of those, the ones at 0: capacity is added before any is taken away.
        Each half is one request on the admin socket (commands joined by `;`, HAProxy runs
        them in order). One connection per command made a switch of 8 new and 8 old servers
        32 connections in turn: 32-35 ms on one lb host, up to 95 ms on a busy machine, and
        as much skew between lb hosts (bench/fleet).

        The last request ends with a new cache epoch for the app, after the weights: from
        then on no cached answer of the traffic before the switch is served (router/cache.py)."""
        raises = {name: w for name, w in weights.items() if w > 0}
        lowers = {name: w for name, w in weights.items() if w <= 0}
        steps = [
            (part, chunk)
            for part in (raises, lowers)
            for chunk in request_chunks(list(part))
            if chunk
        ]
        if not steps:
            return
        be = backend_name(app)
        for i, (part, chunk) in enumerate(steps):
            last = i == len(steps) - 1
            answers, epoch = await self._ready_at(
                app,
                [(name, part[name]) for name in chunk],
                self._epoch_command(be) if last else None,
            )
            missing = [n for n, said in zip(chunk, answers, strict=True) if "No such" in said]
            if missing and part is raises:  # weight 0 on a server that is gone: done
                raise RouterError(
                    f"HAProxy has no server {', '.join(missing)}",
                    where=f"backend {be}",
                )
            if epoch is not None:
                self._check_epoch(be, epoch)

    async def _ready_at(
        self, app: str, weights: list[tuple[str, int]], then: str | None = None
    ) -> tuple[list[str], str | None]:
        """Each server ready at its weight, in one request, then the command `then`: what
        HAProxy said for each server, and to `then`."""
        be = backend_name(app)
        line = "; ".join(
            f"set server {be}/{name} state ready; set server {be}/{name} weight {weight}"
            for name, weight in weights
        )
        if then is not None:
            line += f"; {then}"
        said = answers_of(await self.command(line))
        expected = 2 * len(weights) + (then is not None)
        # `then` is last: its answer is all that follows (HAProxy 2.6 ends some `set map`
        # errors with one more empty line than other answers).
        if len(said) < expected or (then is None and len(said) != expected):
            raise RouterError(
                f"HAProxy answered {len(said)} of {expected} weight commands",
                details=said[-10:],
                where=f"backend {be}",
            )
        servers = [said[2 * i] + said[2 * i + 1] for i in range(len(weights))]
        return servers, ("\n".join(said[2 * len(weights) :]) if then is not None else None)

    def _epoch_command(self, backend: str) -> str:
        return epoch_command(str(self.epochs), backend, new_epoch())

    def _check_epoch(self, backend: str, answer: str) -> bool:
        """True if the app's cache has a new epoch; False if HAProxy caches nothing for it
        (the map or the app's line in it is absent: the app has no [edge.cache])."""
        said = answer.strip()
        if not said:
            return True
        if "Unknown map" in said or "not found" in said:
            return False
        raise RouterError(
            f"HAProxy refused the new cache epoch: {said}",
            where=f"backend {backend}",
            fix="`slipway cache purge` retries it; until then the cache may serve answers "
            "stored before the switch",
        )

    async def purge_cache(self, app: str) -> bool:
        """Every answer cached for the app so far is never served again (a new epoch); their
        memory is reused as new answers need it. False if the app has no cache here."""
        be = backend_name(app)
        return self._check_epoch(be, await self.command(self._epoch_command(be)))

    async def cache_counters(self, app: str) -> CacheCounters:
        """HAProxy's own counters of the app's cache since it (re)started."""
        be = backend_name(app)
        return parse_cache_counters(await self.command(f"show stat {be} 2 -1"), be)

    async def set_health(self, app: str, name: str, up: bool) -> None:
        state = "up" if up else "down"
        await self.command(f"set server {backend_name(app)}/{name} health {state}")

    async def drain(self, app: str, name: str) -> None:
        await self.command(f"set server {backend_name(app)}/{name} state drain")

    async def remove_server(self, app: str, name: str, timeout: float = 20.0) -> None:
        """MAINT then delete; deletion is refused while connections remain, so retry."""
        be = backend_name(app)
        await self.command(f"set server {be}/{name} state maint")
        deadline = time.monotonic() + timeout
        while True:
            answer = await self.command(f"del server {be}/{name}")
            if "Server deleted" in answer or "No such" in answer:
                return
            if time.monotonic() > deadline:
                await self.command(f"shutdown sessions server {be}/{name}")
                answer = await self.command(f"del server {be}/{name}")
                if "Server deleted" in answer or "No such server" in answer:
                    return
                raise RouterError(
                    f"HAProxy would not delete server {name}: {answer.strip()}",
                    where=f"backend {be}",
                )
            await asyncio.sleep(0.1)

    async def stats(self, app: str) -> dict[str, ServerStat]:
        be = backend_name(app)
        return parse_show_stat(await self.command(f"show stat {be} 4 -1"), be)

    async def sync(self, backend: Backend) -> None:
        """Make HAProxy's runtime servers match `backend` (after a daemon restart), adding
        capacity before taking any away (router/sync.py)."""
        for change in plan_sync(await self.stats(backend.app), backend.servers):
            if change.kind == "add":
                assert change.new is not None
                await self.add_server(backend, change.new)
            elif change.kind == "remove":
                await self.remove_server(backend.app, change.server)
            else:
                await self.set_weight(backend.app, change.server, change.weight)

    # sockets --------------------------------------------------------------------------

    async def command(self, line: str) -> str:
        return await _ask(self.admin_socket, line, "the HAProxy admin socket")

    async def master_command(self, line: str) -> str:
        return await _ask(self.master_socket, line, "the HAProxy master socket")

    async def _wait_admin(self) -> None:
        deadline = time.monotonic() + 10.0
        while True:
            try:
                await self.command("show info")
                return
            except RouterError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def _wait(self, done: object, timeout: float, what: str) -> None:
        assert callable(done)
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RouterError(what, details=self._output_tail(), where=str(self.cfg))
            await asyncio.sleep(0.05)

    def _output_tail(self) -> list[str]:
        try:
            return self.output.read_text(errors="replace").strip().splitlines()[-15:]
        except OSError:
            return []

    def _loaded(self) -> dict[str, Any]:
        try:
            data = json.loads(self.loaded.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}


REQUEST_CHARS = 4000  # a request line stays well inside HAProxy's buffer (tune.bufsize 16k)


def request_chunks(names: list[str]) -> list[list[str]]:
    """`names` in order, in as few requests as fit REQUEST_CHARS (two commands each)."""
    chunks: list[list[str]] = []
    size = REQUEST_CHARS
    for name in names:
        cost = 2 * (len(name) + 100)  # two `set server BACKEND/NAME ...` commands
        if size + cost > REQUEST_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(name)
        size += cost
    return chunks


def answers_of(output: str) -> list[str]:
    """The answer to each command of one request: HAProxy ends every answer with an empty
    line (an answer with nothing to say is that empty line alone)."""
    answers, lines = [], []
    for line in output.split("\n")[:-1]:
        if line:
            lines.append(line)
        else:
            answers.append("\n".join(lines))
            lines = []
    return answers


async def _ask(path: Path, line: str, what: str) -> str:
    """One command per connection; the master CLI answers only once we shut our write side."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 5.0)
    except (OSError, TimeoutError) as exc:
        raise RouterError(
            f"{what} does not answer ({exc})",
            where=str(path),
            fix="is HAProxy running? `slipway up` restarts it",
        ) from None
    try:
        writer.write(line.encode() + b"\n")
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 10.0)
    except (OSError, TimeoutError) as exc:
        raise RouterError(f"{what} failed during '{line}' ({exc})", where=str(path)) from None
    finally:
        writer.close()
    return data.decode(errors="replace")


def ensure_port_free(address: str, port: int, ours: set[int]) -> None:
    owner = _port_owner(port)
    if owner is not None and owner[0] in ours:
        return
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            return
        except OSError as exc:
            reason = exc.strerror or str(exc)
    held = f" (held by pid {owner[0]}, {owner[1]})" if owner else ""
    raise RouterError(
        f"cannot listen on {address}:{port}: {reason}{held}",
        where="listen.port in slipway.toml",
        fix="choose a free port in [listen] port, or stop the program that holds it",
    )


def _port_owner(port: int) -> tuple[int, str] | None:
    holder = procs.port_holder(port)
    if holder is None or holder[0] is None:
        return None
    return holder[0], holder[1]
