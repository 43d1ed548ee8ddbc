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
from slipway.loadgen import RAW_ERRORS, RawConnection

MAX_CONNECTIONS = 512  # more waiting than this: the request waits for a connection (counted)
TIMEOUT = 10.0  # seconds from when a request was due until it counts as failed


class Pool:
    def __init__(self, url: str) -> None:
        self.url = url
        self.idle: list[RawConnection] = []
        self.slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self.opened = 0

    async def acquire(self) -> RawConnection:
        await self.slots.acquire()
        if self.idle:
            return self.idle.pop()
        self.opened += 1
        return RawConnection(self.url, TIMEOUT)

    def release(self, connection: RawConnection) -> None:
        if connection.writer is not None:  # still open: kept for the next request
            self.idle.append(connection)
        self.slots.release()


# due, began (the generator got to it), sent (had a connection), done: monotonic; status, error
Row = tuple[float, float, float, float, int, str | None]


async def request(pool: Pool, due: float, rows: list[Row]) -> None:
    status, error, began = 0, None, time.monotonic()
    sent = began
    try:
        async with asyncio.timeout_at(due + TIMEOUT):  # the loop's clock is time.monotonic
            connection = await pool.acquire()
            sent = time.monotonic()
            try:
                status, _ = await connection.get()
            finally:
                pool.release(connection)
    except TimeoutError:
        error = "timeout"
    except RAW_ERRORS as exc:
        error = type(exc).__name__
    rows.append((due, began, sent, time.monotonic(), status, error))


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
    for connection in pool.idle:
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
    print(f"{len(rows)} requests, {failed} failed, {opened} connections", file=sys.stderr)


if __name__ == "__main__":
    main()
