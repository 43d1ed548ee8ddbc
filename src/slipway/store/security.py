"""Rows of the security tables: sealed secrets (every version kept, so a release can run with
the values it was made with) and API tokens (only their hashes)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from slipway.auth.tokens import TokenRecord
from slipway.secrets.vault import Sealed
from slipway.store.store import Store

# Read as BLOB whatever was stored: a hand-edited value must reach the cipher (which refuses
# it as tampered), not fail to decode as text.
COLUMNS = (
    "app, name, version, key_id, CAST(nonce AS BLOB) AS nonce, "
    "CAST(ciphertext AS BLOB) AS ciphertext, created_at, created_by"
)


@dataclass(frozen=True)
class SecretRow:
    app: str
    name: str
    version: int
    sealed: Sealed | None  # None: the secret was unset in this version
    created_at: float
    created_by: str


def put_secret(
    store: Store, app: str, name: str, version: int, sealed: Sealed | None, who: str
) -> None:
    """Version `version` of the secret (from next_version; `sealed` None unsets it). The
    primary key refuses a version written twice."""
    with store.tx() as c:
        c.execute(
            "INSERT INTO secrets (app, name, version, key_id, nonce, ciphertext, created_at, "
            "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                app,
                name,
                version,
                sealed.key_id if sealed else None,
                sealed.nonce if sealed else None,
                sealed.ciphertext if sealed else None,
                time.time(),
                who,
            ),
        )


def next_version(store: Store, app: str, name: str) -> int:
    row = store.fetch_one("SELECT MAX(version) FROM secrets WHERE app = ? AND name = ?", app, name)
    return int((row[0] if row else 0) or 0) + 1


def latest_secrets(store: Store, app: str) -> dict[str, SecretRow]:
    """The newest version of each secret of the app, unset ones included."""
    rows = store.fetch_all(
        f"SELECT {COLUMNS} FROM secrets s WHERE app = ? AND version = "
        "(SELECT MAX(version) FROM secrets WHERE app = s.app AND name = s.name) ORDER BY name",
        app,
    )
    return {r["name"]: _secret(r) for r in rows}


def current_versions(store: Store, app: str) -> dict[str, int]:
    """What a new release of the app runs with: the newest version of each set secret."""
    return {n: r.version for n, r in latest_secrets(store, app).items() if r.sealed is not None}


def secret_row(store: Store, app: str, name: str, version: int) -> SecretRow | None:
    row = store.fetch_one(
        f"SELECT {COLUMNS} FROM secrets WHERE app = ? AND name = ? AND version = ?",
        app,
        name,
        version,
    )
    return _secret(row) if row else None


def all_sealed(store: Store) -> list[SecretRow]:
    rows = store.fetch_all(
        f"SELECT {COLUMNS} FROM secrets WHERE ciphertext IS NOT NULL ORDER BY app, name"
    )
    return [_secret(r) for r in rows]


def reseal(store: Store, rows: list[SecretRow]) -> None:
    """Replace the sealed values (key rotation), all in one transaction."""
    with store.tx() as c:
        for row in rows:
            assert row.sealed is not None
            c.execute(
                "UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? "
                "WHERE app = ? AND name = ? AND version = ?",
                (
                    row.sealed.key_id,
                    row.sealed.nonce,
                    row.sealed.ciphertext,
                    row.app,
                    row.name,
                    row.version,
                ),
            )


def _secret(row: sqlite3.Row) -> SecretRow:
    sealed = None
    if row["ciphertext"] is not None:
        sealed = Sealed(str(row["key_id"]), _blob(row["nonce"]), _blob(row["ciphertext"]))
    return SecretRow(
        row["app"], row["name"], row["version"], sealed, row["created_at"], row["created_by"]
    )


def _blob(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


# tokens -----------------------------------------------------------------------------------


def add_token(store: Store, record: TokenRecord) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO tokens (id, name, role, secret_hash, created_at, created_by, "
            "expires_at, revoked_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.name,
                record.role,
                record.secret_hash,
                record.created_at,
                record.created_by,
                record.expires_at,
                record.revoked_at,
                record.last_used_at,
            ),
        )


def token(store: Store, token_id: str) -> TokenRecord | None:
    row = store.fetch_one("SELECT * FROM tokens WHERE id = ?", token_id)
    return TokenRecord(**dict(row)) if row else None


def tokens(store: Store) -> list[TokenRecord]:
    return [
        TokenRecord(**dict(r)) for r in store.fetch_all("SELECT * FROM tokens ORDER BY created_at")
    ]


def update_token(store: Store, token_id: str, **fields: float | None) -> None:
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with store.tx() as c:
        c.execute(f"UPDATE tokens SET {assignments} WHERE id = ?", (*fields.values(), token_id))
