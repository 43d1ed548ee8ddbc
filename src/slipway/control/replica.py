"""Where the sealed copies live on the replica host: a folder, `control-replica` in the
agent's home there, reached over the host's SSH connection (SFTP). Snapshots are
`snap-SEQ.swcr`, blobs `blobs/ID.swcr` (ID: a keyed hash of the content's digest). Every file
is written under a temporary name and renamed, so a reader never sees half of one. A folder
on this machine implements the same protocol for tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import asyncssh

from slipway.control.sealed import ReplicaError, ReplicaKey

FOLDER = "control-replica"
SNAPSHOT = re.compile(r"^snap-(\d{12})\.swcr$")
BLOB = re.compile(r"^[0-9a-f]{64}\.swcr$")
TIMEOUT = 300.0


def snapshot_name(seq: int) -> str:
    return f"snap-{seq:012d}.swcr"


def blob_id(key: ReplicaKey, digest: str) -> str:
    """A blob's name there: keyed, so the name does not reveal the digest of its content."""
    return hmac.new(key.raw, digest.encode(), hashlib.sha256).hexdigest()


def blob_name(blob: str) -> str:
    return f"blobs/{blob}.swcr"


def seqs(names: list[str]) -> list[int]:
    """The snapshots' sequence numbers, oldest first."""
    return sorted(int(m.group(1)) for n in names if (m := SNAPSHOT.match(n)))


class ReplicaStore(Protocol):
    where: str

    async def list(self, folder: str = "") -> list[str]:
        """The file names in the replica's folder (or a folder in it); [] if none."""
        ...

    async def put(self, local: Path, name: str) -> None: ...

    async def get(self, name: str, local: Path) -> None: ...

    async def remove(self, name: str) -> None: ...


class FolderReplica:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    async def list(self, folder: str = "") -> list[str]:
        path = self.root / folder
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    async def put(self, local: Path, name: str) -> None:
        dest = self.root / name
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dest.with_name(dest.name + ".tmp")
        await asyncio.to_thread(shutil.copyfile, local, tmp)
        os.replace(tmp, dest)

    async def get(self, name: str, local: Path) -> None:
        if not (self.root / name).is_file():
            raise ReplicaError(f"the replica has no {name}", where=self.where)
        await asyncio.to_thread(shutil.copyfile, self.root / name, local)

    async def remove(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)


Connect = Callable[[], Awaitable[asyncssh.SSHClientConnection]]


class SftpReplica:
    """The replica folder on a host, over an SSH connection kept by someone else (the
    fleet's transport for that host, or the restore's own)."""

    def __init__(self, connect: Connect, home: str, host: str) -> None:
        self.connect = connect
        self.root = f"{home.rstrip('/')}/{FOLDER}"
        self.where = f"host {host}:{self.root}"
        self.host = host

    def _failed(self, what: str, exc: BaseException) -> ReplicaError:
        return ReplicaError(
            f"{what} on host {self.host} failed: {exc or type(exc).__name__}",
            where=self.where,
            fix="check the host answers (`slipway hosts`) and has free disk space",
        )

    async def list(self, folder: str = "") -> list[str]:
        path = f"{self.root}/{folder}".rstrip("/")
        try:
            async with asyncio.timeout(60):
                conn = await self.connect()
                async with conn.start_sftp_client() as sftp:
                    if not await sftp.isdir(path):
                        return []
                    return sorted(str(n) for n in await sftp.listdir(path) if n not in (".", ".."))
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed("listing the replica", exc) from None

    async def put(self, local: Path, name: str) -> None:
        dest = f"{self.root}/{name}"
        tmp = dest + ".tmp"
        try:
            async with asyncio.timeout(TIMEOUT):
                conn = await self.connect()
                async with conn.start_sftp_client() as sftp:
                    await sftp.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
                    await sftp.put(str(local), tmp)
                    await sftp.posix_rename(tmp, dest)
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed(f"copying {name}", exc) from None

    async def get(self, name: str, local: Path) -> None:
        try:
            async with asyncio.timeout(TIMEOUT):
                conn = await self.connect()
                async with conn.start_sftp_client() as sftp:
                    await sftp.get(f"{self.root}/{name}", str(local))
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed(f"fetching {name}", exc) from None

    async def remove(self, name: str) -> None:
        try:
            async with asyncio.timeout(60):
                conn = await self.connect()
                async with conn.start_sftp_client() as sftp:
                    await sftp.remove(f"{self.root}/{name}")
        except asyncssh.SFTPNoSuchFile:
            return
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise self._failed(f"removing {name}", exc) from None
