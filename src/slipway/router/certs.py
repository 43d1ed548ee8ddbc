"""TLS certificates for HAProxy: each TLS app's certificate chain and key ([edge] tls_cert and
tls_key), checked and installed as one PEM file (mode 0600) in the router's own folder, where
the rendered configuration points (`crt <certs_dir>/app_<name>.pem`).

The installed copy is what HAProxy loads, so a certificate file that disappears later does not
take the site down at the next reload: if it can no longer be read, the copy installed from
the same paths keeps serving (with a warning in the daemon's log)."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from slipway.errors import ConfigError
from slipway.router.config import Backend, RouterState

log = logging.getLogger(__name__)

_KEY_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----", re.DOTALL
)
FIX_READ = "check the path in [edge] and that the user running slipway can read the file"


@dataclass(frozen=True)
class Prepared:
    state: RouterState  # with certs_dir set and each TLS backend's certificate digest
    pems: dict[str, bytes]  # backend name -> combined PEM (certificate chain, then key)
    sources: dict[str, tuple[str, str | None]]  # backend name -> (tls_cert, tls_key)


def load_pem(cert: str, key: str | None = None) -> bytes:
    """The certificate chain followed by its private key, as HAProxy wants them in one file.
    Raises ConfigError naming the file when one cannot be read, holds no certificate or key,
    the key is encrypted, or the key is not the certificate's."""
    # Only the control host reads certificates; agents (stdlib only) install PEMs.
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    cert_data = _read(cert, "edge.tls_cert", "TLS certificate")
    try:
        chain = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise ConfigError(
            f"{cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            where="edge.tls_cert",
            fix="point tls_cert at the certificate in PEM format, followed by its chain",
        ) from None
    key_path = key or cert
    key_data = _read(key, "edge.tls_key", "TLS private key") if key else cert_data
    where = "edge.tls_key" if key else "edge.tls_cert"
    block = _KEY_BLOCK.search(key_data)
    if block is None:
        raise ConfigError(
            f"{key_path} holds no PEM private key (-----BEGIN PRIVATE KEY-----)",
            where=where,
            fix="set tls_key to the certificate's private key"
            if not key
            else "point tls_key at the private key in PEM format",
        )
    try:
        private_key = serialization.load_pem_private_key(block.group(0), password=None)
    except TypeError:  # "password was not given but private key is encrypted"
        raise ConfigError(
            f"the private key in {key_path} is encrypted; HAProxy cannot ask for a passphrase",
            where=where,
            fix=f"decrypt it (`openssl pkey -in {key_path} -out NEW.key`) and keep it readable "
            "by slipway only",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"the private key in {key_path} cannot be used: {exc}",
            where=where,
            fix="point tls_key at an unencrypted RSA or EC private key in PEM format",
        ) from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if private_key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise ConfigError(
            f"the private key in {key_path} does not belong to the certificate in {cert}",
            where=where,
            fix="use the key the certificate was issued for (the first certificate in "
            "tls_cert must be the site's own, then its chain)",
        )
    expires = chain[0].not_valid_after_utc
    if expires < datetime.datetime.now(datetime.UTC):
        log.warning("the TLS certificate %s expired on %s", cert, expires.isoformat())
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return pem + private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def check_tls_files(cert: str | None, key: str | None) -> None:
    """For a deploy: fail early, naming the file, if the app's certificate is not usable."""
    if cert is not None:
        load_pem(cert, key)


def prepare(state: RouterState, directory: Path) -> Prepared:
    """Read and check every TLS app's certificate; the state then names `directory` as where
    the PEM files go and carries each one's digest (a renewed certificate means a reload)."""
    pems: dict[str, bytes] = {}
    sources: dict[str, tuple[str, str | None]] = {}
    backends: list[Backend] = []
    for backend in state.backends:
        edge = backend.edge
        if edge.tls_cert is None:
            backends.append(backend)
            continue
        source = (edge.tls_cert, edge.tls_key)
        try:
            pem = load_pem(*source)
        except ConfigError as error:
            installed = _installed(directory, backend.name, source)
            if installed is None:
                raise ConfigError(
                    f"app '{backend.app}': {error.message}",
                    where=error.where,
                    fix=error.fix,
                ) from None
            log.warning(
                "app %s: %s; serving the copy installed earlier from the same file",
                backend.app,
                error.message,
            )
            pem = installed
        pems[backend.name] = pem
        sources[backend.name] = source
        digest = hashlib.sha256(pem).hexdigest()[:16]
        backends.append(
            dataclasses.replace(backend, edge=dataclasses.replace(edge, tls_digest=digest))
        )
    ready = dataclasses.replace(state, backends=tuple(backends), certs_dir=str(directory))
    return Prepared(ready, pems, sources)


def install(directory: Path, prepared: Prepared) -> None:
    """Write each PEM (only readable by us) and the paths it came from, atomically."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, pem in prepared.pems.items():
        cert, key = prepared.sources[name]
        _write_private(directory / f"{name}.pem", pem)
        _write_private(directory / f"{name}.json", json.dumps({"cert": cert, "key": key}).encode())


def prune(directory: Path, keep: set[str]) -> None:
    """Remove the PEM files of apps that no longer serve HTTPS."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.suffix in (".pem", ".json") and path.stem not in keep:
            path.unlink(missing_ok=True)


def _read(path: str, where: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the {what} {path}: {exc.strerror or exc}",
            where=where,
            fix=FIX_READ,
        ) from None


def _installed(directory: Path, name: str, source: tuple[str, str | None]) -> bytes | None:
    try:
        recorded = json.loads((directory / f"{name}.json").read_text())
        if (recorded.get("cert"), recorded.get("key")) != source:
            return None
        return (directory / f"{name}.pem").read_bytes()
    except (OSError, ValueError, AttributeError):
        return None


def _write_private(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    temporary = path.with_name(path.name + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
