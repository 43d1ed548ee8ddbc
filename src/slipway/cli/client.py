"""The CLI's client of the daemon API: HTTP/1.1 over the daemon's unix socket, or, with
SLIPWAY_URL set, over TCP (TLS for https://; SLIPWAY_CA names a CA file to trust) with the
token in SLIPWAY_TOKEN.

Standard library only: the CLI starts for every command, and importing a full HTTP client
library would cost more than the rollback it triggers. A request over the unix socket, what
`slipway status` makes, is written and read on the socket here (one request, then the
daemon closes the connection): http.client and the email parsing it imports cost more than
the request. Streams and SLIPWAY_URL go through http.client, imported then."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from slipway.api import API_PREFIX
from slipway.errors import DaemonNotRunning, SlipwayError, UsageError, error_from_dict
from slipway.paths import Home

if TYPE_CHECKING:
    import http.client

MAX_RESPONSE = 256 * 1024 * 1024  # a sane bound on one answer read into memory


def identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def connection_for(home: Home, timeout: float | None) -> http.client.HTTPConnection:
    import http.client
    import ssl
    from urllib.parse import urlsplit

    class UnixConnection(http.client.HTTPConnection):
        def __init__(self, path: str, timeout: float | None) -> None:
            super().__init__("slipway", timeout=timeout)
            self.path = path

        def connect(self) -> None:
            self.sock = unix_socket(self.path, self.timeout)

    url = os.environ.get("SLIPWAY_URL")
    if not url:
        return UnixConnection(str(home.socket), timeout)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f'SLIPWAY_URL "{url}" is not an http(s) URL',
            fix="e.g. SLIPWAY_URL=https://deploy.example.com:7870",
        )
    if parts.scheme == "http":
        return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    context = ssl.create_default_context(cafile=os.environ.get("SLIPWAY_CA") or None)
    return http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, timeout=timeout, context=context
    )


def unix_socket(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def unix_exchange(path: str, request: bytes, timeout: float | None) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request (with `Connection: close`) over the unix socket at `path`;
    the status and body of the answer."""
    with unix_socket(path, timeout) as sock:
        sock.sendall(request)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if len(received) > MAX_RESPONSE:
                raise SlipwayError("the daemon's answer is too large to read")
    return parse_response(bytes(received))


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """Status and body of an HTTP/1.1 response read to the end (Content-Length, chunked, or
    up to the close)."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not separator or not version.startswith("HTTP/1.") or not code.isdigit():
        raise SlipwayError(
            "the daemon's answer is not HTTP", details=[raw[:200].decode(errors="replace")]
        )
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return int(code), dechunk(body)
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if len(body) < int(length):
            raise SlipwayError("the daemon closed the connection (did it stop?)",
                               fix="check `slipway status`")  # fmt: skip
        return int(code), body[: int(length)]
    return int(code), body


def dechunk(body: bytes) -> bytes:
    decoded = bytearray()
    while True:
        size_line, separator, body = body.partition(b"\r\n")
        size = size_line.split(b";")[0].strip()
        if not separator or not size or any(c not in b"0123456789abcdefABCDEF" for c in size):
            raise SlipwayError("the daemon closed the connection (did it stop?)",
                               fix="check `slipway status`")  # fmt: skip
        length = int(size, 16)
        if length == 0:
            return bytes(decoded)
        if len(body) < length + 2:
            raise SlipwayError("the daemon closed the connection (did it stop?)",
                               fix="check `slipway status`")  # fmt: skip
        decoded += body[:length]
        body = body[length + 2 :]


class Client:
    def __init__(self, home: Home, timeout: float = 60.0) -> None:
        self.home = home
        self.timeout = timeout

    def not_running(self) -> DaemonNotRunning:
        home = "" if self.home.root == Home.resolve(None).root else f" --home {self.home.root}"
        return DaemonNotRunning(
            "the slipway daemon is not running",
            where=str(self.home.socket),
            fix=f"start it with `slipway up{home}` (or `slipway server{home}` in the foreground)",
        )

    def _request_parts(
        self, path: str, payload: dict[str, Any] | None, params: dict[str, str] | None
    ) -> tuple[str, bytes | None, dict[str, str]]:
        query = ""
        if params:
            from urllib.parse import urlencode

            query = f"?{urlencode(params)}"
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"x-slipway-user": identity(), "content-type": "application/json"}
        token = os.environ.get("SLIPWAY_TOKEN")
        if token:
            headers["authorization"] = f"Bearer {token.strip()}"
        for name, value in headers.items():  # written into the request as they are
            if not value.isascii() or any(c in value for c in "\r\n\0"):
                where = "SLIPWAY_TOKEN" if name == "authorization" else f"the {name} header"
                raise UsageError(
                    f"{where} holds a line break or a non-ASCII character",
                    where=where,
                    fix="set it again from its source (a token is one line of ASCII: swt_…)",
                )
        return API_PREFIX + path + query, body, headers

    @contextlib.contextmanager
    def _talking(self) -> Iterator[None]:
        """What goes wrong on the way to the daemon, said as a SlipwayError."""
        try:
            yield
        except (FileNotFoundError, ConnectionRefusedError):
            if os.environ.get("SLIPWAY_URL"):
                raise SlipwayError(
                    f"nothing answers at {os.environ['SLIPWAY_URL']}",
                    fix="check SLIPWAY_URL and that the daemon serves --http there",
                ) from None
            raise self.not_running() from None
        except OSError as exc:
            ssl = sys.modules.get("ssl")  # imported only for SLIPWAY_URL
            if ssl is not None and isinstance(exc, ssl.SSLError):
                raise SlipwayError(
                    f"TLS with the daemon failed: {exc.reason or exc}",
                    fix="set SLIPWAY_CA to the CA (or self-signed certificate) that signed its "
                    "cert",
                ) from None
            raise SlipwayError(
                f"talking to the daemon failed: {exc}",
                fix="check `slipway status`; the daemon's log is daemon.log in its home",
            ) from None

    def _send(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        params: dict[str, str] | None,
        timeout: float | None,
    ) -> http.client.HTTPResponse:
        url, body, headers = self._request_parts(path, payload, params)
        connection = connection_for(self.home, timeout)
        with self._talking():
            connection.request(method, url, body=body, headers=headers)
            return connection.getresponse()

    def request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        if os.environ.get("SLIPWAY_URL"):
            response = self._send(method, path, payload, params, self.timeout)
            return self._decode(response.status, response.read())
        url, body, headers = self._request_parts(path, payload, params)
        head = [f"{method} {url} HTTP/1.1", "Host: slipway", "Connection: close"]
        if body is not None:
            head.append(f"Content-Length: {len(body)}")
        head += [f"{name}: {value}" for name, value in headers.items()]
        message = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        with self._talking():
            status, raw = unix_exchange(str(self.home.socket), message, self.timeout)
        return self._decode(status, raw)

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, payload=payload or {})

    def stream(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """NDJSON lines of a streaming endpoint, as they come."""
        import http.client

        response = self._send("GET", path, None, params, None)
        if response.status >= 400:
            self._decode(response.status, response.read())
        try:
            for line in response:
                if line.strip():
                    yield json.loads(line)
        except (http.client.HTTPException, OSError):
            raise SlipwayError(
                "the daemon closed the connection (did it stop?)", fix="check `slipway status`"
            ) from None

    @staticmethod
    def _decode(status: int, raw: bytes) -> Any:
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            raise SlipwayError(
                f"the daemon answered HTTP {status} without JSON",
                details=[raw[:500].decode(errors="replace")],
            ) from None
        if status >= 400:
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                raise error_from_dict(data["error"])
            raise SlipwayError(
                f"the daemon answered HTTP {status}", details=[json.dumps(data)[:500]]
            )
        return data
