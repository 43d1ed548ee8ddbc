"""`slipway control restore`: a control plane brought back into an empty home from its
replica: fetched over SSH (the replica host's key pinned), opened with the replica key,
checked (every file against its manifest, SQLite's integrity check, the audit chain), then
installed. The hosts' agents keep serving meanwhile; `slipway up` then adopts what runs."""

from __future__ import annotations

import getpass
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from slipway.audit.log import AuditLog
from slipway.control import replica as names
from slipway.control import snapshot
from slipway.control.replica import ReplicaStore
from slipway.control.replicator import KEY_FILE, Settings, save_settings
from slipway.control.sealed import ReplicaError, ReplicaKey, unseal, write_key
from slipway.errors import Conflict
from slipway.paths import Home
from slipway.store import hosts as stored
from slipway.store.store import Store

STAGING = "restoring"


def check_empty(home: Home) -> None:
    if home.db.exists() or home.socket.exists():
        raise Conflict(
            "this home already holds a control plane (state.db): a restore never overwrites one",
            where=str(home.root),
            fix="restore into an empty home (`--home NEW`), or move this one away first",
        )


async def fetch(
    replica: ReplicaStore, key: ReplicaKey, folder: Path, seq: int | None
) -> dict[str, Any]:
    """The chosen snapshot (the newest, or `seq`) and its blobs, opened and checked, laid out
    in `folder`. A newest snapshot that does not open falls back to the one before it."""
    available = names.seqs(await replica.list())
    if not available:
        raise ReplicaError(
            f"there is no snapshot at {replica.where}",
            where=replica.where,
            fix="check --from and --remote-home: the replica host and the agent's home there",
        )
    if seq is not None and seq not in available:
        raise ReplicaError(
            f"there is no snapshot {seq} at {replica.where}",
            fix=f"snapshots there: {', '.join(map(str, available))}",
        )
    candidates = [seq] if seq is not None else list(reversed(available))
    last_error: ReplicaError | None = None
    for number in candidates:
        try:
            return await _fetch_one(replica, key, folder, number)
        except ReplicaError as exc:
            if "another replica key" in exc.message:
                raise
            last_error = exc
    assert last_error is not None
    raise last_error


async def _fetch_one(
    replica: ReplicaStore, key: ReplicaKey, folder: Path, seq: int
) -> dict[str, Any]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    sealed, packed = folder / "snapshot.swcr", folder / "snapshot.tar.gz"
    await replica.get(names.snapshot_name(seq), sealed)
    unseal(key, sealed, packed)
    manifest = snapshot.unpack(packed, folder / "snap")
    for blob in manifest["blobs"]:
        dest = folder / "snap" / "blobs" / snapshot.blob_path(blob["path"])
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        blob_id = names.blob_id(key, blob["digest"])
        await replica.get(names.blob_name(blob_id), folder / "blob.swcr")
        unseal(key, folder / "blob.swcr", dest)
        if snapshot.sha256(dest) != blob["digest"]:
            raise ReplicaError(f"{blob['path']} on the replica does not match its digest")
    return manifest


def repoint_ssh_keys(home: Home, folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Hosts reached with a key file this machine lacks get the copy from the snapshot,
    kept in the home; a key file that is here is used as it is."""
    moved = []
    keys_dir = home.root / snapshot.SSH_DIR
    store = Store(home.db)
    try:
        for entry in manifest["ssh_keys"]:
            if Path(entry["path"]).is_file():
                continue
            host = stored.find(store, entry["host"])
            if host is None or host.ssh is None:
                continue
            keys_dir.mkdir(exist_ok=True, mode=0o700)
            dest = keys_dir / f"{entry['host']}.key"
            shutil.copyfile(folder / snapshot.blob_path(entry["member"]), dest)
            dest.chmod(0o600)
            stored.save(store, replace(host, ssh=replace(host.ssh, key=str(dest))))
            moved.append(entry["host"])
    finally:
        store.close()
    return moved


def next_generation(home: Home) -> int:
    """The restored control plane is one generation newer than the one it copies: once it
    reaches a host, that host's agent refuses the old one (were it to come back)."""
    store = Store(home.db)
    try:
        generation = stored.generation(store) + 1
        stored.set_generation(store, generation)
    finally:
        store.close()
    return generation


async def restore(
    home: Home,
    replica: ReplicaStore,
    key: ReplicaKey,
    seq: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Restore into the empty `home`; returns what was restored (for the CLI to show)."""
    check_empty(home)
    home.ensure()
    staging = home.root / STAGING
    try:
        say(f"fetching the newest snapshot from {replica.where}")
        manifest = await fetch(replica, key, staging, seq)
        say(f"checking snapshot {manifest['seq']}")
        found = snapshot.verify(staging / "snap")
        snapshot.install(staging / "snap", manifest, home)
        moved = repoint_ssh_keys(home, staging / "snap", manifest)
        generation = next_generation(home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    settings = manifest.get("settings")
    if settings:  # the restored control plane goes on copying itself to the same host
        save_settings(home, Settings(**settings))
        if not (home.root / KEY_FILE).exists():
            write_key(home.root / KEY_FILE, key)
    audit = AuditLog(home.root)
    audit.append(
        who=getpass.getuser(),
        role="admin",
        action="control restore",
        target=replica.where,
        source="cli",
        outcome="ok",
        detail={"seq": manifest["seq"], "taken_at": manifest["taken_at"]},
    )
    checked = audit.verify()
    return {
        "seq": manifest["seq"],
        "taken_at": manifest["taken_at"],
        "age": time.time() - float(manifest["taken_at"]),
        "from_home": manifest["home"],
        "counts": found["counts"],
        "audit_entries": checked.entries,
        "audit_ok": checked.ok,
        "ssh_keys_restored": moved,
        "secrets_key_in_env": bool(manifest.get("secrets_key_in_env")),
        "replicating_to": settings["host"] if settings else None,
        "generation": generation,
    }
