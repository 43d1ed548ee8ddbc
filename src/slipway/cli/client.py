"""The CLI's client of the daemon API: HTTP/1.1 over the daemon's unix socket, or, with
SLIPWAY_URL set, over TCP (TLS for https://; SLIPWAY_CA names a CA file to trust) with the
token in SLIPWAY_TOKEN.

Standard library only (http.client): the CLI starts for every command, and importing a
full HTTP client library would cost more than the rollback it triggers."""

from __future__ import annotations

import getpass
import http.client
import json
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from slipway.api import API_PREFIX
from slipway.errors import DaemonNotRunning, SlipwayError, UsageError, error_from_dict
from slipway.paths import Home


def identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def connection_for(home: Home, timeout: float | None) -> http.client.HTTPConnection:
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


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("slipway", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


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

    def _send(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
        params: dict[str, str] | None,
        timeout: float | None,
    ) -> http.client.HTTPResponse:
        url = API_PREFIX + path + (f"?{urlencode(params)}" if params else "")
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"x-slipway-user": identity(), "content-type": "application/json"}
        token = os.environ.get("SLIPWAY_TOKEN")
        if token:
            headers["authorization"] = f"Bearer {token.strip()}"
        connection = connection_for(self.home, timeout)
        try:
            connection.request(method, url, body=body, headers=headers)
            return connection.getresponse()
        except (FileNotFoundError, ConnectionRefusedError):
            if os.environ.get("SLIPWAY_URL"):
                raise SlipwayError(
                    f"nothing answers at {os.environ['SLIPWAY_URL']}",
                    fix="check SLIPWAY_URL and that the daemon serves --http there",
                ) from None
            raise self.not_running() from None
        except ssl.SSLError as exc:
            raise SlipwayError(
                f"TLS with the daemon failed: {exc.reason or exc}",
                fix="set SLIPWAY_CA to the CA (or self-signed certificate) that signed its cert",
            ) from None
        except OSError as exc:
            raise SlipwayError(
                f"talking to the daemon failed: {exc}",
                fix="check `slipway status`; the daemon's log is daemon.log in its home",
            ) from None

    def request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self._send(method, path, payload, params, self.timeout)
        return self._decode(response.status, response.read())

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, payload=payload or {})

    def stream(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """NDJSON lines of a streaming endpoint, as they come."""
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
