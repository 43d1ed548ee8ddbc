"""The secret store: sealing round-trips exactly, refuses moved or altered data, keeps keys
private on disk, rotates all-or-nothing, and redacts values from logs."""

from __future__ import annotations

import base64
import dataclasses
import os
import stat
from pathlib import Path

import pytest

from slipway.secrets.vault import (
    KEY_BYTES,
    Key,
    Sealed,
    SecretsError,
    generate_key,
    key_from_text,
    key_to_text,
    load_key_file,
    open_sealed,
    redactor,
    rotate,
    seal,
    write_key_file,
)

VALUE = "postgres://u:hunter2-very-secret@db/prod"

TRICKY = [
    "line one\nline two\r\nline three\n",
    "it's \"quoted\" and 'single'",
    "$(rm -rf /) `id` ${HOME}",
    "value # not a comment",
    "back\\slash\\\\n \\x00",
    "ünïcødé 中文 русский",
    "emoji 🚀🔑👩‍💻",
    "",
    " leading and trailing spaces ",
    "x" * 65536,
]


@pytest.fixture
def key() -> Key:
    return generate_key()


def _error(excinfo: pytest.ExceptionInfo[SecretsError]) -> str:
    err = excinfo.value
    return f"{err} {err.to_dict()} {err!r}"


@pytest.mark.parametrize("value", TRICKY, ids=range(len(TRICKY)))
def test_round_trip_is_exact(key: Key, value: str) -> None:
    sealed = seal(key, "web-app", "DATABASE_URL", 3, value)
    assert sealed.key_id == key.id
    assert len(sealed.nonce) == 12
    assert value.encode() not in sealed.ciphertext or value == ""
    back = open_sealed(key, "web-app", "DATABASE_URL", 3, sealed)
    assert back == value
    assert back.encode("utf-8") == value.encode("utf-8")


def test_nul_is_refused_without_echoing_the_value(key: Key) -> None:
    with pytest.raises(SecretsError, match="NUL") as excinfo:
        seal(key, "web", "TOKEN", 1, "secret-part\0rest")
    assert "secret-part" not in _error(excinfo)


def test_invalid_place_is_refused(key: Key) -> None:
    with pytest.raises(SecretsError, match="invalid secret place"):
        seal(key, "web\0x", "TOKEN", 1, VALUE)
    with pytest.raises(SecretsError, match="invalid secret place"):
        seal(key, "web", "1BAD-NAME", 1, VALUE)


def test_nonces_differ_for_the_same_value(key: Key) -> None:
    a, b = (seal(key, "web", "TOKEN", 1, VALUE) for _ in range(2))
    assert a.nonce != b.nonce
    assert a.ciphertext != b.ciphertext


@pytest.mark.parametrize(
    "place",
    [("other", "TOKEN", 1), ("web", "OTHER_TOKEN", 1), ("web", "TOKEN", 2), ("we", "bTOKEN", 1)],
)
def test_value_moved_elsewhere_fails(key: Key, place: tuple[str, str, int]) -> None:
    sealed = seal(key, "web", "TOKEN", 1, VALUE)
    with pytest.raises(SecretsError, match="tampered or moved") as excinfo:
        open_sealed(key, *place, sealed)
    text = _error(excinfo)
    assert f"secret {place[1]} of app {place[0]} (version {place[2]})" in text
    assert VALUE not in text


@pytest.mark.parametrize("field", ["nonce", "ciphertext"])
def test_one_flipped_bit_fails(key: Key, field: str) -> None:
    sealed = seal(key, "web", "TOKEN", 1, VALUE)
    for index in (0, len(getattr(sealed, field)) - 1):
        data = bytearray(getattr(sealed, field))
        data[index] ^= 0x01
        if field == "nonce":
            tampered = dataclasses.replace(sealed, nonce=bytes(data))
        else:
            tampered = dataclasses.replace(sealed, ciphertext=bytes(data))
        with pytest.raises(SecretsError, match="tampered or moved") as excinfo:
            open_sealed(key, "web", "TOKEN", 1, tampered)
        assert VALUE not in _error(excinfo)


@pytest.mark.parametrize(
    "cut",
    [
        lambda s: dataclasses.replace(s, ciphertext=s.ciphertext[:15]),
        lambda s: dataclasses.replace(s, ciphertext=b""),
        lambda s: dataclasses.replace(s, nonce=s.nonce[:11]),
        lambda s: dataclasses.replace(s, ciphertext=s.ciphertext[:-1]),
    ],
    ids=["short-tag", "empty", "short-nonce", "one-byte-less"],
)
def test_truncated_fails(key: Key, cut: object) -> None:
    sealed = seal(key, "web", "TOKEN", 7, VALUE)
    assert callable(cut)
    with pytest.raises(SecretsError, match=r"TOKEN of app web \(version 7\)"):
        open_sealed(key, "web", "TOKEN", 7, cut(sealed))
    # Below the 16-byte tag it is reported as truncated, not as tampering.
    with pytest.raises(SecretsError, match="is truncated"):
        open_sealed(key, "web", "TOKEN", 7, dataclasses.replace(sealed, ciphertext=b"x" * 15))


def test_wrong_key_names_both_ids(key: Key) -> None:
    other = generate_key()
    sealed = seal(key, "web", "TOKEN", 1, VALUE)
    with pytest.raises(SecretsError, match="or rotate") as excinfo:
        open_sealed(other, "web", "TOKEN", 1, sealed)
    text = _error(excinfo)
    assert key.id in text and other.id in text
    assert VALUE not in text
    # A forged key id does not help: the tag still fails.
    forged = Key(key.id, other.raw)
    with pytest.raises(SecretsError, match="tampered or moved"):
        open_sealed(forged, "web", "TOKEN", 1, sealed)


def test_key_repr_hides_raw(key: Key) -> None:
    shown = f"{key!r} {key} {[key]} {seal(key, 'web', 'TOKEN', 1, VALUE)!r}"
    assert key.id in shown
    assert key.raw.hex() not in shown
    assert repr(key.raw) not in shown
    assert key_to_text(key).strip() not in shown
    assert VALUE not in shown


def test_key_id_is_a_stable_fingerprint(key: Key) -> None:
    assert len(key.raw) == KEY_BYTES
    assert len(key.id) == 16 and int(key.id, 16) >= 0
    assert key_from_text(key_to_text(key), "test").id == key.id
    assert generate_key().id != key.id


@pytest.mark.parametrize(
    "encode",
    [
        lambda raw: base64.urlsafe_b64encode(raw).decode(),
        lambda raw: base64.standard_b64encode(raw).decode(),
        lambda raw: base64.standard_b64encode(raw).decode() + "\n",
        lambda raw: "  " + base64.urlsafe_b64encode(raw).decode() + "\r\n",
        lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ],
    ids=["urlsafe", "standard", "newline", "whitespace", "unpadded"],
)
def test_key_from_text_accepts(encode: object) -> None:
    raw = bytes(range(256))[200:232]  # contains bytes that encode to + / - _
    assert callable(encode)
    assert key_from_text(encode(raw), "$SLIPWAY_SECRETS_KEY").raw == raw


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"k" * 16).decode(), "is 16 bytes, must be 32"),
        (base64.b64encode(b"k" * 33).decode(), "is 33 bytes, must be 32"),
        ("", "is 0 bytes"),
    ],
)
def test_key_from_text_refuses(text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message) as excinfo:
        key_from_text(text, "$SLIPWAY_SECRETS_KEY")
    err = excinfo.value
    assert err.where == "$SLIPWAY_SECRETS_KEY"
    assert err.fix and "32 random bytes" in err.fix
    if text:
        assert text not in _error(excinfo)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o277])
def test_key_file_round_trip_mode_0600(tmp_path: Path, key: Key, umask: int) -> None:
    path = tmp_path / "home" / "secrets.key"
    old_umask = os.umask(umask)
    try:
        write_key_file(path, key)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key_file(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temp file left


def test_key_file_0644_is_refused_with_chmod_fix(tmp_path: Path, key: Key) -> None:
    path = tmp_path / "secrets.key"
    write_key_file(path, key)
    path.chmod(0o644)
    with pytest.raises(SecretsError, match="mode 0644, must be 0600") as excinfo:
        load_key_file(path)
    assert excinfo.value.fix == f"chmod 600 {path}"
    assert key_to_text(key).strip() not in _error(excinfo)
    path.chmod(0o640)
    with pytest.raises(SecretsError, match="mode 0640"):
        load_key_file(path)


def test_missing_key_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="does not exist") as excinfo:
        load_key_file(tmp_path / "nope.key")
    fix = excinfo.value.fix or ""
    assert "slipway secrets set" in fix and "backup" in fix


def test_key_file_with_bad_content_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_text(base64.b64encode(b"short").decode() + "\n")
    path.chmod(0o600)
    with pytest.raises(SecretsError, match="must be 32") as excinfo:
        load_key_file(path)
    assert excinfo.value.where == str(path)


def test_key_file_symlink_is_refused(tmp_path: Path, key: Key) -> None:
    target = tmp_path / "real.key"
    write_key_file(target, key)
    link = tmp_path / "secrets.key"
    link.symlink_to(target)
    with pytest.raises(SecretsError, match="cannot open"):
        load_key_file(link)


def test_write_key_file_refuses_to_overwrite(tmp_path: Path, key: Key) -> None:
    path = tmp_path / "secrets.key"
    write_key_file(path, key)
    with pytest.raises(SecretsError, match="already exists") as excinfo:
        write_key_file(path, generate_key())
    assert excinfo.value.where == str(path)
    assert load_key_file(path) == key
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]
    new = generate_key()
    write_key_file(path, new, overwrite=True)
    assert load_key_file(path) == new
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _items(key: Key) -> list[tuple[str, str, int, Sealed]]:
    places = [("web", "DATABASE_URL", 1), ("web", "DATABASE_URL", 2), ("api", "TOKEN", 1)]
    return [(a, n, v, seal(key, a, n, v, f"{a}-{n}-{v}-value")) for a, n, v in places]


def test_rotate_re_encrypts_everything(key: Key) -> None:
    new = generate_key()
    rotated = rotate(key, new, _items(key))
    assert len(rotated) == 3
    for app, name, version, sealed in rotated:
        assert sealed.key_id == new.id
        assert open_sealed(new, app, name, version, sealed) == f"{app}-{name}-{version}-value"
        with pytest.raises(SecretsError, match="not the key given"):
            open_sealed(key, app, name, version, sealed)
        # Even relabelled with the old key's id, the old key cannot open it.
        relabelled = dataclasses.replace(sealed, key_id=key.id)
        with pytest.raises(SecretsError, match="tampered or moved"):
            open_sealed(key, app, name, version, relabelled)


def test_rotate_is_all_or_nothing(key: Key) -> None:
    items = _items(key)
    app, name, version, sealed = items[1]
    items[1] = (app, name, version, dataclasses.replace(sealed, ciphertext=b"\0" * 40))
    result = None
    with pytest.raises(SecretsError, match=r"DATABASE_URL of app web \(version 2\)"):
        result = rotate(key, generate_key(), iter(items))
    assert result is None


def test_redacts_single_line_values() -> None:
    redact = redactor([VALUE, "tok_ABCDEF"])
    line = f"connecting to {VALUE} with tok_ABCDEF, again tok_ABCDEF"
    assert redact(line) == "connecting to [redacted] with [redacted], again [redacted]"
    assert redact("nothing here") == "nothing here"


def test_redacts_each_long_line_of_a_multi_line_value() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nshort\n-----END KEY-----\n"
    redact = redactor([pem])
    assert redact(f"key: {pem}done") == "key: [redacted]done"
    logged = "got MIIEvQIBADANBgkq then short and -----END KEY-----"
    assert redact(logged) == "got [redacted] then short and [redacted]"


def test_short_values_are_ignored() -> None:
    redact = redactor(["", "a", "on", "dev", "1234"])
    assert redact("a dev is on 1234 ports") == "a dev is on [redacted] ports"
    identity = redactor(["", "abc"])
    text = "abc abc"
    assert identity(text) is text
    assert redactor([])("anything") == "anything"


def test_overlapping_values_are_redacted_whole() -> None:
    redact = redactor(["secret", "my-secret-value", "valuetail"])
    assert redact("x my-secret-value y") == "x [redacted] y"
    assert redact("a secret b") == "a [redacted] b"
    # Overlap at different starts: no part of either value remains.
    assert redact("my-secret-valuetail!") == "[redacted]!"


def test_regex_metacharacters_are_literal() -> None:
    value = r"p.a*s+s?(x)[y]{2}|^$\d"
    redact = redactor([value])
    assert redact(f"<{value}>") == "<[redacted]>"
    assert redact("pXaaass(x)y2") == "pXaaass(x)y2"
