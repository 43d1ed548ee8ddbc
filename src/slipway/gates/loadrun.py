"""The performance gate's load, in a process of its own so the daemon's event loop and the
measurement never slow each other: `python -m slipway.gates.loadrun` reads a JSON plan on
stdin and prints one JSON result.

Each worker holds a keep-alive connection to one candidate and one stable instance and sends
them the same path in a random order, so both releases are measured under the same load at
the same moments: a noisy neighbour slows both, not one."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from slipway.loadgen import RAW_ERRORS, RawConnection

SIDES = ("candidate", "stable")


@dataclass
class Side:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # no answer, by exception type
    sent: int = 0

    def record(self, status: int, latency_ms: float, error: str | None, counted: bool) -> None:
        self.sent += 1
        if not counted:
            return
        if error is not None:
            self.errors[error] = self.errors.get(error, 0) + 1
        else:
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        self.latencies_ms.append(latency_ms)


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    ports = {side: plan[side] for side in SIDES if plan.get(side)}
    wanted = plan["warmup"] + plan["requests"]
    results = {side: Side() for side in ports}
    paths: list[str] = plan["paths"]
    timeout = plan.get("request_timeout", 10.0)
    issued = 0

    async def worker(index: int) -> None:
        nonlocal issued
        conns = {
            side: RawConnection(f"http://127.0.0.1:{p[index % len(p)]}/", timeout)
            for side, p in ports.items()
        }
        # Each request's bytes are made once, not in the loop that measures.
        requests = {side: [c.request_for(path) for path in paths] for side, c in conns.items()}
        try:
            while issued < wanted:
                number = issued
                issued += 1
                order = list(conns)
                random.shuffle(order)
                for side in order:
                    request = requests[side][number % len(paths)]
                    await _one(conns[side], request, results[side], number)
        finally:
            for conn in conns.values():
                conn.close()

    async def _one(conn: RawConnection, request: bytes, side: Side, number: int) -> None:
        began = time.perf_counter()
        try:
            status, _ = await conn.get(request)
            error = None
        except RAW_ERRORS as exc:
            status, error = 0, type(exc).__name__
        side.record(status, (time.perf_counter() - began) * 1000, error, number >= plan["warmup"])

    cpu_before, began = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(plan["concurrency"])))
    seconds = time.perf_counter() - began
    sent = sum(s.sent for s in results.values())
    return {
        "seconds": round(seconds, 3),
        "rate": round(sent / seconds, 1),  # requests/s the generator achieved, both sides
        "cpu": round((_cpu_seconds() - cpu_before) / seconds, 3),  # its own share of a core
        **{side: vars(result) for side, result in results.items()},
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    plan = json.load(sys.stdin)
    json.dump(asyncio.run(run(plan)), sys.stdout)


if __name__ == "__main__":
    main()
