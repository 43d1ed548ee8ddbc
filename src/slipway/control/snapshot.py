"""A consistent copy of the control plane's home, and its checks.

What a copy holds (paths relative to the home):
- `state.db`: SQLite's online backup (apps, releases, deployments, instances, hosts, tokens,
  encrypted secrets, metrics history), never a copy of the file in use;
- `secrets.key`, the audit log's `audit.key`, `audit.head` and `audit.log`, taken while
  nothing is appended, so they are one chain;
- `certs/` (the edge's TLS material), `ingest.port` (where lb hosts send request logs);
- the SSH keys the hosts are reached with (files outside the home);
- as blobs, each shipped once by its digest: the archived audit segments (`audit.log.N`)
  and each release's archive (`apps/APP/artifacts/R.tar.gz`), which never change.

Not in it: release folders and virtualenvs (the archives rebuild them on any host), build
and gate logs, the control host's own instances and HAProxy, runtime files (socket, pid)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slipway import __version__
from slipway.audit.log import HEAD_NAME, KEY_NAME, LOG_NAME, AuditLog
from slipway.control.sealed import ReplicaError
from slipway.paths import Home
from slipway.releases.artifact import extract
from slipway.store import backup

FORMAT = 1
MANIFEST = "manifest.json"
SSH_DIR = "ssh-keys"
MAX_MANIFEST = 16 * 1024 * 1024
KEPT_FILES = ("secrets.key", "ingest.port", "replica.json")


@dataclass
class Blob:
    path: str  # where it goes in the home
    digest: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "digest": self.digest, "size": self.size}


@dataclass
class Snapshot:
    """A snapshot laid out in `folder` (its small files), with the blobs it needs."""

    folder: Path
    manifest: dict[str, Any]
    blobs: dict[str, Path] = field(default_factory=dict)  # digest -> a hard link to it

    @property
    def taken_at(self) -> float:
        return float(self.manifest["taken_at"])


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _link(source: Path, dest: Path) -> None:
    """A hard link (the source may be removed meanwhile), or a copy across filesystems."""
    dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def take(
    home: Home,
    audit: AuditLog,
    folder: Path,
    ssh_keys: dict[str, str],
    seq: int,
    settings: dict[str, Any],
) -> Snapshot:
    """Lay out a snapshot of `home` in `folder` (made empty first). Blocking: run it in a
    thread. `ssh_keys`: host name -> the key file it is reached with."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    for _ in range(3):  # a key rotated during the copy: take it again
        key_before = _read(home.secrets_key)
        taken_at = time.time()
        backup.online_backup(home.db, folder / "state.db")
        if _read(home.secrets_key) == key_before:
            break
    else:
        raise ReplicaError("the secrets key kept changing while the state was copied")
    blobs: dict[str, Path] = {}
    listed: list[Blob] = []

    def add_blob(source: Path, path: str) -> None:
        linked = folder / "blobs" / path
        _link(source, linked)
        blob = Blob(path, sha256(linked), linked.stat().st_size)
        blobs[blob.digest] = linked
        listed.append(blob)

    with audit.frozen():
        for name in (LOG_NAME, HEAD_NAME, KEY_NAME):
            if (home.root / name).exists():
                shutil.copy2(home.root / name, folder / name)
        archived = sorted(home.root.glob(f"{LOG_NAME}.*"))
        for segment in archived:
            if segment.name.removeprefix(f"{LOG_NAME}.").isdigit():
                _link(segment, folder / "blobs" / segment.name)
    for segment in sorted((folder / "blobs").glob(f"{LOG_NAME}.*")):
        blob = Blob(segment.name, sha256(segment), segment.stat().st_size)
        blobs[blob.digest] = segment
        listed.append(blob)
    for name in KEPT_FILES:
        if (home.root / name).is_file():
            shutil.copy2(home.root / name, folder / name)
    certs = home.root / "certs"
    if certs.is_dir():
        shutil.copytree(certs, folder / "certs", symlinks=False)
    for archive in sorted((home.root / "apps").glob("*/artifacts/*.tar.gz")):
        digest_file = archive.with_name(archive.name + ".sha256")
        if digest_file.is_file():
            add_blob(archive, str(archive.relative_to(home.root)))
    keys = []
    for number, (host, path) in enumerate(sorted(ssh_keys.items())):
        key = Path(path)
        if key.is_file():
            member = f"{SSH_DIR}/{number}"
            _link(key, folder / member)
            keys.append({"host": host, "path": path, "member": member})
    files = {
        str(p.relative_to(folder)): sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != "blobs"
    }
    manifest = {
        "format": FORMAT,
        "seq": seq,
        "taken_at": taken_at,
        "version": __version__,
        "home": str(home.root),
        "files": files,
        "blobs": [b.to_dict() for b in listed],
        "ssh_keys": keys,
        "settings": settings,
        "secrets_key_in_env": not home.secrets_key.exists(),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return Snapshot(folder, manifest, blobs)


def pack(snapshot: Snapshot, dest: Path) -> None:
    """The snapshot's small files (not its blobs) as one tar.gz."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add(snapshot.folder / MANIFEST, arcname=MANIFEST)
        for name in snapshot.manifest["files"]:
            if name != MANIFEST:
                tar.add(snapshot.folder / name, arcname=name)


def unpack(archive: Path, folder: Path) -> dict[str, Any]:
    """Unpack a snapshot into `folder` and check every file against its manifest."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            extract(tar, folder)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ReplicaError(f"the snapshot does not unpack: {exc}", where=str(archive)) from None
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file() or manifest_path.stat().st_size > MAX_MANIFEST:
        raise ReplicaError("the snapshot has no manifest", where=str(archive))
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ReplicaError(
            f"the snapshot is of format {manifest.get('format')}, not {FORMAT}",
            where=str(archive),
            fix="restore with the slipway version that made it: " + str(manifest.get("version")),
        )
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file() or sha256(path) != digest:
            raise ReplicaError(f"{name} in the snapshot does not match its manifest")
    return manifest


def blob_path(path: str) -> Path:
    """A blob's place in the home, refused if it would land outside it."""
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ReplicaError(f"the snapshot names a file outside the home: {path!r}")
    return relative


def verify(folder: Path) -> dict[str, Any]:
    """The restored files hold together: SQLite's integrity check passes and the audit chain
    verifies. Returns what was found (counts, audit entries)."""
    problems = backup.integrity(folder / "state.db")
    if problems:
        raise ReplicaError(
            "the state database in the snapshot fails SQLite's integrity check: "
            + "; ".join(problems[:3]),
            where=str(folder / "state.db"),
            fix="restore an older snapshot (`slipway control restore --seq N`)",
        )
    chain = folder / "audit-check"  # the live segment, its head and key, the archived ones
    shutil.rmtree(chain, ignore_errors=True)
    chain.mkdir(mode=0o700)
    for path in [*folder.glob("audit.*"), *(folder / "blobs").glob(f"{LOG_NAME}.*")]:
        if path.is_file():
            os.link(path, chain / path.name)
    checked = AuditLog(chain).verify()
    shutil.rmtree(chain, ignore_errors=True)
    if not checked.ok:
        raise ReplicaError(
            "the audit log in the snapshot does not verify: " + "; ".join(checked.problems[:3]),
            where=str(folder),
            fix="restore an older snapshot (`slipway control restore --seq N`)",
            details=checked.problems[:20],
        )
    return {"counts": backup.summary(folder / "state.db"), "audit_entries": checked.entries}


def install(folder: Path, manifest: dict[str, Any], home: Home) -> None:
    """Move a verified snapshot's files into an empty home (its blobs already in place in
    `folder`)."""
    home.ensure()
    names = [n for n in manifest["files"] if n != MANIFEST and not n.startswith(f"{SSH_DIR}/")]
    names += [b["path"] for b in manifest["blobs"]]
    for name in names:
        source = folder / name if name in manifest["files"] else folder / "blobs" / name
        dest = home.root / blob_path(name)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(source, dest)
        os.chmod(dest, 0o600)
    for blob in manifest["blobs"]:
        if blob["path"].endswith(".tar.gz"):  # a release's archive: its digest beside it
            digest_file = home.root / blob_path(blob["path"] + ".sha256")
            digest_file.write_text(blob["digest"])
    with contextlib.suppress(OSError):
        os.chmod(home.root / "certs", 0o700)
