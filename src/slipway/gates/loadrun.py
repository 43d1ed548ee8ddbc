"""The performance gate's load, in a process of its own so the daemon's event loop and the
measurement never slow each other: `python -m slipway.gates.loadrun` reads a JSON plan as
the first line of stdin, then sends pairs until the plan's budget is spent or a line
`stop` (or the end of stdin) tells it to stop early.

Each worker holds a keep-alive connection to one candidate and one stable instance and, in
every round, sends them the same path back to back in a random order: a *pair*. Both
releases are measured at the same moments, so a noisy neighbour slows both, not one
(gates/pairtest.py judges the pairs).

stdout, one JSON object a line: every `batch` measured pairs
`{"pairs": [[c_ms, c_status, s_ms, s_status], ...], "no_answer": {side: {error: n}}}`
(status 0: no answer; without a stable release s_ms and s_status are null), in the order the
pairs completed; then `{"done": true, "seconds", "rate", "cpu", "pairs", "warmup"}`."""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slipway.loadgen import RAW_ERRORS, RawConnection

SIDES = ("candidate", "stable")
BATCH = 100  # pairs a line: how often the gate can look


@dataclass
class Batch:
    pairs: list[list[float | int | None]] = field(default_factory=list)
    no_answer: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"pairs": self.pairs, "no_answer": self.no_answer})


async def run(
    plan: dict[str, Any], stop: asyncio.Event, emit: Callable[[str], None]
) -> dict[str, Any]:
    ports = {side: plan[side] for side in SIDES if plan.get(side)}
    warmup, wanted = plan["warmup"], plan["warmup"] + plan["requests"]
    paths: list[str] = plan["paths"]
    timeout = plan.get("request_timeout", 10.0)
    batch_size = plan.get("batch", BATCH)
    issued = sent = measured = 0
    batch = Batch()

    async def worker(index: int) -> None:
        nonlocal issued, sent, measured, batch
        conns = {
            side: RawConnection(f"http://{p[index % len(p)]}/", timeout)
            for side, p in ports.items()
        }
        # Each request's bytes are made once, not in the loop that measures.
        requests = {side: [c.request_for(path) for path in paths] for side, c in conns.items()}
        try:
            while issued < wanted and not stop.is_set():
                number = issued
                issued += 1
                order = list(conns)
                random.shuffle(order)
                answers: dict[str, tuple[float, int, str | None]] = {}
                for side in order:
                    request = requests[side][number % len(paths)]
                    answers[side] = await _one(conns[side], request)
                sent += len(order)
                if number < warmup:
                    continue
                measured += 1
                batch.pairs.append(_row(answers))
                for side, (_, _, error) in answers.items():
                    if error is not None:
                        errors = batch.no_answer.setdefault(side, {})
                        errors[error] = errors.get(error, 0) + 1
                if len(batch.pairs) >= batch_size:
                    emit(batch.to_json())
                    batch = Batch()
        finally:
            for conn in conns.values():
                conn.close()

    cpu_before, began = _cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(plan["concurrency"])))
    if batch.pairs:
        emit(batch.to_json())
    seconds = time.perf_counter() - began
    return {
        "done": True,
        "seconds": round(seconds, 3),
        "rate": round(sent / seconds, 1),  # requests/s the generator achieved, both sides
        "cpu": round((_cpu_seconds() - cpu_before) / seconds, 3),  # its own share of a core
        "pairs": measured,
        "warmup": min(warmup, issued),
    }


async def _one(conn: RawConnection, request: bytes) -> tuple[float, int, str | None]:
    began = time.perf_counter()
    try:
        status, _ = await conn.get(request)
        error = None
    except RAW_ERRORS as exc:
        status, error = 0, type(exc).__name__
    return round((time.perf_counter() - began) * 1000, 4), status, error


def _row(answers: dict[str, tuple[float, int, str | None]]) -> list[float | int | None]:
    c_ms, c_status, _ = answers["candidate"]
    s_ms, s_status, _ = answers.get("stable", (None, None, None))
    return [c_ms, c_status, s_ms, s_status]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _watch_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A line `stop`, or the end of stdin (the gate gone), ends the load early."""
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    loop.call_soon_threadsafe(stop.set)


async def _main(plan: dict[str, Any]) -> None:
    stop = asyncio.Event()
    threading.Thread(
        target=_watch_stdin, args=(asyncio.get_running_loop(), stop), daemon=True
    ).start()

    def emit(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    emit(json.dumps(await run(plan, stop, emit)))


def main() -> None:
    plan = json.loads(sys.stdin.readline())
    asyncio.run(_main(plan))


if __name__ == "__main__":
    main()
