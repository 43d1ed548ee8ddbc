"""The control plane's access rules against the real daemon's TCP listener: every route
without a token, with a bad, expired and revoked one, and with each role; throttling; the
audit log of it all, tamper detection, and refusal when the audit cannot be written; the API
over TLS for a CLI on another host."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slipway.api.app import api_routes
from slipway.audit.log import AuditLog
from tests.integration.conftest import Slipway, free_port

RANK = {"viewer": 0, "deployer": 1, "admin": 2}
SAMPLE = {"app": "hello", "name": "API_KEY", "release": "r1", "command": "pause", "id": "1"}
NEVER_CALLED = {"/v1/shutdown"}  # an admin would stop the daemon under test


def every_route() -> list[tuple[str, str, str]]:
    """(method, path, role) of each API route, read from the real route table."""
    stub = SimpleNamespace(store=None, runtime=None)
    found = []
    for route in api_routes(stub, None):  # type: ignore[arg-type]
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE[str(m.group(1))], route.path)
        role = str(getattr(route.endpoint, "slipway_role", "none"))
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, path, role))
    return found


def token(slipway: Slipway, role: str, *args: str) -> str:
    result = slipway.json("tokens", "create", "--name", f"t-{role}", "--role", role, *args)
    return str(result["token"])


def call(
    base: str, method: str, path: str, bearer: str | None = None, source: str = "127.0.0.1"
) -> httpx.Response:
    """One request, from `source` (failed attempts are throttled per client address)."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10) as client:
        return client.request(method, base + path.lstrip("/"), headers=headers, json={})


def test_every_route_needs_a_token_with_its_role(running: Slipway) -> None:
    base = (running.home / "http.url").read_text().strip()
    routes = every_route()
    assert len(routes) > 25 and all(role in RANK for _, _, role in routes)
    tokens = {role: token(running, role) for role in RANK}
    expiring = token(running, "admin", "--expires", "1s")
    revoked = token(running, "admin")
    running.run("tokens", "revoke", revoked.split("_")[1])
    time.sleep(1.1)  # the expiring token's second passes

    for number, (method, path, need) in enumerate(routes):
        assert call(base, method, path).status_code == 401, (method, path)
        source = f"127.0.1.{number + 1}"  # 2 failures per address: below the throttle
        for bad, why in ((expiring, "token expired"), (revoked, "token revoked")):
            answer = call(base, method, path, bad, source)
            assert answer.status_code == 401 and why in answer.text, (method, path, why)
        for role, text in tokens.items():
            if path in NEVER_CALLED and RANK[role] >= RANK[need]:
                continue
            status = call(base, method, path, text).status_code
            if RANK[role] < RANK[need]:
                assert status == 403, (method, path, role, status)
            else:
                assert status not in (401, 403, 500), (method, path, role, status)

    metrics = httpx.get(base + "metrics", timeout=5)
    assert metrics.status_code == 401
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert httpx.get(base + "metrics", headers=viewer, timeout=5).status_code == 200


def test_repeated_failures_are_throttled_and_everything_is_audited(running: Slipway) -> None:
    base = (running.home / "http.url").read_text().strip()
    statuses = [call(base, "GET", "/v1/status", f"swt_0000000{i % 10}_x").status_code
                for i in range(12)]  # fmt: skip
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429
    answer = call(base, "GET", "/v1/status", token(running, "viewer"))
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0

    entries = running.json("audit")
    denied = [e for e in entries if e["outcome"] == "denied"]
    assert refused(denied) == 13 and {e["source"] for e in denied} == {"127.0.0.1"}
    assert len(denied) == 2, "the first at once, the rest folded into one entry"
    created = [e for e in entries if e["action"].startswith("create_token")]
    assert [e["outcome"] for e in created] == ["accepted", "ok"]
    assert "swt_" not in json.dumps(entries), "no token in the audit log"
    assert running.run("audit", "verify").returncode == 0


def test_a_forged_forwarded_for_header_changes_nothing(running: Slipway) -> None:
    """A client on 127.0.0.1 (anyone with an ssh tunnel) cannot pick its own address."""
    base = (running.home / "http.url").read_text().strip()
    statuses = []
    for i in range(12):
        forged = {"Authorization": "Bearer swt_00000000_x", "X-Forwarded-For": f"203.0.113.{i}"}
        statuses.append(httpx.get(base + "v1/status", headers=forged, timeout=10).status_code)
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429  # throttled as 127.0.0.1
    denied = [e for e in running.json("audit") if e["outcome"] == "denied"]
    assert {e["source"] for e in denied} == {"127.0.0.1"}


def refused(entries: list[dict[str, Any]]) -> int:
    """Refused requests the entries stand for: a folded entry counts many."""
    return sum(int(e["detail"].get("count", 1)) for e in entries)


def test_a_flood_without_credentials_is_throttled_and_folded(running: Slipway) -> None:
    base = (running.home / "http.url").read_text().strip()
    viewer = token(running, "viewer")
    log = running.home / "audit.log"
    size = log.stat().st_size
    long_path = "v1/" + "x" * 12_000  # what fits in a request line (h11: 16 kB)
    transport = httpx.HTTPTransport(local_address="127.0.0.3")
    started = time.monotonic()
    with httpx.Client(transport=transport, timeout=10) as scanner:
        statuses = [scanner.get(f"{base}{long_path}/{i}").status_code for i in range(300)]
    took = time.monotonic() - started
    # a request without credentials is a tenth of a failure: 100 a minute, then 429
    assert statuses[:100] == [401] * 100 and set(statuses[100:]) == {429}, statuses
    assert log.stat().st_size - size < 1500, "one entry at once, its path clipped"
    assert call(base, "GET", "/v1/status", viewer).status_code == 200, "other sources pass"

    entries = running.json("audit")  # reading the log writes what was folded so far
    flood = [e for e in entries if e["source"] == "127.0.0.3"]
    assert [e["action"] for e in flood] == ["GET", "requests denied"]
    first, folded = flood
    assert first["target"].startswith("/v1/xxx") and first["target"].endswith("more characters]")
    assert len(first["target"]) < 300 and first["detail"]["reason"] == "no credentials"
    assert folded["target"] == "299 requests" and folded["detail"]["count"] == 299
    assert folded["detail"]["reasons"] == {"no credentials": 99, "throttled": 200}
    assert folded["detail"]["statuses"] == {"401": 99, "429": 200}
    assert all(len(p) < 120 for p in folded["detail"]["paths"])
    assert log.stat().st_size - size < 5000, "300 refusals, a few kB in all"
    assert running.run("audit", "verify").returncode == 0
    print(f"300 refused requests in {took:.2f}s; the audit log grew {log.stat().st_size - size} B")


def test_a_bad_cookie_on_the_dashboard_pages_counts_against_its_sender(running: Slipway) -> None:
    """The pages ask the API in-process: the Guard must see, throttle and audit the browser's
    address, not the daemon's own 127.0.0.1 (where every local user would be locked out)."""
    base = (running.home / "http.url").read_text().strip()
    viewer = token(running, "viewer")
    garbage = {"Cookie": "slipway_session=swt_00000000_garbage"}
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.9"), timeout=10) as c:
        for _ in range(12):  # the page holds no data: it answers, and its API call is refused
            assert c.get(f"{base}apps/hello", headers=garbage).status_code == 200
        own = c.get(f"{base}v1/status", headers={"Authorization": f"Bearer {viewer}"})
    assert own.status_code == 429, "the sender is throttled"
    assert call(base, "GET", "/v1/status", viewer).status_code == 200, "127.0.0.1 is not"
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.10"), timeout=10) as c:
        for _ in range(20):  # no cookie at all: nothing to ask the API, nothing refused
            assert c.get(f"{base}apps/hello").status_code == 200
    denied = [e for e in running.json("audit") if e["outcome"] == "denied"]
    assert {e["source"] for e in denied} == {"127.0.0.9"}
    assert refused(denied) == 13  # ten failures, two refused while blocked, and its own
    assert denied[0]["detail"]["reason"] == "malformed"


def test_a_deleted_audit_log_is_reported_and_not_restarted(running: Slipway) -> None:
    token(running, "viewer")
    assert running.run("audit", "verify").returncode == 0
    (running.home / "audit.log").unlink()
    (running.home / "audit.head").unlink()
    result = running.run("audit", "verify", check=False)
    assert result.returncode == 1 and "tampered" in result.stdout, result.stdout
    problems = json.loads(running.run("audit", "verify", "--json", check=False).stdout)
    assert problems["ok"] is False and problems["entries"] == 0
    assert problems["problems"][0].startswith("the audit log is gone")
    # a new chain from seq 1 would verify as if nothing had been deleted: changes wait
    refused_change = running.run("tokens", "create", "--name", "x", "--role", "viewer", check=False)
    assert refused_change.returncode != 0
    assert "the audit log and its head are gone" in refused_change.stderr
    assert "audit.key aside" in refused_change.stderr
    (running.home / "audit.key").rename(running.home / "audit.key.old")  # the fix it gives
    token(running, "viewer")  # a new log, which verifies (and lets the fixture stop it all)
    assert running.run("audit", "verify").returncode == 0


def test_verify_and_list_read_every_segment(slipway: Slipway) -> None:
    """A log already cut into segments (and trimmed by retention) by an AuditLog with tiny
    segments; the real daemon carries on with it, and the real CLI reads it all."""
    slipway.home.mkdir(mode=0o700)
    small = AuditLog(slipway.home, segment_bytes=1500, keep_segments=3)
    for i in range(40):
        small.append(who="alice", role="admin", action="deploy", target=f"app=a{i}",
                     source="10.0.0.7", outcome="ok")  # fmt: skip
    segments = sorted(slipway.home.glob("audit.log.*"), key=lambda p: int(p.suffix[1:]))
    assert len(segments) == 3 and segments[0].name != "audit.log.1", "retention removed some"
    slipway.run("up")
    token(slipway, "viewer")  # the daemon appends to the same chain
    result = slipway.run("audit", "verify")
    assert "in 4 files, the chain is intact" in result.stdout, result.stdout
    entries = slipway.json("audit")
    seqs = [e["seq"] for e in entries]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 1
    assert [e["target"] for e in entries if e["action"] == "deploy"][-1] == "app=a39"
    assert any(e["action"] == "audit retention" for e in entries)
    assert entries[-1]["action"].startswith("create_token")

    segments[1].unlink()  # by hand
    result = slipway.run("audit", "verify", check=False)
    assert result.returncode == 1
    verdict = json.loads(slipway.run("audit", "verify", "--json", check=False).stdout)
    assert verdict["problems"][0] == f"{segments[1].name} is missing: a segment was deleted"


def tamper(log: Path, how: str) -> None:
    lines = log.read_text().splitlines(keepends=True)
    if how == "edit":
        entry = json.loads(lines[1])
        entry["who"] = "somebody-else"
        lines[1] = json.dumps(entry) + "\n"
    elif how == "delete":
        del lines[1]
    elif how == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    elif how == "truncate":
        del lines[-1]
    log.write_text("".join(lines))


@pytest.mark.parametrize("how", ["edit", "delete", "reorder", "truncate"])
def test_audit_verify_detects_each_kind_of_tampering(running: Slipway, how: str) -> None:
    for role in ("viewer", "deployer", "admin"):
        token(running, role)
    assert running.run("audit", "verify").returncode == 0
    log = running.home / "audit.log"
    tamper(log, how)
    result = running.run("audit", "verify", check=False)
    assert result.returncode == 1, result.stdout
    assert "tampered" in result.stdout


def test_an_action_is_refused_when_its_audit_record_cannot_be_written(running: Slipway) -> None:
    app = running.make_app(scale={"web": 1})
    running.deploy(app)
    log = running.home / "audit.log"
    saved = log.read_bytes()
    log.unlink()
    log.mkdir()  # root ignores file modes; a folder in its place cannot be appended to
    refused = running.run("scale", "web=2", "--app", app.name, check=False)
    assert refused.returncode != 0
    assert "audit log could not be written" in refused.stderr
    assert len(running.ps(app.name)) == 1, "nothing changed"
    log.rmdir()
    log.write_bytes(saved)
    running.run("scale", "web=2", "--app", app.name)
    assert len(running.ps(app.name)) == 2


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api.crt", folder / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_the_cli_reaches_the_api_over_tls_with_a_token(slipway: Slipway, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    slipway.run("up", "--http", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key))
    url = f"https://127.0.0.1:{port}"
    assert (slipway.home / "http.url").read_text().startswith("https://")
    deployer = token(slipway, "deployer")
    remote: dict[str, Any] = {"SLIPWAY_URL": url, "SLIPWAY_TOKEN": deployer}
    elsewhere = tmp_path / "elsewhere"  # no home, no socket: only the URL
    elsewhere.mkdir()
    env = os.environ | {"SLIPWAY_HOME": str(elsewhere)} | remote

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=env | extra,
            capture_output=True,
            text=True,
            timeout=60,
        )

    untrusted = cli("status")
    assert untrusted.returncode != 0 and "SLIPWAY_CA" in untrusted.stderr
    trusted = cli("status", "--json", SLIPWAY_CA=str(cert))
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["daemon"]["home"] == str(slipway.home)
    forbidden = cli("tokens", "list", SLIPWAY_CA=str(cert))
    assert forbidden.returncode != 0 and "needs the admin role" in forbidden.stderr
    with pytest.raises(httpx.HTTPError):  # TLS only: plain HTTP gets no answer
        httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=5)
