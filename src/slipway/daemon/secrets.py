"""The daemon's side of secrets: the key, sealing and opening values stored in SQLite, and
the values a release runs with.

Values exist in plain text only in the daemon's memory, the shim's memory (received on a
pipe, never written to disk) and the instances' environment. Every version is kept, and a
release records the version of each secret it runs with, so a rollback runs with the values
it had."""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from slipway.errors import NotFound, UsageError
from slipway.secrets import vault
from slipway.store import security
from slipway.store.records import Release
from slipway.store.store import Store

KEY_ENV = "SLIPWAY_SECRETS_KEY"


@dataclass(frozen=True)
class SecretInfo:
    name: str
    version: int
    set: bool  # False: unset in this version
    created_at: float
    created_by: str


class SecretKeeper:
    def __init__(self, key_path: Path, store: Store) -> None:
        self.key_path = key_path
        self.store = store
        self._key: vault.Key | None = None
        self._lock = threading.Lock()

    def key(self, create: bool = False) -> vault.Key:
        """From $SLIPWAY_SECRETS_KEY, else the key file (made on the first `secrets set`)."""
        with self._lock:
            if self._key is None:
                self._key = self._load(create)
            return self._key

    def _load(self, create: bool) -> vault.Key:
        text = os.environ.get(KEY_ENV)
        if text:
            return vault.key_from_text(text, f"${KEY_ENV}")
        if create and not self.key_path.exists():
            key = vault.generate_key()
            with contextlib.suppress(vault.SecretsError):  # made meanwhile: load that one
                vault.write_key_file(self.key_path, key)
                return key
        return vault.load_key_file(self.key_path)

    # values ----------------------------------------------------------------------------

    def set(self, app: str, name: str, value: str, who: str) -> int:
        key = self.key(create=True)
        version = security.next_version(self.store, app, name)
        sealed = vault.seal(key, app, name, version, value)  # bound to this version
        security.put_secret(self.store, app, name, version, sealed, who)
        return version

    def unset(self, app: str, name: str, who: str) -> int:
        if name not in security.current_versions(self.store, app):
            raise NotFound(f"app '{app}' has no secret {name}", fix="see `slipway secrets list`")
        version = security.next_version(self.store, app, name)
        security.put_secret(self.store, app, name, version, None, who)
        return version

    def reveal(self, app: str, name: str) -> str:
        versions = security.current_versions(self.store, app)
        if name not in versions:
            raise NotFound(f"app '{app}' has no secret {name}", fix="see `slipway secrets list`")
        return self.open(app, name, versions[name])

    def open(self, app: str, name: str, version: int) -> str:
        row = security.secret_row(self.store, app, name, version)
        if row is None or row.sealed is None:
            raise NotFound(
                f"secret {name} of app '{app}' has no version {version}",
                fix=f"set it again: slipway secrets set {name} --app {app}",
            )
        return vault.open_sealed(self.key(), app, name, version, row.sealed)

    def listing(self, app: str) -> list[SecretInfo]:
        return [
            SecretInfo(r.name, r.version, r.sealed is not None, r.created_at, r.created_by)
            for r in security.latest_secrets(self.store, app).values()
        ]

    def values_for(self, release: Release) -> dict[str, str]:
        """The env vars a release's instances get: the secrets its config names, at the
        versions the release was made with."""
        names = release.config.secrets
        if not names:
            return {}
        missing = [n for n in names if n not in release.secrets]
        if missing:
            raise UsageError(
                f"release {release.id} needs secret(s) {', '.join(missing)}, which were not "
                "set when it was made",
                where=f"app {release.app}, release {release.id}",
                fix=f"slipway secrets set {missing[0]} --app {release.app}, then deploy again",
            )
        return {n: self.open(release.app, n, release.secrets[n]) for n in names}

    def missing(self, app: str, names: list[str]) -> list[str]:
        current = security.current_versions(self.store, app)
        return [n for n in names if n not in current]

    # the key ---------------------------------------------------------------------------

    def rotate(self) -> tuple[str, str, int]:
        """A new key; every stored value re-encrypted in one transaction. Returns (old key
        id, new key id, values re-encrypted). The new key is written next to the old one
        first, so a crash in between leaves both keys on disk, never data without its key."""
        if os.environ.get(KEY_ENV):
            raise UsageError(
                f"the key comes from ${KEY_ENV}: rotate it where it is kept",
                fix="generate a new key, re-encrypt with it, then update the variable",
            )
        old = self.key()
        new = vault.generate_key()
        rows = security.all_sealed(self.store)
        items = [(r.app, r.name, r.version, s) for r in rows if (s := r.sealed) is not None]
        resealed = vault.rotate(old, new, items)
        pending = self.key_path.with_name(self.key_path.name + ".new")
        vault.write_key_file(pending, new, overwrite=True)
        security.reseal(
            self.store,
            [
                security.SecretRow(a, n, v, s, r.created_at, r.created_by)
                for (a, n, v, s), r in zip(resealed, rows, strict=True)  # all are sealed
            ],
        )
        os.replace(pending, self.key_path)
        with self._lock:
            self._key = new
        return old.id, new.id, len(resealed)
