"""An app's edge cache as the API sees it: purge it (a new epoch on every lb host, so no
answer cached so far is served again) and its hit ratio from HAProxy's own counters."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slipway.errors import SlipwayError, UsageError

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")


def has_cache(service: Service, app: str) -> bool:
    """The app's recorded routing (what HAProxy runs) has [edge.cache]."""
    routing = service.store.app(app).routing  # 404 for an unknown app
    edge = (routing or {}).get("edge") or {}
    return edge.get("cache") is not None


async def purge(service: Service, app: str) -> dict[str, Any]:
    if not has_cache(service, app):
        raise UsageError(
            f"app '{app}' has no edge cache",
            where="[edge.cache] in slipway.toml",
            fix="add an [edge.cache] table and deploy; see docs/edge.md",
        )
    await service.router.purge_cache(app)
    log.info("cache of %s purged", app)
    return {"app": app, "purged": True}


async def counters(service: Service, app: str) -> dict[str, Any] | None:
    """Lookups and hits since each lb host's HAProxy (re)started, summed; None without a
    cache. A tier that cannot be asked gives None rather than failing the metrics."""
    if not has_cache(service, app):
        return None
    try:
        seen = await service.router.cache_counters(app)
    except SlipwayError as error:
        log.warning("cache counters of %s: %s", app, error.message)
        return None
    ratio = seen.ratio
    return {
        "lookups": seen.lookups,
        "hits": seen.hits,
        "hit_ratio": None if ratio is None else round(ratio, 4),
    }
