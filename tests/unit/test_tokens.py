"""API tokens: format and entropy, hashing, every denial reason, expiry, the role order."""

from __future__ import annotations

import base64
import dataclasses
import hmac
from typing import Any

import pytest

from slipway.auth.tokens import (
    ROLES,
    Denied,
    TokenRecord,
    check_token,
    hash_secret,
    new_token,
    parse_token,
    role_allows,
)
from slipway.errors import UsageError

NOW = 1_700_000_000.0


def make(role: str = "deployer", ttl: float | None = None) -> tuple[str, TokenRecord]:
    return new_token("ci@build-1", role, "alice", ttl, NOW)


def lookup_of(*records: TokenRecord) -> Any:
    return {r.id: r for r in records}.get


def test_token_format_and_entropy() -> None:
    text, record = make()
    assert text.startswith("swt_")
    parsed = parse_token(text)
    assert parsed is not None
    token_id, secret = parsed
    assert token_id == record.id and len(token_id) == 8
    int(token_id, 16)  # hex
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32  # 256 random bits
    assert len({make()[0] for _ in range(50)}) == 50


def test_record_holds_only_the_hash() -> None:
    text, record = make(ttl=60)
    secret = text.split("_", 2)[2]
    assert record.secret_hash == hash_secret(secret) and len(record.secret_hash) == 64
    for value in dataclasses.asdict(record).values():
        assert secret not in str(value)
    assert record.name == "ci@build-1" and record.role == "deployer"
    assert record.created_by == "alice" and record.created_at == NOW
    assert record.expires_at == NOW + 60 and record.revoked_at is None


@pytest.mark.parametrize(
    "text",
    ["", "swt_", "swt_1234567_" + "a" * 43, "swt_1234ABCD_" + "a" * 43, "swt_12345678_" + "a" * 42,
     "swt_12345678_" + "a" * 44, "xyz_12345678_" + "a" * 43, "swt_12345678_" + "a" * 42 + "="],
)  # fmt: skip
def test_malformed_tokens(text: str) -> None:
    assert parse_token(text) is None
    assert check_token(text, lookup_of(), NOW) == Denied("malformed")


def test_valid_token_accepted_even_with_surrounding_whitespace() -> None:
    text, record = make()
    assert check_token(text, lookup_of(record), NOW) == record
    assert check_token(f"  {text}\n", lookup_of(record), NOW) == record


def test_unknown_id_still_does_a_constant_time_compare(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # tokens.py calls hmac.compare_digest
    text, record = make()
    assert check_token(text, lookup_of(), NOW) == Denied("unknown")
    assert len(calls) == 1 and len(str(calls[0][1])) == 64  # compared against a real-size hash
    calls.clear()
    assert check_token(text, lookup_of(record), NOW) == record
    assert calls == [(record.secret_hash, record.secret_hash)]


def test_wrong_secret() -> None:
    text, record = make()
    other_text, _ = make()
    forged = f"swt_{record.id}_{other_text.split('_', 2)[2]}"
    assert check_token(forged, lookup_of(record), NOW) == Denied("wrong secret")


def test_revoked() -> None:
    text, record = make()
    revoked = dataclasses.replace(record, revoked_at=NOW + 1)
    assert check_token(text, lookup_of(revoked), NOW + 2) == Denied("revoked")
    assert revoked.state(NOW + 2) == "revoked"


def test_expiry_boundary() -> None:
    text, record = make(ttl=100)
    assert check_token(text, lookup_of(record), NOW + 99.999) == record
    assert check_token(text, lookup_of(record), NOW + 100) == Denied("expired")
    assert record.state(NOW + 99) == "active" and record.state(NOW + 100) == "expired"


def test_status_of_an_id_is_hidden_without_the_secret() -> None:
    """Knowing an id (it is listed, not secret) must not tell whether it is revoked/expired."""
    text, record = make(ttl=10)
    dead = dataclasses.replace(record, revoked_at=NOW)
    forged = f"swt_{record.id}_{'A' * 43}"
    assert check_token(forged, lookup_of(dead), NOW + 20) == Denied("wrong secret")


def test_denial_messages_hide_which_ids_exist() -> None:
    assert Denied("unknown").message == Denied("wrong secret").message == "invalid token"
    assert Denied("malformed").message == "invalid token"
    assert Denied("expired").message == "token expired"
    assert Denied("revoked").message == "token revoked"


def test_role_matrix() -> None:
    expected = {
        ("viewer", "viewer"): True,
        ("viewer", "deployer"): False,
        ("viewer", "admin"): False,
        ("deployer", "viewer"): True,
        ("deployer", "deployer"): True,
        ("deployer", "admin"): False,
        ("admin", "viewer"): True,
        ("admin", "deployer"): True,
        ("admin", "admin"): True,
    }
    assert {(h, n): role_allows(h, n) for h in ROLES for n in ROLES} == expected
    assert not role_allows("root", "viewer") and not role_allows("admin", "public")


@pytest.mark.parametrize(
    ("name", "role", "ttl", "where"),
    [
        ("", "viewer", None, "token name"),
        ("a" * 65, "viewer", None, "token name"),
        ("has space", "viewer", None, "token name"),
        ("ok", "owner", None, "token role"),
        ("ok", "viewer", 0, "token expiry"),
        ("ok", "viewer", -5, "token expiry"),
        ("ok", "viewer", float("nan"), "token expiry"),
    ],
)
def test_validation(name: str, role: str, ttl: float | None, where: str) -> None:
    with pytest.raises(UsageError) as caught:
        new_token(name, role, "alice", ttl, NOW)
    assert caught.value.where == where and caught.value.fix


def test_longest_valid_name() -> None:
    assert new_token("a" * 64, "admin", "alice", None, NOW)[1].expires_at is None
