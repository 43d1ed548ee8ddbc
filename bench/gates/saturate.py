"""The host at peak: as much traffic as the machine can serve, through HAProxy, from a
process of its own at normal priority (it is the users, not the instrument).

    python -m bench.gates.saturate URL --concurrency C [--rate R] --max-seconds S

Sends requests until its stdin closes (the benchmark is done or gone) or `--max-seconds`
have passed, whichever is first; then prints one JSON line: requests, failures, seconds,
p50 and p99 latency."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading

from slipway.loadgen import run_load


async def _run(url: str, concurrency: int, rate: float | None, max_seconds: float) -> str:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.call_later(max_seconds, stop.set)

    def watch_stdin() -> None:
        sys.stdin.read()  # until the benchmark closes it
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, daemon=True).start()
    print("started", flush=True)
    result = await run_load(url, stop, concurrency, rate, client="raw")
    return json.dumps(
        {
            "requests": result.sent,
            "failed": result.failed,
            "seconds": round(result.seconds, 3),
            "p50_ms": round(result.quantile(0.5), 3),
            "p99_ms": round(result.quantile(0.99), 3),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()
    print(asyncio.run(_run(args.url, args.concurrency, args.rate, args.max_seconds)), flush=True)


if __name__ == "__main__":
    main()
