"""The open-loop load in its own process (the benchmark's own work never holds its event loop):
every request is sent when it is due by the ramp, whether or not earlier ones have been
answered, over a pool of keep-alive connections (slipway.loadgen's raw HTTP/1.1 client) that
grows as needed up to MAX_CONNECTIONS. A request's latency counts from when it was due, so a
wait for a connection, or a generator that fell behind, is not hidden (no coordinated
omission). At the end, every request to a JSON file.

    python -m bench.autoscale.load URL --ramp JSON --out FILE
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from bench.autoscale.ramp import Ramp
from bench.zero_downtime.load import READY, READY_NORMAL, raise_priority
from slipway.loadgen import RAW_ERRORS, RawConnection, RawProtocolError

MAX_CONNECTIONS = 512  # more waiting than this: the request waits for a connection (counted)
TIMEOUT = 10.0  # seconds from when a request was due until it counts as failed
# HAProxy closes a client connection idle for `timeout http-keep-alive` (10 s in slipway's
# config); a request written on it as it closes gets no answer. Clients avoid that race by
# not reusing connections idle for long: half of it here.
MAX_IDLE = 5.0


class Pool:
    def __init__(self, url: str) -> None:
        self.url = url
        self.idle: list[tuple[RawConnection, float]] = []  # oldest first, with when freed
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.opened = 0

    async def acquire(self) -> RawConnection:
        await self.slots.acquire()
        stale = time.monotonic() - MAX_IDLE
        while self.idle and self.idle[0][1] < stale:
            self.idle.pop(0)[0].close()
        if self.idle:
            return self.idle.pop()[0]  # the most recently used
        return self.new()

    def new(self) -> RawConnection:
        self.opened += 1
        return RawConnection(self.url, TIMEOUT)

    def release(self, connection: RawConnection) -> None:
        if connection.writer is not None:  # still open: kept for the next request
            self.idle.append((connection, time.monotonic()))
        self.slots.release()


# due, began (the generator got to it), sent (had a connection), done: monotonic; status,
# error; retried: its kept-alive connection was closed before any answer, and it was sent
# again once on a new connection (as browsers and HTTP libraries do for a GET)
Row = tuple[float, float, float, float, int, str | None, bool]
STALE = (RawProtocolError, ConnectionResetError, BrokenPipeError)


async def exchange(pool: Pool, connection: RawConnection) -> tuple[int, bool, RawConnection]:
    """(status, retried, the connection that answered: the one to give back to the pool)."""
    reused = connection.writer is not None
    try:
        status, _ = await connection.get()
        return status, False, connection
    except STALE as exc:
        closed_early = not isinstance(exc, RawProtocolError) or "without answering" in str(exc)
        if not (reused and closed_early):
            raise
    fresh = pool.new()  # in the same slot: the stale connection is closed already
    try:
        status, _ = await fresh.get()
    except BaseException:
        fresh.close()
        raise
    return status, True, fresh


async def request(pool: Pool, due: float, rows: list[Row]) -> None:
    status, error, began, retried = 0, None, time.monotonic(), False
    sent = began
    try:
        async with asyncio.timeout_at(due + TIMEOUT):  # the loop's clock is time.monotonic
            connection = await pool.acquire()
            sent = time.monotonic()
            try:
                status, retried, connection = await exchange(pool, connection)
            finally:
                pool.release(connection)  # a closed one only frees its slot
    except TimeoutError:
        error = "timeout"
    except RAW_ERRORS as exc:
        error = type(exc).__name__
    rows.append((due, began, sent, time.monotonic(), status, error, retried))


async def drive(url: str, ramp: Ramp, start: float) -> tuple[list[Row], int]:
    pool, rows = Pool(url), list[Row]()
    tasks: set[asyncio.Task[None]] = set()
    for offset in ramp.due():
        due = start + offset
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(request(pool, due, rows))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    for connection, _ in pool.idle:
        connection.close()
    return rows, pool.opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--ramp", required=True, help="the Ramp's fields, as JSON")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    ramp = Ramp(**json.loads(args.ramp))
    prioritised = raise_priority()
    print(READY if prioritised else READY_NORMAL, flush=True)
    start = time.monotonic() + 0.2
    rows, opened = asyncio.run(drive(args.url, ramp, start))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    data = {
        "start": start,
        "rows": rows,
        "connections": opened,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "prioritised": prioritised,
    }
    args.out.write_text(json.dumps(data))
    failed = sum(1 for r in rows if r[4] == 0 or r[4] >= 500)
    retried = sum(1 for r in rows if r[6])
    print(f"{len(rows)} requests, {failed} failed, {retried} retried, {opened} connections",
          file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
