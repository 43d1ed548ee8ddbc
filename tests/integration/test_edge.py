"""[edge] against the real HAProxy: TLS with a test certificate (and the versions and ciphers
it refuses), HTTP -> HTTPS redirects, HSTS and security headers, the per-IP rate limit, IP
deny/allow lists, size limits, the client's real address (X-Forwarded-For, trusted proxies,
PROXY protocol), and a changed [edge] applied by a seamless reload.

Clients use other loopback source addresses (127.0.0.2, …) to be other IPs."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from slipway.router.config import Backend, EdgeRules, RouterState, Server, render
from tests.integration.conftest import Slipway, free_port, stop, wait_for
from tests.unit.test_edge_config import make_cert

HAPROXY = "/usr/sbin/haproxy"

# The app: its request's path, headers and body size, as JSON (and /up for health checks).
ECHO_APP = """\
import json, os, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        data = json.dumps({"path": self.path, "headers": headers, "body": len(body)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.path.startswith("/framed"):  # the app's own header wins over the default
            self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()


Server(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


def tls_context(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    return context


def client(source: str = "127.0.0.1", verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """A client whose connections come from `source` (any 127.x address is this machine)."""
    transport = httpx.HTTPTransport(local_address=source, verify=verify, retries=0)
    return httpx.Client(transport=transport, timeout=5)


def handshake(port: int, cert: Path, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """The TLS version agreed, or the error of a refused handshake."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 are meant to fail
        context.minimum_version = context.maximum_version = version
    if ciphers:
        context.set_ciphers(ciphers)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return str(tls.version())
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def test_edge_tls_redirect_headers_limits_and_a_seamless_change(running: Slipway) -> None:
    cert, key = make_cert(running.workdir)
    https_port = free_port()
    edge: dict[str, Any] = {
        "tls_cert": str(cert),
        "tls_key": str(key),
        "https_port": https_port,
        "rate_limit": 10,
        "rate_window": "2s",
        "deny": ["127.0.0.2"],
        "max_body": "1KB",
    }
    app = running.make_app("edgy", scale={"web": 1}, edge=edge)
    (app.dir / "app.py").write_text(ECHO_APP)
    running.deploy(app)
    https = f"https://127.0.0.1:{https_port}"
    verify = tls_context(cert)

    with client(verify=verify) as web:
        # plain HTTP: redirected to the HTTPS port, path and query kept (308 for a POST)
        answer = web.get(f"{app.url}headers?x=1")
        assert answer.status_code == 301
        assert answer.headers["location"] == f"{https}/headers?x=1"
        answer = web.post(f"{app.url}form", content=b"a=1")
        assert (answer.status_code, answer.headers["location"]) == (308, f"{https}/form")
        assert "strict-transport-security" not in answer.headers  # never over plain HTTP

        # HTTPS with the test certificate; a forged client address does not reach the app
        answer = web.get(
            f"{https}/headers",
            headers={"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6", "Forwarded": "x"},
        )
        assert answer.status_code == 200, answer.text
        seen = answer.json()["headers"]
        assert seen["x-forwarded-for"] == "127.0.0.1"
        assert seen["x-real-ip"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"
        assert "forwarded" not in seen
        assert answer.headers["strict-transport-security"] == "max-age=31536000"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "SAMEORIGIN"
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert web.get(f"{https}/framed").headers["x-frame-options"] == "DENY"

        # request body limit: a Content-Length over max_body is refused before the app
        assert web.post(f"{https}/upload", content=b"x" * 1000).json()["body"] == 1000
        assert web.post(f"{https}/upload", content=b"x" * 2000).status_code == 413

    # TLS 1.2+ only, modern ciphers only
    assert handshake(https_port, cert, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert handshake(https_port, cert, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    old = handshake(https_port, cert, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")
    assert "PROTOCOL_VERSION" in old, old  # the server's alert, not a client-side refusal
    cbc = handshake(https_port, cert, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA")
    assert "HANDSHAKE_FAILURE" in cbc, cbc

    # a denied IP is refused, on both ports
    with client("127.0.0.2", verify) as denied:
        answer = denied.get(f"{https}/headers")
        assert answer.status_code == 403
        assert answer.headers["x-content-type-options"] == "nosniff"  # HAProxy's answers too
        assert denied.get(app.url).status_code == 403

    # rate limit: 10 requests per 2s per client IP; the 11th is refused, other IPs are not
    with client("127.0.0.3", verify) as busy, client("127.0.0.4", verify) as calm:
        codes = [busy.get(f"{https}/headers").status_code for _ in range(10)]
        assert codes == [200] * 10
        refused = busy.get(f"{https}/headers")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert calm.get(f"{https}/headers").status_code == 200
        # the limit is a rate, not a ban: once the client slows down it is served again
        wait_for(lambda: busy.get(f"{https}/up").status_code == 200, 10, "the rate to decay", 1.0)

    # a changed [edge] (no rate limit, other IP rules, no body limit) reaches HAProxy by a
    # seamless reload while requests keep flowing
    app.write_config(
        scale={"web": 1},
        edge={
            "tls_cert": str(cert),
            "tls_key": str(key),
            "https_port": https_port,
            "allow": ["127.0.0.0/30"],
            "deny": ["127.0.0.3"],
        },
    )
    # (until the reload, the old rate limit answers this steady client 429: that is no failure)
    errors: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with client(verify=verify) as steady:
            while not stop.is_set():
                try:
                    statuses.append(steady.get(f"{https}/headers").status_code)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))

    loader = threading.Thread(target=traffic)
    loader.start()
    try:
        result = running.deploy(app)
        time.sleep(0.5)
    finally:
        stop.set()
        loader.join(10)
    assert errors == [], f"{len(errors)} of {len(statuses) + len(errors)} failed: {errors[:5]}"
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    last_429 = max((i for i, s in enumerate(statuses) if s == 429), default=-1)
    after_reload = statuses[last_429 + 1 :]
    assert len(after_reload) > 20, "the new [edge] (no rate limit) serves the same client"
    assert "r2 is" in result.stdout
    for source, status in [("127.0.0.2", 200), ("127.0.0.3", 403), ("127.0.0.5", 403)]:
        with client(source, verify) as web:
            assert web.get(f"{https}/headers").status_code == status, source
    with client(verify=verify) as web:
        assert web.post(f"{https}/upload", content=b"x" * 5000).json()["body"] == 5000
        assert all(web.get(f"{https}/headers").status_code == 200 for _ in range(15))

    # a certificate file that cannot be read stops the deploy, naming it; r2 keeps serving
    app.write_config(
        scale={"web": 1},
        edge={"tls_cert": str(cert.with_name("gone.pem")), "https_port": https_port},
    )
    failed = running.deploy(app, check=False)
    assert failed.returncode != 0
    assert f"cannot read the TLS certificate {cert.with_name('gone.pem')}" in (
        failed.stdout + failed.stderr
    ), failed.stdout + failed.stderr
    with client(verify=verify) as web:
        assert web.get(f"{https}/headers").status_code == 200
    assert running.app_status("edgy")["current_release"] == "r2"


# -- HAProxy alone: PROXY protocol, trusted proxies, header size ---------------------------


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        data = json.dumps({"headers": headers}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def haproxy_serving(state: RouterState, folder: Path) -> Iterator[None]:
    """HAProxy in the foreground on `state`'s config; stopped by its pid at the end."""
    config = folder / "haproxy.cfg"
    config.write_text(render(state))
    log = folder / "haproxy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=out, stderr=out)
    try:
        for port in sorted({b.port for b in state.backends}):
            wait_for(partial(_connects, port), 10, f"HAProxy on {port}", 0.05)
        yield
    finally:
        stop(process)
    assert process.returncode in (0, -15, 143), log.read_text()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _raw_get(port: int, preface: bytes = b"", source: str = "127.0.0.1") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(preface + b"GET /headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def test_proxy_protocol_trusted_proxies_and_header_limit(tmp_path: Path) -> None:
    echo = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    echo.daemon_threads = True
    thread = threading.Thread(target=echo.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    server = (Server("s1", echo.server_address[1], 100),)
    proxied = Backend(
        "proxied", "127.0.0.1", free_port(), servers=server, edge=EdgeRules(proxy_protocol=True)
    )
    behind = Backend(
        "behind",
        "127.0.0.1",
        free_port(),
        servers=server,
        edge=EdgeRules(trusted_proxies=("127.0.0.1",), deny=("198.51.100.7",), max_header=2048),
    )
    state = RouterState(str(tmp_path / "admin.sock"), (proxied, behind))
    try:
        with haproxy_serving(state, tmp_path):
            # PROXY protocol: the address in the PROXY header is the client's
            answer = _raw_get(proxied.port, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n")
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            seen = json.loads(answer.split(b"\r\n\r\n", 1)[1])["headers"]
            assert seen["x-forwarded-for"] == seen["x-real-ip"] == "203.0.113.9"
            assert not _raw_get(proxied.port).startswith(b"HTTP/1.1 200")  # no header: refused

            url = f"http://127.0.0.1:{behind.port}/headers"
            with client() as trusted:  # 127.0.0.1 is the trusted proxy
                forwarded = {"X-Forwarded-For": "6.6.6.6, 203.0.113.5"}
                seen = trusted.get(url, headers=forwarded).json()["headers"]
                assert seen["x-forwarded-for"] == seen["x-real-ip"] == "203.0.113.5"
                proxy_said = {"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
                assert trusted.get(url, headers=proxy_said).status_code == 403
                seen = trusted.get(url, headers={"X-Forwarded-Proto": "https"}).json()["headers"]
                assert seen["x-forwarded-proto"] == "https"  # what the proxy saw
                big = trusted.get(url, headers={"X-Big": "a" * 3000})
                assert big.status_code == 431
                assert trusted.get(url, headers={"X-Big": "a" * 1500}).status_code == 200
            with client("127.0.0.2") as stranger:  # not trusted: its forwarding is ignored
                headers = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
                seen = stranger.get(url, headers=headers).json()["headers"]
                assert seen["x-forwarded-for"] == "127.0.0.2"
                assert seen["x-forwarded-proto"] == "http"
    finally:
        echo.shutdown()
        echo.server_close()
        thread.join(5)
