"""The daemon's replication task: a sealed snapshot of the home shipped to the replica host
every few seconds when anything changed (`every`, default 2 s), and at once when a
deployment starts or ends. It never blocks a deploy or a request: it runs on its own, and a
copy that fails is retried and shown (`slipway control status`, `slipway hosts`, the
daemon's log) until one succeeds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slipway.audit.log import HEAD_NAME, LOG_NAME, AuditLog
from slipway.control import replica as names
from slipway.control import snapshot
from slipway.control.replica import ReplicaStore
from slipway.control.sealed import ReplicaError, ReplicaKey, read_key, seal
from slipway.errors import SlipwayError
from slipway.paths import Home
from slipway.store import backup
from slipway.store.store import Store

log = logging.getLogger("slipway.replica")
SETTINGS, KEY_FILE, WORK = "replica.json", "replica.key", "replica-work"
DEFAULT_EVERY, MIN_EVERY, MAX_EVERY = 2.0, 0.5, 3600.0  # 2 s + a copy: within 5 s lost
DEFAULT_KEEP, MAX_KEEP = 3, 100
MAX_SNAPSHOT = 1 << 30  # a sealed snapshot (without its blobs) larger than this is refused
RETRY_MAX = 30.0
CONFIRM_EVERY = 30.0


@dataclass(frozen=True)
class Settings:
    host: str
    every: float = DEFAULT_EVERY
    keep: int = DEFAULT_KEEP


def load_settings(home: Home) -> Settings | None:
    try:
        data = json.loads((home.root / SETTINGS).read_text())
        return Settings(str(data["host"]), float(data["every"]), int(data["keep"]))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ReplicaError(
            f"{SETTINGS} is damaged: {exc}",
            where=str(home.root / SETTINGS),
            fix="`slipway control replicate --to HOST` writes it again",
        ) from None


def save_settings(home: Home, settings: Settings | None) -> None:
    path = home.root / SETTINGS
    if settings is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(settings)))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def fingerprint(home: Home, store: Store) -> tuple[Any, ...]:
    """Cheap: changes to the state, the audit log, the keys, certs and release archives."""
    stats = []
    watched = [home.db, home.db.with_name(home.db.name + "-wal"), home.root / LOG_NAME]
    watched += [home.root / HEAD_NAME, home.secrets_key, home.root / SETTINGS]
    watched += sorted((home.root / "certs").glob("*"))
    watched += sorted((home.root / "apps").glob("*/artifacts/*.sha256"))
    for path in watched:
        try:
            info = path.stat()
            stats.append((str(path), info.st_size, info.st_mtime_ns))
        except FileNotFoundError:
            continue
    return (backup.changes(store), *stats)


@dataclass
class Shipped:
    seq: int
    taken_at: float
    bytes: int
    blobs: int  # blobs sent this time


async def ship(
    home: Home,
    audit: AuditLog,
    replica: ReplicaStore,
    key: ReplicaKey,
    seq: int,
    settings: Settings,
    ssh_keys: dict[str, str],
    known_blobs: set[str],
    referenced: dict[int, set[str]] | None = None,
) -> Shipped:
    """Take a snapshot, send the blobs the replica lacks, then the snapshot (so a snapshot
    on the replica always has its blobs), then drop snapshots beyond `keep`."""
    work = home.root / WORK
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    try:
        taken = await asyncio.to_thread(
            snapshot.take, home, audit, work / "snap", ssh_keys, seq, asdict(settings)
        )
        packed, sealed = work / "snapshot.tar.gz", work / "snapshot.swcr"
        await asyncio.to_thread(snapshot.pack, taken, packed)
        size = await asyncio.to_thread(seal, key, packed, sealed)
        if size > MAX_SNAPSHOT:
            raise ReplicaError(
                f"the snapshot is {size >> 20} MiB, over the {MAX_SNAPSHOT >> 20} MiB limit",
                where=str(home.db),
                fix="metrics history is most of it: see `slipway metrics`; report this",
            )
        if not known_blobs:
            known_blobs.update(n.removesuffix(".swcr") for n in await replica.list("blobs"))
        sent, ids = 0, set()
        for digest, path in taken.blobs.items():
            blob_id = names.blob_id(key, digest)
            ids.add(blob_id)
            if blob_id in known_blobs:
                continue
            blob = work / "blob.swcr"
            size += await asyncio.to_thread(seal, key, path, blob)
            await replica.put(blob, names.blob_name(blob_id))
            known_blobs.add(blob_id)
            sent += 1
        await replica.put(sealed, names.snapshot_name(seq))
        kept = names.seqs(await replica.list())
        for old in kept[: -settings.keep]:
            await replica.remove(names.snapshot_name(old))
        if referenced is not None:
            referenced[seq] = ids
            await prune_blobs(replica, kept[-settings.keep :], referenced, known_blobs)
        return Shipped(seq, taken.taken_at, size, sent)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def prune_blobs(
    replica: ReplicaStore, kept: list[int], referenced: dict[int, set[str]], known: set[str]
) -> None:
    """Remove the blobs no kept snapshot refers to (a pruned release's archive, a segment
    retention removed), once every kept snapshot was made by this daemon (it knows their
    blobs); before that, nothing is removed."""
    for seq in [s for s in referenced if s not in kept]:
        del referenced[seq]
    if any(seq not in referenced for seq in kept):
        return
    needed = set().union(*(referenced[seq] for seq in kept))
    for name in await replica.list("blobs"):  # with what a copy cut short left (.tmp)
        blob_id = name.removesuffix(".swcr")
        if blob_id not in needed:
            await replica.remove(f"blobs/{name}")
            known.discard(blob_id)


class Replicator:
    """The task, its settings and its state as `slipway control status` shows it."""

    def __init__(
        self,
        home: Home,
        store: Store,
        audit: AuditLog,
        open_replica: Callable[[str], ReplicaStore],  # the replica on that host
        ssh_keys: Callable[[], dict[str, str]],  # host -> the key file it is reached with
    ) -> None:
        self.home, self.store, self.audit = home, store, audit
        self.open_replica = open_replica
        self.ssh_keys = ssh_keys
        self.settings = load_settings(home)
        self._kicked = asyncio.Event()
        self._lock = asyncio.Lock()
        self.next_seq: int | None = None
        self.known_blobs: set[str] = set()
        self.referenced: dict[int, set[str]] = {}  # snapshot seq -> the blobs it needs
        self.shipped: Shipped | None = None
        self.shipped_print: tuple[Any, ...] | None = None
        self.current_at: float | None = None  # every change before this is on the replica
        self.error: str | None = None
        self.failing_since: float | None = None
        self.failures = 0
        self.confirmed_at = 0.0  # when the replica was last seen holding the last copy
        self.took: float | None = None  # seconds the last copy took
        self.started_at = time.time()  # nothing of this daemon's reached the replica before

    @property
    def key_path(self) -> Path:
        return self.home.root / KEY_FILE

    def kick(self) -> None:
        """Ship soon (a deployment started or ended): never waits."""
        self._kicked.set()

    def configure(self, settings: Settings | None) -> None:
        save_settings(self.home, settings)
        self.settings = settings
        self.next_seq, self.shipped, self.shipped_print = None, None, None
        self.known_blobs.clear()
        self.referenced.clear()
        self.started_at, self.current_at = time.time(), None
        self.error, self.failing_since, self.failures = None, None, 0
        self.kick()

    async def run(self) -> None:
        while True:
            delay = 60.0 if self.settings is None else self.settings.every
            if self.failures:
                delay = min(max(delay, 2.0**self.failures), RETRY_MAX)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), delay)
            self._kicked.clear()
            if self.settings is not None:
                try:
                    await self.cycle()
                except SlipwayError:
                    pass  # recorded in the state: shown, retried
                except Exception:  # never let the task die: it is the only copy
                    log.exception("replication failed unexpectedly")

    async def cycle(self, force: bool = False) -> Shipped | None:
        """One pass: ship if anything changed (or `force`); raises what went wrong, having
        recorded it for the status."""
        settings = self.settings
        if settings is None:
            raise ReplicaError(
                "the control plane is not replicated",
                fix="`slipway control replicate --to HOST` turns it on",
            )
        async with self._lock:
            started = time.time()
            changed = fingerprint(self.home, self.store)
            unchanged = not force and changed == self.shipped_print and self.error is None
            if unchanged and await self._still_there(settings, started):
                self.current_at = started
                return None
            try:
                shipped = await self._ship(settings)
            except SlipwayError as exc:
                self._failed(settings, exc.message)
                raise
            except OSError as exc:
                self._failed(settings, str(exc))
                raise ReplicaError(f"the snapshot could not be made: {exc}") from None
            self.shipped, self.shipped_print = shipped, changed
            self.current_at, self.confirmed_at = shipped.taken_at, time.time()
            self.took = time.time() - started
            if self.error is not None:
                log.warning("the replica on %s is current again", settings.host)
            self.error, self.failing_since, self.failures = None, None, 0
            return shipped

    async def _still_there(self, settings: Settings, now: float) -> bool:
        """Nothing changed: the replica is current, if it still holds the last copy (asked
        every CONFIRM_EVERY seconds: a replica host lost while nothing changes is shown)."""
        if now - self.confirmed_at < CONFIRM_EVERY:
            return True
        try:
            present = names.seqs(await self.open_replica(settings.host).list())
        except SlipwayError as exc:
            self._failed(settings, exc.message)
            raise
        if self.shipped is None or self.shipped.seq not in present:
            self.known_blobs.clear()  # the replica lost its copies: its blobs too, maybe
            return False  # copied again
        self.confirmed_at = now
        return True

    async def _ship(self, settings: Settings) -> Shipped:
        if not self.key_path.exists():
            raise ReplicaError(
                f"there is no replica key at {self.key_path}",
                fix="`slipway control replicate --to HOST` makes one (save what it prints)",
            )
        key = read_key(self.key_path)
        replica: ReplicaStore = self.open_replica(settings.host)
        if self.next_seq is None:  # after the replica's newest, whoever made it
            self.next_seq = max(names.seqs(await replica.list()), default=0) + 1
        shipped = await ship(
            self.home,
            self.audit,
            replica,
            key,
            self.next_seq,
            settings,
            self.ssh_keys(),
            self.known_blobs,
            self.referenced,
        )
        self.next_seq += 1
        return shipped

    def _failed(self, settings: Settings, message: str) -> None:
        if self.error is None:
            log.warning("copying the control plane to %s failed: %s", settings.host, message)
            self.failing_since = time.time()
        self.error = message
        self.failures += 1
        self.known_blobs.clear()  # ask the replica again what it has

    def behind(self, now: float | None = None) -> float | None:
        """Seconds of changes the replica may lack (None: not replicated)."""
        if self.settings is None:
            return None
        moment = time.time() if now is None else now
        return max(0.0, moment - (self.current_at or self.started_at))

    def view(self, now: float | None = None) -> dict[str, Any]:
        moment = time.time() if now is None else now
        settings = self.settings
        if settings is None:
            return {"state": "off"}
        behind = self.behind(moment)
        state = "failing" if self.error else ("ok" if self.current_at else "starting")
        shipped = self.shipped
        return {
            "state": state,
            "host": settings.host,
            "every": settings.every,
            "keep": settings.keep,
            "behind": behind,
            "seq": shipped.seq if shipped else None,
            "shipped_at": shipped.taken_at if shipped else None,
            "bytes": shipped.bytes if shipped else None,
            "took": self.took,
            "error": self.error,
            "failing_since": self.failing_since,
            "failures": self.failures,
        }
