"""The CLI's client of the daemon API: HTTP over the daemon's unix socket."""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx

from slipway.api.schemas import API_PREFIX
from slipway.errors import DaemonNotRunning, SlipwayError, error_from_dict
from slipway.paths import Home


def identity() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Client:
    def __init__(self, home: Home, timeout: float = 60.0) -> None:
        self.home = home
        self.http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(home.socket)),
            base_url="http://slipway" + API_PREFIX,
            timeout=timeout,
            headers={"x-slipway-user": identity()},
        )

    def not_running(self) -> DaemonNotRunning:
        home = "" if self.home.root == Home.resolve(None).root else f" --home {self.home.root}"
        return DaemonNotRunning(
            "the slipway daemon is not running",
            where=str(self.home.socket),
            fix=f"start it with `slipway up{home}` (or `slipway server{home}` in the foreground)",
        )

    def request(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        try:
            response = self.http.request(method, path, json=payload, params=params)
        except (httpx.ConnectError, FileNotFoundError):
            raise self.not_running() from None
        except httpx.TransportError as exc:
            raise SlipwayError(
                f"talking to the daemon failed: {exc}",
                fix="check `slipway status`; the daemon log is in the home",
            ) from None
        return self._decode(response)

    def get(self, path: str, **params: str) -> Any:
        return self.request("GET", path, params=params or None)

    def post(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, payload=payload or {})

    def stream(self, path: str, **params: str) -> Iterator[dict[str, Any]]:
        """NDJSON lines of a streaming endpoint."""
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._decode(response)
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (httpx.ConnectError, FileNotFoundError):
            raise self.not_running() from None
        except httpx.RemoteProtocolError:
            raise SlipwayError(
                "the daemon closed the connection (did it stop?)", fix="check `slipway status`"
            ) from None

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            data = response.json()
        except json.JSONDecodeError:
            raise SlipwayError(
                f"the daemon answered HTTP {response.status_code} without JSON",
                details=[response.text[:500]],
            ) from None
        if response.status_code >= 400:
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                raise error_from_dict(data["error"])
            raise SlipwayError(
                f"the daemon answered HTTP {response.status_code}", details=[json.dumps(data)[:500]]
            )
        return data
