"""A small HTTP load generator (asyncio + httpx) for the demo, tests and benchmarks.

It keeps `concurrency` requests in flight (optionally capped at `rate` per second) and
records every outcome: a request fails if it gets no response or a 5xx."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    bodies: Counter[str] = field(default_factory=Counter)  # e.g. which release answered

    @property
    def seconds(self) -> float:
        return max(1e-9, self.ended - self.started)

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    def quantile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.sent} requests in {self.seconds:.1f}s ({self.rate:.0f}/s), "
            f"{self.failed} failed, p50 {self.quantile(0.5):.1f}ms, p99 {self.quantile(0.99):.1f}ms"
            + (f", errors {dict(self.errors)}" if self.errors else "")
        )


async def run_load(
    url: str,
    stop: asyncio.Event,
    concurrency: int = 8,
    rate: float | None = None,
    timeout: float = 10.0,
    record_key: str | None = None,
) -> LoadResult:
    """Send requests until `stop` is set. `record_key` counts a JSON field of the answers."""
    result = LoadResult(started=time.monotonic())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    interval = concurrency / rate if rate else 0.0
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            next_at = time.monotonic()
            while not stop.is_set():
                began = time.monotonic()
                try:
                    response = await client.get(url)
                    result.statuses[response.status_code] += 1
                    if response.status_code >= 500:
                        result.failed += 1
                    elif record_key:
                        result.bodies[str(response.json().get(record_key))] += 1
                except httpx.HTTPError as exc:
                    result.failed += 1
                    result.errors[type(exc).__name__] += 1
                result.sent += 1
                result.latencies_ms.append((time.monotonic() - began) * 1000)
                if interval:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.ended = time.monotonic()
    return result


class BackgroundLoad:
    """Load from a thread, for synchronous tests: `with BackgroundLoad(url) as load: ...`."""

    def __init__(
        self,
        url: str,
        concurrency: int = 8,
        rate: float | None = None,
        record_key: str | None = None,
    ) -> None:
        self.url = url
        self.concurrency = concurrency
        self.rate = rate
        self.record_key = record_key
        self.result: LoadResult | None = None
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.result = self._loop.run_until_complete(
            run_load(self.url, self._stop, self.concurrency, self.rate, record_key=self.record_key)
        )

    def start(self) -> BackgroundLoad:
        self._thread.start()
        return self

    def stop(self) -> LoadResult:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
        assert self.result is not None, "the load generator did not finish"
        return self.result

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if self.result is None:
            self.stop()
