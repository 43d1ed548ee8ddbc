"""API tokens: "swt_<id>_<secret>", shown once, stored only as a hash of the secret.

The id (8 hex chars) is a lookup key, not a secret: it appears in `slipway tokens list` and in
the audit log. The secret carries 256 random bits. Its hash is a plain SHA-256, not a slow
KDF: slow hashing protects guessable passwords, and 2**256 secrets cannot be guessed, so a
leaked hash table gives nothing an attacker can invert or brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from slipway.errors import UsageError

ROLES = ("viewer", "deployer", "admin")  # each includes the ones before it
PREFIX = "swt_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
TOKEN_PATTERN = re.compile(r"swt_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")  # token_urlsafe(32): 43
DenialReason = Literal["malformed", "unknown", "revoked", "expired", "wrong secret"]
# compared against when the id is unknown, so that path costs what a real comparison costs
_DUMMY_HASH = hashlib.sha256(b"no such token").hexdigest()


def role_allows(have: str, need: str) -> bool:
    """Whether a token with role `have` may call an endpoint needing `need`. Unknown roles
    allow nothing: a typo in a declaration or a row must fail closed."""
    if have not in ROLES or need not in ROLES:
        return False
    return ROLES.index(have) >= ROLES.index(need)


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: str
    secret_hash: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None

    def state(self, now: float) -> Literal["active", "revoked", "expired"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


@dataclass(frozen=True)
class Denied:
    reason: DenialReason

    @property
    def message(self) -> str:
        """What the caller is told: "expired" and "revoked" help a legitimate user and need
        the secret to learn; the rest all read "invalid token", so ids cannot be probed."""
        if self.reason in ("expired", "revoked"):
            return f"token {self.reason}"
        return "invalid token"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate(name: str, role: str, ttl: float | None) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise UsageError(
            f"'{name}' is not a token name",
            where="token name",
            fix="use 1 to 64 characters among letters, digits and . _ @ -",
        )
    if role not in ROLES:
        raise UsageError(
            f"'{role}' is not a role", where="token role", fix=f"use one of: {', '.join(ROLES)}"
        )
    if ttl is not None and not ttl > 0:  # `not >` also refuses NaN
        raise UsageError(
            f"a token's lifetime must be positive, not {ttl}",
            where="token expiry",
            fix="give a duration such as 30d, or none for a token that does not expire",
        )


def new_token(
    name: str, role: str, created_by: str, ttl: float | None, now: float
) -> tuple[str, TokenRecord]:
    """A new token: the text to show once, and the record to store (which holds no secret).

    Ids are 32 bits, so two tokens may one day draw the same id: the store must refuse a
    duplicate id (primary key) and the caller draw again."""
    validate(name, role, ttl)
    token_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    record = TokenRecord(
        id=token_id,
        name=name,
        role=role,
        secret_hash=hash_secret(secret),
        created_at=now,
        created_by=created_by,
        expires_at=None if ttl is None else now + ttl,
        revoked_at=None,
        last_used_at=None,
    )
    return f"{PREFIX}{token_id}_{secret}", record


def parse_token(text: str) -> tuple[str, str] | None:
    """(id, secret), or None when `text` does not have a token's shape."""
    match = TOKEN_PATTERN.fullmatch(text.strip())
    return (match.group(1), match.group(2)) if match else None


def check_token(
    text: str, lookup: Callable[[str], TokenRecord | None], now: float
) -> TokenRecord | Denied:
    """The token's record if `text` is a valid, live token, else why not.

    The secret is checked before revocation and expiry: knowing an id alone (it is not a
    secret) must not reveal anything about the token."""
    parsed = parse_token(text)
    if parsed is None:
        return Denied("malformed")
    token_id, secret = parsed
    record = lookup(token_id)
    offered = hash_secret(secret)
    if record is None:
        hmac.compare_digest(offered, _DUMMY_HASH)  # same work as a real miss: ids stay hidden
        return Denied("unknown")
    if not hmac.compare_digest(offered, record.secret_hash):
        return Denied("wrong secret")
    if record.revoked_at is not None:
        return Denied("revoked")
    if record.expires_at is not None and now >= record.expires_at:
        return Denied("expired")
    return record
