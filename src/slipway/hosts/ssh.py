"""Reaching a host's agent over SSH (asyncssh): keys only, the host key pinned by its
fingerprint (a changed key is refused, never accepted), one connection per host kept open and
reused for every call, each call a stream forwarded to the agent's unix socket. Timeouts on
everything; after a failure, reconnects with backoff, and fails fast meanwhile."""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import time
from pathlib import Path
from typing import Any

import asyncssh

from slipway.errors import HostUnreachable, PreflightError, SlipwayError, error_from_dict
from slipway.hosts.model import Host, SshTarget

log = logging.getLogger("slipway.hosts")
CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 30.0
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
AGENT_SOCKET = "agent.sock"


class Pinned(asyncssh.SSHClient):
    """Trust the one host key whose fingerprint was pinned, nothing else."""

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.offered: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = key.get_fingerprint("sha256")
        return self.offered == self.fingerprint


async def fingerprint_of(address: str, port: int = 22) -> str:
    """The host key a host offers, for the user to confirm before it is pinned."""
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(address, port), CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncssh.Error) as exc:
        raise HostUnreachable(
            f"cannot reach {address}:{port} over SSH: {exc}",
            fix="check the address, that sshd runs there and that this host may connect",
        ) from None
    if key is None:
        raise HostUnreachable(f"{address}:{port} offered no host key")
    return str(key.get_fingerprint("sha256"))


class SshTransport:
    def __init__(
        self, host: Host, agent_start: str | None = None, generation: int | None = None
    ) -> None:
        assert host.ssh is not None
        self.host = host.name
        # the control plane's generation, sent with every call (the agent refuses an older
        # one); None only for calls outside a control plane (fetching a replica to restore)
        self.generation = generation
        self.target: SshTarget = host.ssh
        self.agent_start = agent_start  # a command that starts the agent if it is not running
        self.session: asyncssh.SSHClientConnection | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._retry_at = 0.0

    # the connection --------------------------------------------------------------------

    async def connection(self) -> asyncssh.SSHClientConnection:
        async with self._lock:
            if self.session is not None and not self.session.is_closed():
                return self.session
            if time.monotonic() < self._retry_at:
                raise self._unreachable("retrying shortly")
            try:
                self.session = await self._connect()
            except HostUnreachable:
                self._backoff()
                raise
            self._failures = 0
            return self.session

    async def _connect(self) -> asyncssh.SSHClientConnection:
        target = self.target
        pinned = Pinned(target.fingerprint)
        try:
            conn, _ = await asyncio.wait_for(
                asyncssh.create_connection(
                    lambda: pinned,
                    target.address,
                    port=target.port,
                    username=target.user,
                    client_keys=[target.key] if target.key else None,
                    known_hosts=([], [], []),  # nothing trusted but the pinned key
                    keepalive_interval=5,
                    keepalive_count_max=3,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            if pinned.offered and pinned.offered != target.fingerprint:
                raise HostUnreachable(
                    f"host {self.host} ({target.address}) offered host key {pinned.offered}, "
                    f"not the pinned {target.fingerprint}: refused (a changed key may mean "
                    "someone is in the middle)",
                    where=f"host {self.host}",
                    fix="if the host was really reinstalled, check its key on its console "
                    f"and `slipway hosts add {self.host} --fingerprint NEW ...` again",
                ) from None
            raise self._unreachable(str(exc) or type(exc).__name__) from None
        return conn

    def _backoff(self) -> None:
        delay = BACKOFF[min(self._failures, len(BACKOFF) - 1)]
        self._failures += 1
        self._retry_at = time.monotonic() + delay

    def _unreachable(self, why: str) -> HostUnreachable:
        return HostUnreachable(
            f"host {self.host} ({self.target.address}) does not answer: {why}",
            where=f"host {self.host}",
            fix="check the host and the network; `slipway hosts` shows its state",
        )

    def _lost(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None
        self._backoff()

    # calls -----------------------------------------------------------------------------

    async def call(self, method: str, _timeout: float = CALL_TIMEOUT, **params: Any) -> Any:
        conn = await self.connection()
        socket = f"{self.target.home}/{AGENT_SOCKET}"
        message: dict[str, Any] = {"method": method, "params": params}
        if self.generation is not None:
            message["generation"] = self.generation
        request = json.dumps(message).encode() + b"\n"
        try:
            async with asyncio.timeout(_timeout):
                try:
                    reader, writer = await conn.open_unix_connection(socket)
                except asyncssh.ChannelOpenError:
                    await self._start_agent(conn)
                    reader, writer = await conn.open_unix_connection(socket)
                writer.write(request)
                await writer.drain()
                line = await reader.readline()
                writer.close()
        except asyncssh.ChannelOpenError as exc:
            raise HostUnreachable(
                f"the agent on host {self.host} does not answer ({exc.reason})",
                where=f"host {self.host}",
                fix=f"`slipway hosts upgrade {self.host}` installs and starts it again",
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            self._lost()
            raise self._unreachable(str(exc) or type(exc).__name__) from None
        if not line:
            self._lost()
            raise self._unreachable("the agent closed the connection")
        answer = json.loads(line)
        if "error" in answer:
            raise error_from_dict(answer["error"])
        return answer["result"]

    async def _start_agent(self, conn: asyncssh.SSHClientConnection) -> None:
        """The agent is not running (the host rebooted, it was killed): start it, and wait
        for its socket."""
        if self.agent_start is None:
            return
        log.warning("starting the agent on %s", self.host)
        await self.run(self.agent_start, timeout=15)
        socket = f"{self.target.home}/{AGENT_SOCKET}"
        for _ in range(50):
            if (await self.run(f"test -S {shlex.quote(socket)}", timeout=5))[0] == 0:
                return
            await asyncio.sleep(0.1)

    async def run(self, command: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """A shell command on the host: (exit status, stdout, stderr)."""
        conn = await self.connection()
        try:
            result = await asyncio.wait_for(conn.run(command, check=False), timeout)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            self._lost()
            raise self._unreachable(str(exc) or type(exc).__name__) from None
        return int(result.exit_status or 0), str(result.stdout or ""), str(result.stderr or "")

    async def put(self, local: Path, remote: str, timeout: float = 300.0) -> None:
        conn = await self.connection()
        try:
            async with asyncio.timeout(timeout), conn.start_sftp_client() as sftp:
                await sftp.put(str(local), remote)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise SlipwayError(
                f"copying {local.name} to host {self.host} failed: {exc}",
                where=f"host {self.host}:{remote}",
                fix="check the host's free disk space and the SSH user's rights",
            ) from None

    async def seen_as(self, timeout: float = CONNECT_TIMEOUT) -> str:
        """This host's address as the remote host sees it (the connection's own end): where
        its HAProxy sends request logs and what its firewall lets in."""
        async with asyncio.timeout(timeout):
            conn = await self.connection()
        return str(conn.get_extra_info("sockname")[0])

    async def close(self) -> None:
        if self.session is not None:
            self.session.close()
            await self.session.wait_closed()
        self.session = None


def require_asyncssh_key(path: str | None) -> None:
    if path is not None and not Path(path).is_file():
        raise PreflightError(
            f"no SSH private key at {path}",
            where="--key",
            fix="give the private key file slipway logs in with (or use your ssh-agent)",
        )
