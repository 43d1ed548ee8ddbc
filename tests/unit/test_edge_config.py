"""[edge] in slipway.toml: validation with key paths, the routing stored per app, and the TLS
certificate files (checked, combined into one private PEM for HAProxy)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slipway.config.edge import DEFAULT_HSTS, Edge, check_ports
from slipway.config.load import parse_config
from slipway.config.schema import AppConfig
from slipway.deploy.routing import backend_for, edge_rules, routing_of
from slipway.errors import ConfigError
from slipway.router import certs
from slipway.router.config import Backend, EdgeRules, RouterState

BASE = """\
name = "shop"

[processes]
web = "python app.py --port $PORT"

[edge]
"""


def make_cert(
    folder: Path, name: str = "localhost", *, password: bytes | None = None
) -> tuple[Path, Path]:
    """A self-signed certificate for `name` and 127.0.0.1: (cert.pem, key.pem) in `folder`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def edge_of(body: str) -> Edge:
    return parse_config(BASE + body).edge


def edge_error(body: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + body, "slipway.toml")
    return info.value


# -- validation ------------------------------------------------------------------------


def test_defaults_are_safe_and_do_nothing_surprising() -> None:
    edge = parse_config(BASE).edge
    assert not edge.tls and edge.tls_key is None
    assert edge.rate_limit == 0 and edge.allow == [] and edge.deny == []
    assert edge.max_body is None and edge.max_header is None
    assert edge.security_headers is True
    assert edge.proxy_protocol is False and edge.trusted_proxies == []
    assert edge.effective_hsts == DEFAULT_HSTS == 365 * 86400
    assert (edge.effective_https_port, edge.effective_rate_window) == (443, 10.0)


@pytest.mark.parametrize(
    "body",
    [
        "",
        'tls_cert = "/c.pem"\n',
        'tls_cert = "/c.pem"\ntls_key = "/k.pem"\nhttps_port = 8443\nhsts = false\n',
        'rate_limit = 5\nrate_window = "1m"\nallow = ["10.1.0.0/16"]\nmax_body = "1MB"\n',
    ],
)
def test_a_stored_config_reads_back_the_same(body: str) -> None:
    """Releases keep their config as JSON with every key: it must validate again."""
    config = parse_config(BASE + body)
    assert AppConfig.model_validate_json(config.model_dump_json()) == config


def test_full_edge_parses_sizes_durations_and_normalises_networks() -> None:
    edge = edge_of(
        """\
tls_cert = "/etc/ssl/shop.pem"
tls_key = "/etc/ssl/shop.key"
https_port = 8443
hsts = "30d"
rate_limit = 100
rate_window = "1m"
allow = ["10.1.2.3/8", "127.0.0.1", "2001:db8::/32"]
deny = ["203.0.113.7/32"]
max_body = "10MB"
max_header = "16KB"
security_headers = false
proxy_protocol = true
trusted_proxies = ["192.168.0.0/16"]
"""
    )
    assert edge.tls and edge.tls_cert == "/etc/ssl/shop.pem" and edge.https_port == 8443
    assert edge.hsts == 30 * 86400
    assert (edge.rate_limit, edge.rate_window) == (100, 60.0)
    assert edge.allow == ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]
    assert edge.deny == ["203.0.113.7"]
    assert (edge.max_body, edge.max_header) == (10 * 1024 * 1024, 16 * 1024)
    assert edge.security_headers is False
    assert edge.proxy_protocol is True and edge.trusted_proxies == ["192.168.0.0/16"]


@pytest.mark.parametrize(("value", "seconds"), [("false", 0.0), ("0", 0.0), ("true", DEFAULT_HSTS)])
def test_hsts_can_be_switched_off_or_on(value: str, seconds: float) -> None:
    assert edge_of(f'tls_cert = "/c.pem"\nhsts = {value}\n').hsts == seconds


def test_a_bad_network_names_the_entry_and_its_line() -> None:
    body = 'allow = ["10.0.0.0/8", "10.0.0.300"]\n'
    err = edge_error(body)
    assert err.where == "slipway.toml:7: edge.allow.1"
    assert '"10.0.0.300" is not an IP address or CIDR range' in err.message


@pytest.mark.parametrize(
    ("body", "key", "words"),
    [
        ('tls_key = "/etc/ssl/k.pem"\n', "edge.tls_key", "tls_key needs tls_cert"),
        ('tls_cert = "certs/shop.pem"\n', "edge.tls_cert", "must be an absolute path"),
        ("https_port = 8443\n", "edge.https_port", "set tls_cert as well"),
        ('hsts = "1d"\n', "edge.hsts", "applies to HTTPS only"),
        ('rate_window = "5s"\n', "edge.rate_window", "set rate_limit as well"),
        ('rate_limit = 10\nrate_window = "100ms"\n', "edge.rate_window", "between 1s and 1d"),
        ("rate_limit = -1\n", "edge.rate_limit", "greater than or equal to 0"),
        ('max_header = "100KB"\n', "edge.max_header", "between 1KB and 64KB"),
        ("max_body = 0\n", "edge.max_body", "at least 1 byte"),
        ('max_body = "lots"\n', "edge.max_body", "invalid size"),
        ('deny = ["example.com"]\n', "edge.deny.0", "not an IP address"),
        ('trusted_proxies = ["10.0.0.0/33"]\n', "edge.trusted_proxies.0", "not an IP address"),
        ('tls_cert = "/c.pem"\nhttps_port = 70000\n', "edge.https_port", "less than or equal"),
    ],
)
def test_invalid_edge_settings_name_their_key(body: str, key: str, words: str) -> None:
    err = edge_error(body)
    assert err.where is not None and err.where.endswith(key), err.where
    assert words in err.message, err.message


def test_unknown_edge_key_lists_the_valid_ones() -> None:
    err = edge_error("rate_limt = 5\n")
    assert "unknown key 'rate_limt'" in err.message
    assert err.fix is not None and "rate_limit" in err.fix and "tls_cert" in err.fix


def test_https_port_cannot_be_the_plain_port() -> None:
    with pytest.raises(ConfigError, match="https_port 8080 is also \\[listen\\] port"):
        edge_of('tls_cert = "/c.pem"\nhttps_port = 8080\n')  # [listen] port is 8080
    edge = Edge.model_validate({"tls_cert": "/c.pem", "https_port": 8080})
    with pytest.raises(ValueError, match="https_port 8080 is also \\[listen\\] port"):
        check_ports(edge, 8080)
    check_ports(edge, 80)
    check_ports(edge_of(""), 443)  # no TLS: no clash


# -- routing stored per app ------------------------------------------------------------


def test_routing_carries_edge_as_json_and_rebuilds_the_rules() -> None:
    config = parse_config(
        BASE
        + """\
tls_cert = "/etc/ssl/shop.pem"
https_port = 8443
hsts = "1d"
rate_limit = 50
rate_window = "5s"
allow = ["10.0.0.0/8"]
deny = ["10.9.9.9"]
max_body = "1KB"
max_header = "8KB"
proxy_protocol = true
trusted_proxies = ["10.0.0.1"]
"""
    )
    routing = routing_of(config)
    assert routing is not None
    stored = json.loads(json.dumps(routing))  # as the store keeps it
    backend = backend_for("shop", stored, [])
    assert backend.edge == EdgeRules(
        tls_cert="/etc/ssl/shop.pem",
        tls_key=None,
        https_port=8443,
        hsts=86400,
        rate_limit=50,
        rate_window=5.0,
        allow=("10.0.0.0/8",),
        deny=("10.9.9.9",),
        max_body=1024,
        max_header=8192,
        security_headers=True,
        proxy_protocol=True,
        trusted_proxies=("10.0.0.1",),
    )


def test_routing_recorded_before_edge_existed_gets_the_defaults() -> None:
    old = {
        "address": "127.0.0.1",
        "port": 8080,
        "hosts": [],
        "check_path": "/up",
        "check_interval": 1.0,
        "check_timeout": 2.0,
        "rise": 2,
        "fall": 3,
    }
    assert backend_for("shop", old, []).edge == EdgeRules()
    assert edge_rules(None) == edge_rules({}) == EdgeRules()


def test_default_config_routing_matches_the_default_rules() -> None:
    routing = routing_of(parse_config(BASE))
    assert routing is not None
    assert backend_for("shop", routing, []).edge == EdgeRules()


# -- certificate files -----------------------------------------------------------------


def test_load_pem_combines_chain_and_key(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    pem = certs.load_pem(str(cert), str(key))
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"-----BEGIN PRIVATE KEY-----" in pem
    assert x509.load_pem_x509_certificates(pem)[0] == x509.load_pem_x509_certificate(
        cert.read_bytes()
    )


def test_load_pem_accepts_one_file_holding_both(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    both = tmp_path / "both.pem"
    both.write_bytes(key.read_bytes() + cert.read_bytes())
    assert certs.load_pem(str(both)) == certs.load_pem(str(cert), str(key))


def test_missing_certificate_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        certs.load_pem(str(tmp_path / "nope.pem"), None)
    assert str(tmp_path / "nope.pem") in info.value.message
    assert "No such file" in info.value.message
    assert info.value.where == "edge.tls_cert"


def test_certificate_without_key_asks_for_tls_key(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path)
    with pytest.raises(ConfigError) as info:
        certs.load_pem(str(cert))
    assert f"{cert} holds no PEM private key" in info.value.message
    assert info.value.fix is not None and "tls_key" in info.value.fix


def test_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, "a.test")
    _, other_key = make_cert(tmp_path, "b.test")
    with pytest.raises(ConfigError) as info:
        certs.load_pem(str(cert), str(other_key))
    assert "does not belong to the certificate" in info.value.message
    assert info.value.where == "edge.tls_key"


def test_encrypted_key_is_refused_with_a_fix(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, password=b"secret")
    with pytest.raises(ConfigError) as info:
        certs.load_pem(str(cert), str(key))
    assert "encrypted" in info.value.message
    assert info.value.fix is not None and "openssl pkey" in info.value.fix


def test_garbage_instead_of_a_certificate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        certs.load_pem(str(junk))


def _tls_state(cert: Path, key: Path | None) -> RouterState:
    edge = EdgeRules(tls_cert=str(cert), tls_key=str(key) if key else None, https_port=8443)
    return RouterState(
        admin_socket="/x/admin.sock",
        backends=(Backend("shop", "127.0.0.1", 8080, edge=edge), Backend("blog", "::", 81)),
    )


def test_prepare_install_and_prune(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    folder = tmp_path / "router" / "certs"
    prepared = certs.prepare(_tls_state(cert, key), folder)
    shop = next(b for b in prepared.state.backends if b.app == "shop")
    assert shop.edge.tls_digest is not None and len(shop.edge.tls_digest) == 16
    assert prepared.state.certs_dir == str(folder)
    certs.install(folder, prepared)
    pem = folder / "app_shop.pem"
    assert pem.read_bytes() == certs.load_pem(str(cert), str(key))
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / "app_gone.pem").write_text("old")
    certs.prune(folder, keep=set(prepared.pems))
    assert sorted(p.name for p in folder.iterdir()) == ["app_shop.json", "app_shop.pem"]


def test_a_renewed_certificate_changes_the_digest(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    first = certs.prepare(_tls_state(cert, key), tmp_path / "certs").state
    make_cert(tmp_path)  # same paths, new certificate and key
    second = certs.prepare(_tls_state(cert, key), tmp_path / "certs").state
    assert first.backends[0].edge.tls_digest != second.backends[0].edge.tls_digest


def test_a_vanished_source_falls_back_to_the_installed_copy_of_the_same_paths(
    tmp_path: Path,
) -> None:
    cert, key = make_cert(tmp_path)
    folder = tmp_path / "certs"
    prepared = certs.prepare(_tls_state(cert, key), folder)
    certs.install(folder, prepared)
    cert.unlink()
    again = certs.prepare(_tls_state(cert, key), folder)
    assert again.pems == prepared.pems
    assert again.state == prepared.state  # same digest: no reload for nothing
    # other paths (a changed config) get no fallback: the deploy fails, naming the file
    with pytest.raises(ConfigError) as info:
        certs.prepare(_tls_state(tmp_path / "new.crt", key), folder)
    assert "app 'shop'" in info.value.message and "new.crt" in info.value.message


def test_check_tls_files(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    certs.check_tls_files(None, None)
    certs.check_tls_files(str(cert), str(key))
    with pytest.raises(ConfigError):
        certs.check_tls_files(str(cert), None)
