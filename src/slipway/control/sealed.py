"""Files sealed for leaving the control host: AES-256-GCM in chunks (a STREAM construction),
under a replica key the operator keeps. Memory stays bounded whatever the file's size, and
a file cut short, reordered or sealed under another key fails to open: each chunk's nonce
carries its index, its associated data the header and whether it is the last one.

Layout: MAGIC, key id (8 bytes), nonce prefix (8 bytes); then chunks, each a 4-byte length
and the ciphertext with its tag. Pure apart from reading and writing the two files."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from slipway.errors import SlipwayError

MAGIC = b"SWCR\x01"
KEY_BYTES = 32
CHUNK = 1 << 20  # plaintext bytes a chunk
TAG = 16
KEY_PREFIX = "swrk_"  # the replica key as text: what the operator saves
HEADER = len(MAGIC) + 8 + 8


class ReplicaError(SlipwayError):
    kind = "replica"


@dataclass(frozen=True)
class ReplicaKey:
    raw: bytes = field(repr=False)

    @property
    def id(self) -> bytes:
        return hashlib.sha256(b"slipway-replica-key" + self.raw).digest()[:8]

    @property
    def text(self) -> str:
        return KEY_PREFIX + base64.urlsafe_b64encode(self.raw).decode().rstrip("=")

    @classmethod
    def generate(cls) -> ReplicaKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def parse(cls, text: str, where: str) -> ReplicaKey:
        body = text.strip()
        fix = "give the replica key printed by `slipway control replicate` (swrk_…)"
        if not body.startswith(KEY_PREFIX) or len(body) > 100:
            raise ReplicaError("this is not a slipway replica key", where=where, fix=fix)
        try:
            raw = base64.urlsafe_b64decode(body[len(KEY_PREFIX) :] + "==")
        except (binascii.Error, ValueError):
            raise ReplicaError("the replica key is not base64", where=where, fix=fix) from None
        if len(raw) != KEY_BYTES:
            raise ReplicaError(f"the key has {len(raw)} bytes, not 32", where=where, fix=fix)
        return cls(raw)


def write_key(path: Path, key: ReplicaKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.text + "\n")


def read_key(path: Path) -> ReplicaKey:
    try:
        info = path.stat()
        text = path.read_text()[:200]
    except OSError as exc:
        raise ReplicaError(
            f"cannot read the replica key: {exc.strerror}",
            where=str(path),
            fix="give the file you saved when replication was turned on",
        ) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ReplicaError(
            "the replica key file may be read by others",
            where=str(path),
            fix=f"chmod 600 {path}",
        )
    return ReplicaKey.parse(text, str(path))


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _chunks(source: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """The plaintext in chunks, each with whether it is the last (an empty file: one)."""
    current = source.read(CHUNK)
    while True:
        following = source.read(CHUNK) if len(current) == CHUNK else b""
        yield current, not following
        if not following:
            return
        current = following


def seal(key: ReplicaKey, source: Path, dest: Path) -> int:
    """Encrypt `source` into `dest` (0600); returns the sealed size."""
    prefix = os.urandom(8)
    header = MAGIC + key.id + prefix
    aead = AESGCM(key.raw)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(source, "rb") as plain, os.fdopen(fd, "wb") as out:
        out.write(header)
        for index, (chunk, last) in enumerate(_chunks(plain)):
            if index >= 1 << 32:
                raise ReplicaError(f"{source} is too large to seal")
            sealed = aead.encrypt(_nonce(prefix, index), chunk, _aad(header, index, last))
            out.write(len(sealed).to_bytes(4, "big") + sealed)
        return out.tell()


def key_id_of(path: Path) -> bytes:
    with open(path, "rb") as handle:
        header = handle.read(HEADER)
    if len(header) < HEADER or not header.startswith(MAGIC):
        raise ReplicaError(f"{path.name} is not a sealed slipway replica file", where=str(path))
    return header[len(MAGIC) : len(MAGIC) + 8]


def unseal(key: ReplicaKey, source: Path, dest: Path) -> None:
    """Decrypt `source` into `dest` (0600), or raise ReplicaError having removed `dest`."""
    if key_id_of(source) != key.id:
        raise ReplicaError(
            f"{source.name} was sealed with another replica key",
            where=str(source),
            fix="give the replica key of the control plane that made this copy",
        )
    aead = AESGCM(key.raw)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(source, "rb") as sealed, os.fdopen(fd, "wb") as out:
            header = sealed.read(HEADER)
            prefix = header[-8:]
            index, size = 0, sealed.read(4)
            while True:
                length = int.from_bytes(size, "big") if len(size) == 4 else -1
                if length < TAG or length > CHUNK + TAG:
                    raise ReplicaError(f"{source.name} is damaged or cut short", where=str(source))
                body = sealed.read(length)
                size = sealed.read(4)
                last = not size
                try:
                    out.write(aead.decrypt(_nonce(prefix, index), body, _aad(header, index, last)))
                except InvalidTag:
                    raise ReplicaError(
                        f"{source.name} does not open: it was damaged, cut short or changed",
                        where=str(source),
                        fix="restore from an older copy (`slipway control restore --seq N`)",
                    ) from None
                if last:
                    return
                index += 1
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
