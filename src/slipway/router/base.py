"""The Router protocol: the data plane as the deploy engine sees it, in release-level terms:
servers (an instance's address and port) and their weights, applied to the whole lb tier.
No HAProxy detail crosses it. Implementations: the lb tier (tier.py, one HAProxy per `lb`
host through its agent) and a fake for unit tests."""

from __future__ import annotations

from typing import Protocol

from slipway.router.config import Backend, RouterState, Server
from slipway.router.stats import CacheCounters, ServerStat


class Router(Protocol):
    async def running(self) -> bool: ...

    async def ensure(self, state: RouterState) -> bool: ...

    async def add_server(self, backend: Backend, server: Server) -> None: ...

    async def set_weights(self, app: str, weights: dict[str, int], before: dict[str, int]) -> None:
        """One switch, all or nothing; `weights` in the order to apply (raises first)."""
        ...

    async def set_health(self, app: str, name: str, up: bool) -> None: ...

    async def drain(self, app: str, name: str) -> None: ...

    async def remove_server(self, app: str, name: str, timeout: float = 20.0) -> None: ...

    async def stats(self, app: str) -> dict[str, ServerStat]: ...

    async def sync(self, backend: Backend) -> None: ...

    async def purge_cache(self, app: str) -> bool:
        """No answer cached so far is served again; False if the app has no cache."""
        ...

    async def cache_counters(self, app: str) -> CacheCounters: ...

    async def stop(self, timeout: float = 30.0) -> None: ...
