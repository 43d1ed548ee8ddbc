"""A small HTTP load generator (asyncio + httpx) for the demo, tests and benchmarks.

It keeps `concurrency` requests in flight (optionally capped at `rate` per second) and
records every outcome: a request fails if it gets no response or a 5xx. Given a `samples`
list, it also appends one `Sample` per request, so a benchmark can split the load into
phases by time and tell which release answered each request."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: when it was sent (time.monotonic()), how long it took, its HTTP status
    (0: no response) and the `record_key` field of its answer (None if not recorded)."""

    t: float
    latency_ms: float
    status: int
    value: str | None = None
    error: str | None = None

    @property
    def done(self) -> float:
        """When the answer (or the error) came back, on the same clock as `t`."""
        return self.t + self.latency_ms / 1000

    @property
    def failed(self) -> bool:
        return self.status == 0 or self.status >= 500


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
    samples: list[Sample] | None = None,
) -> LoadResult:
    """Send requests until `stop` is set. `record_key` counts a JSON field of the answers;
    `samples`, if given, gets one `Sample` per request."""
    result = LoadResult(started=time.monotonic())
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    interval = concurrency / rate if rate else 0.0
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def worker(index: int) -> None:
            # Workers are staggered across the interval, so a fixed rate is an even stream
            # rather than `concurrency` requests at once.
            next_at = result.started + index * interval / concurrency
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            while not stop.is_set():
                began = time.monotonic()
                status, value, error = 0, None, None
                try:
                    response = await client.get(url)
                    status = response.status_code
                    result.statuses[status] += 1
                    if status >= 500:
                        result.failed += 1
                    elif record_key:
                        value = str(response.json().get(record_key))
                        result.bodies[value] += 1
                except httpx.HTTPError as exc:
                    result.failed += 1
                    error = type(exc).__name__
                    result.errors[error] += 1
                latency_ms = (time.monotonic() - began) * 1000
                result.sent += 1
                result.latencies_ms.append(latency_ms)
                if samples is not None:
                    samples.append(Sample(began, latency_ms, status, value, error))
                if interval:
                    next_at += interval
                    await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
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
        samples: list[Sample] | None = None,
    ) -> None:
        self.url = url
        self.concurrency = concurrency
        self.rate = rate
        self.record_key = record_key
        self.samples = samples
        self.result: LoadResult | None = None
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.result = self._loop.run_until_complete(
            run_load(
                self.url,
                self._stop,
                self.concurrency,
                self.rate,
                record_key=self.record_key,
                samples=self.samples,
            )
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
