"""A small HTTP load generator (asyncio; httpx, or a minimal raw HTTP/1.1 client) for the
demo, tests and benchmarks.

It keeps `concurrency` requests in flight (optionally capped at `rate` per second) and
records every outcome: a request fails if it gets no response or a 5xx. Given a `samples`
list, it also appends one `Sample` per request, so a benchmark can split the load into
phases by time and tell which release answered each request."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx


@dataclass(frozen=True, slots=True)
class Sample:
    """One request: when it was sent (time.monotonic()), how long it took, its HTTP status
    (0: no response), the `record_key` field of its answer (None if not recorded), and, at a
    fixed rate, how late it was sent against its schedule (a generator that falls behind
    catches up; `lag_ms` keeps the wait it caused visible)."""

    t: float
    latency_ms: float
    status: int
    value: str | None = None
    error: str | None = None
    lag_ms: float = 0.0

    @property
    def scheduled(self) -> float:
        """When the request was due, on the same clock as `t`."""
        return self.t - self.lag_ms / 1000

    @property
    def total_ms(self) -> float:
        """Latency counted from when the request was due (no coordinated omission)."""
        return self.latency_ms + self.lag_ms

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


Fetch = Callable[[], Awaitable[tuple[int, bytes]]]


async def run_load(
    url: str,
    stop: asyncio.Event,
    concurrency: int = 8,
    rate: float | None = None,
    timeout: float = 10.0,
    record_key: str | None = None,
    samples: list[Sample] | None = None,
    client: str = "httpx",
    method: str = "GET",
) -> LoadResult:
    """Send requests until `stop` is set. `record_key` counts a JSON field of the answers;
    `samples`, if given, gets one `Sample` per request. `client="raw"` sends them with
    `RawConnection` instead of httpx: the same requests for a fifth of the CPU. `method`:
    GET, or e.g. POST (with an empty body) for requests that are not idempotent."""
    result = LoadResult(started=time.monotonic())
    interval = concurrency / rate if rate else 0.0
    drive = _Drive(result, stop, concurrency, interval, record_key, samples)
    if client == "raw":
        connections = [RawConnection(url, timeout, method) for _ in range(concurrency)]
        try:
            await drive.run([c.get for c in connections], RAW_ERRORS)
        finally:
            for connection in connections:
                connection.close()
    else:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:

            async def fetch() -> tuple[int, bytes]:
                response = await http.request(method, url)
                return response.status_code, response.content

            await drive.run([fetch] * concurrency, (httpx.HTTPError,))
    result.ended = time.monotonic()
    return result


@dataclass
class _Drive:
    """The workers: each sends one request at a time, on its own fixed schedule if any."""

    result: LoadResult
    stop: asyncio.Event
    concurrency: int
    interval: float
    record_key: str | None
    samples: list[Sample] | None

    async def run(self, fetches: list[Fetch], errors: tuple[type[Exception], ...]) -> None:
        await asyncio.gather(*(self.worker(i, f, errors) for i, f in enumerate(fetches)))

    async def worker(self, index: int, fetch: Fetch, errors: tuple[type[Exception], ...]) -> None:
        result, interval = self.result, self.interval
        # Workers are staggered across the interval, so a fixed rate is an even stream
        # rather than every worker's request at once.
        next_at = result.started + index * interval / self.concurrency
        if interval:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        while not self.stop.is_set():
            began = time.monotonic()
            status, value, error = 0, None, None
            try:
                status, body = await fetch()
                result.statuses[status] += 1
                if self.record_key:  # from failed answers too, when they say it
                    value = _field(body, self.record_key)
                if status >= 500:
                    result.failed += 1
                elif value is not None:
                    result.bodies[value] += 1
            except errors as exc:
                status, error = 0, type(exc).__name__
                result.failed += 1
                result.errors[error] += 1
            latency_ms = (time.monotonic() - began) * 1000
            result.sent += 1
            result.latencies_ms.append(latency_ms)
            if self.samples is not None:
                lag_ms = max(0.0, began - next_at) * 1000 if interval else 0.0
                self.samples.append(Sample(began, latency_ms, status, value, error, lag_ms))
            if interval:
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def _field(body: bytes, key: str) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return str(data.get(key)) if isinstance(data, dict) and key in data else None


class RawProtocolError(Exception):
    """The answer was not the simple HTTP/1.1 this client understands."""


RAW_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncio.IncompleteReadError,
    RawProtocolError,
)


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for GET `url` (or `method` with an empty body;
    plain http; bodies by Content-Length, chunked, or until close). A load generator shares
    the machine with what it measures: this one takes a fifth of the CPU httpx takes per
    request."""

    def __init__(self, url: str, timeout: float, method: str = "GET") -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"RawConnection speaks plain http only, not {url}")
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.netloc = parts.netloc
        self.method = method
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.request = self.request_for(target)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def request_for(self, target: str) -> bytes:
        body = "" if self.method == "GET" else "Content-Length: 0\r\n"
        return (
            f"{self.method} {target} HTTP/1.1\r\nHost: {self.netloc}\r\n"
            f"User-Agent: slipway-loadgen\r\nAccept: */*\r\n{body}\r\n"
        ).encode()

    async def get(self, request: bytes | None = None) -> tuple[int, bytes]:
        """GET the URL given at creation, or send `request` (from request_for) instead."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(request or self.request)
        except BaseException:
            self.close()  # a broken or half-read connection is never reused
            raise

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        line = await self.reader.readline()
        if not line:
            raise RawProtocolError("the server closed the connection without answering")
        try:
            status = int(line.split()[1])
        except (IndexError, ValueError):
            raise RawProtocolError(f"not an HTTP status line: {line[:80]!r}") from None
        length, close, chunked = None, False, False
        while (header := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, raw_value = header.partition(b":")
            name, raw_value = name.strip().lower(), raw_value.strip().lower()
            if name == b"content-length":
                length = int(raw_value)
            elif name == b"connection":
                close = raw_value == b"close"
            elif name == b"transfer-encoding":
                chunked = b"chunked" in raw_value
        if chunked:
            body = await self._chunks()
        elif length is not None:
            body = await self.reader.readexactly(length)
        elif close:
            body = await self.reader.read()  # the body ends when the connection does
        else:
            raise RawProtocolError("an answer without Content-Length on a kept-alive connection")
        if close:
            self.close()
        return status, body

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        body = bytearray()
        while True:
            size_line = await self.reader.readline()
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise RawProtocolError(f"bad chunk size {size_line[:40]!r}") from None
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b""):
                    pass  # trailers
                return bytes(body)
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class BackgroundLoad:
    """Load from a thread, for synchronous tests: `with BackgroundLoad(url) as load: ...`."""

    def __init__(
        self,
        url: str,
        concurrency: int = 8,
        rate: float | None = None,
        record_key: str | None = None,
        samples: list[Sample] | None = None,
        client: str = "httpx",
        method: str = "GET",
    ) -> None:
        self.url = url
        self.method = method
        self.concurrency = concurrency
        self.rate = rate
        self.record_key = record_key
        self.samples = samples
        self.client = client
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
                client=self.client,
                method=self.method,
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
