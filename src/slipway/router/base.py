"""The Router protocol: the data plane as the deploy engine sees it."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from slipway.router.config import Backend, RouterState, Server
from slipway.router.stats import ServerStat


class Router(Protocol):
    admin_socket: Path

    def running(self) -> bool: ...

    async def ensure(self, state: RouterState) -> bool: ...

    async def add_server(self, backend: Backend, server: Server) -> None: ...

    async def set_weight(self, app: str, name: str, weight: int) -> None: ...

    async def drain(self, app: str, name: str) -> None: ...

    async def set_health(self, app: str, name: str, up: bool) -> None:
        """Mark a server down (or up) now; the router's own checks carry on from there."""
        ...

    async def remove_server(self, app: str, name: str, timeout: float = 20.0) -> None: ...

    async def stats(self, app: str) -> dict[str, ServerStat]: ...

    async def sync(self, backend: Backend) -> None: ...

    async def stop(self, timeout: float = 30.0) -> None: ...
