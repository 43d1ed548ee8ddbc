"""A database's name and the bounds of what a user may ask for. Pure; standard library only
(the agent imports it)."""

from __future__ import annotations

import re
from urllib.parse import quote

from slipway.errors import UsageError

# A database's name is also its role, its PostgreSQL database, its pgBackRest stanza and a
# folder: lowercase letters, digits and _, starting with a letter; PostgreSQL identifiers
# need no quoting then, and a stanza or path can hold nothing surprising.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
RESERVED = frozenset({"postgres", "template0", "template1", "public", "pg_signal_backend"})
BACKUP_TYPES = ("full", "diff", "incr")
ENGINES = ("postgres",)
PASSWORD_BYTES = 24  # token_urlsafe: 32 characters, ~192 bits
# pgBackRest's passphrase: long and random (the repository is only as safe as this)
CIPHER_PASS_BYTES = 48
ARCHIVE_TIMEOUT = 60  # seconds: a quiet database still sends its WAL within a minute
RETENTION_FULL = 2  # full backups kept (with their differentials and WAL)


def check_name(name: str) -> str:
    if not NAME.match(name) or name.startswith("pg_") or name in RESERVED:
        raise UsageError(
            f'"{name[:80]}" cannot name a database',
            fix="1 to 31 lowercase letters, digits and _, starting with a letter; not "
            "postgres, public, template0/1, nor starting with pg_",
        )
    return name


def check_backup_type(kind: str) -> str:
    if kind not in BACKUP_TYPES:
        raise UsageError(f'"{kind[:40]}" is not a backup type', fix="use full, diff or incr")
    return kind


def secrets_place(name: str) -> str:
    """Where the database's own secrets (role password, repository passphrase) are kept in
    slipway's secrets store: a place no app can be named (':' is not allowed in app names),
    so they are sealed, versioned and rotated with the key like every other secret."""
    return f"db:{name}"


def database_url(name: str, password: str, address: str, port: int) -> str:
    return f"postgresql://{name}:{quote(password, safe='')}@{address}:{port}/{name}"


def restore_point(app: str, release: str) -> str:
    """The named restore point made just before `release` of `app` runs its release command
    (`[release] command`); `slipway db restore NAME --to "before rN"` recovers to it. App
    names and release ids hold nothing PostgreSQL's 63-byte name needs quoted."""
    return f"slipway:{app}:{release}"[:63]
