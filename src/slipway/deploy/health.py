"""Readiness of new instances, judged by the daemon itself before HAProxy sends them traffic."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from slipway.runtime.base import Observed

WORKER_READY_SECONDS = 1.0  # a worker that stays up this long counts as started


@dataclass
class Readiness:
    passes: int = 0
    last: str = "not checked yet"
    ready: bool = False


async def probe(
    client: httpx.AsyncClient, port: int, path: str, timeout: float
) -> tuple[bool, str]:
    try:
        response = await client.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)
    except httpx.TimeoutException:
        return False, f"GET {path} timed out after {timeout:g}s"
    except httpx.HTTPError as exc:
        return False, f"GET {path} failed: {type(exc).__name__} {exc}".strip()
    if response.status_code >= 400:
        return False, f"GET {path} answered HTTP {response.status_code}"
    return True, f"GET {path} answered HTTP {response.status_code}"


def worker_ready(
    observed: Observed, min_uptime: float, now: float | None = None
) -> tuple[bool, str]:
    if observed.state != "running" or observed.child_started is None:
        return False, f"process is {observed.state}"
    up = (now or time.time()) - observed.child_started
    if up < min_uptime:
        return False, f"up for {up:.1f}s"
    return True, f"up for {up:.1f}s"
