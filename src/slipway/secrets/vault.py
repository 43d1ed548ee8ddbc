"""The encrypted secret store: AES-256-GCM sealing, key files, rotation, log redaction.

Pure crypto and a small key-file helper; the daemon stores `Sealed` rows and the key.
A sealed value is bound to its place (app, name, version) through the associated data,
so a ciphertext copied to another row fails to open instead of leaking elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from slipway.errors import SlipwayError
from slipway.secrets.redact import REDACTED as REDACTED  # re-exported: the vault's API
from slipway.secrets.redact import redactor as redactor

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD_PREFIX = b"slipway-secret/v1\0"
# The associated data joins app and name with NUL: these shapes cannot contain it.
# an app, or a managed database's own secrets ("db:NAME": no app can be named so)
_APP = re.compile(r"[a-z0-9-]+|db:[a-z][a-z0-9_]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretsError(SlipwayError):
    kind = "secrets"


@dataclass(frozen=True)
class Key:
    id: str  # fingerprint, safe to show and store next to sealed values
    raw: bytes = field(repr=False)  # never printed: the repr shows only the id


@dataclass(frozen=True)
class Sealed:
    key_id: str
    nonce: bytes
    ciphertext: bytes  # includes the 16-byte GCM tag


def _key(raw: bytes) -> Key:
    return Key(hashlib.sha256(b"slipway-key-id" + raw).hexdigest()[:16], raw)


def generate_key() -> Key:
    return _key(os.urandom(KEY_BYTES))


def key_to_text(key: Key) -> str:
    """The key file's content: urlsafe base64 and a newline (what `key_from_text` reads)."""
    return base64.urlsafe_b64encode(key.raw).decode("ascii") + "\n"


def key_from_text(text: str, where: str) -> Key:
    """Decode base64 (urlsafe or standard) of 32 bytes. Errors never echo the text."""
    fix = (
        f"put the base64 of {KEY_BYTES} random bytes in {where} (the key file is created"
        " on first `slipway secrets set`), or restore the right key from backup"
    )
    compact = text.strip().replace("-", "+").replace("_", "/")
    compact += "=" * (-len(compact) % 4)  # tolerate stripped padding
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError("the secrets key is not valid base64", where=where, fix=fix) from None
    if len(raw) != KEY_BYTES:
        raise SecretsError(
            f"the secrets key is {len(raw)} bytes, must be {KEY_BYTES}", where=where, fix=fix
        )
    return _key(raw)


def load_key_file(path: Path) -> Key:
    try:
        # O_NOFOLLOW + fstat: check the mode of the very file we read, not a symlink's.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise SecretsError(
            "the secrets key file does not exist",
            where=str(path),
            fix="it is created on first `slipway secrets set`; if secrets were already"
            " stored, restore the key file from backup (without it they cannot be read)",
        ) from None
    except OSError as exc:
        raise SecretsError(
            f"cannot open the secrets key file: {exc.strerror}",
            where=str(path),
            fix=f"make {path} a regular file readable by the user running slipway",
        ) from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise SecretsError("the secrets key path is not a regular file", where=str(path))
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise SecretsError(
                f"the secrets key file has mode {mode:04o}, must be 0600",
                where=str(path),
                fix=f"chmod 600 {path}",
            )
        data = f.read(4096)
    return key_from_text(data.decode("ascii", errors="replace"), str(path))


def write_key_file(path: Path, key: Key, *, overwrite: bool = False) -> None:
    """Write atomically; the file is 0600 from its creation, never readable by others."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # the umask may have removed the owner's bits
            f.write(key_to_text(key).encode("ascii"))
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic "create if absent": never replaces a key in use
    except FileExistsError:
        raise SecretsError(
            "the secrets key file already exists; replacing it would make every secret"
            " sealed with it unreadable",
            where=str(path),
            fix="keep it; to change keys, rotate the secrets to a new key instead",
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the new name itself survive a crash
    finally:
        os.close(dir_fd)


def _aad(app: str, name: str, version: int) -> bytes:
    if not _APP.fullmatch(app) or not _NAME.fullmatch(name):
        raise SecretsError(
            f"invalid secret place: app {app!r}, name {name!r}",
            fix="app names are [a-z0-9-], secret names are env var names [A-Za-z_][A-Za-z0-9_]*",
        )
    return _AAD_PREFIX + f"{app}\0{name}\0{int(version)}".encode()


def seal(key: Key, app: str, name: str, version: int, value: str) -> Sealed:
    if "\0" in value:
        raise SecretsError(
            f"secret {name} of app {app} contains a NUL character",
            fix="environment variables cannot hold NUL: remove it (or base64 binary data)",
        )
    nonce = os.urandom(NONCE_BYTES)  # random per encryption: never reuse a nonce under a key
    data = AESGCM(key.raw).encrypt(nonce, value.encode("utf-8"), _aad(app, name, version))
    return Sealed(key.id, nonce, data)


def open_sealed(key: Key, app: str, name: str, version: int, sealed: Sealed) -> str:
    what = f"secret {name} of app {app} (version {version})"
    info = {"app": app, "name": name, "version": version, "key_id": sealed.key_id}
    if sealed.key_id != key.id:
        raise SecretsError(
            f"{what} was encrypted with key {sealed.key_id}, not the key given ({key.id}):"
            " use the key it was written with, or rotate",
            data=info,
        )
    if len(sealed.nonce) != NONCE_BYTES or len(sealed.ciphertext) < TAG_BYTES:
        raise SecretsError(f"{what} is truncated", fix="set the secret again", data=info)
    try:
        plain = AESGCM(key.raw).decrypt(sealed.nonce, sealed.ciphertext, _aad(app, name, version))
    except InvalidTag:
        raise SecretsError(
            f"{what} failed to decrypt: the stored data was changed or belongs to another"
            " secret (tampered or moved)",
            fix="set the secret again from its source",
            data=info,
        ) from None
    return plain.decode("utf-8")  # authenticated bytes came from seal(): valid UTF-8


def rotate(
    old: Key, new: Key, items: Iterable[tuple[str, str, int, Sealed]]
) -> list[tuple[str, str, int, Sealed]]:
    """Re-encrypt every item under `new`; all-or-nothing (open all before sealing any)."""
    opened = [(app, name, ver, open_sealed(old, app, name, ver, s)) for app, name, ver, s in items]
    return [(app, name, ver, seal(new, app, name, ver, v)) for app, name, ver, v in opened]
