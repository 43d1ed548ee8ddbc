"""The load: log lines as separate UDP datagrams to 127.0.0.1:PORT at a fixed rate, from a
process of its own. `python -m bench.ingest.sender --port P --rate R --seconds S --tag T`.

It builds its lines first, prints `ready`, waits for `go` on stdin (so the caller can start
its measurements right before the first datagram), sends, and prints one JSON line: lines
sent, send errors, how long sending took, how late it ever was against its schedule, and its
own CPU time. Line i is due at start + i / rate; each pass sends every line that is due, then
sleeps for a fraction of a millisecond, so bursts stay small (rate / 2000 lines) and a sender
held up by the machine catches up instead of silently sending less."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import time

from bench.ingest.lines import pool

HOST = "127.0.0.1"  # never anywhere else
TICK = 0.0005
PRIORITY = -10  # when allowed: the instrument should not be what gets starved


def send(port: int, rate: float, seconds: float, lines: list[bytes]) -> dict[str, float]:
    total = int(rate * seconds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((HOST, port))
    size = len(lines)
    sent = errors = 0
    max_lag = 0.0
    cpu0 = time.process_time()
    start = time.monotonic()
    while sent < total:
        now = time.monotonic()
        due = min(total, int((now - start) * rate) + 1)
        if due > sent:
            max_lag = max(max_lag, now - (start + sent / rate))
            for i in range(sent, due):
                try:
                    sock.send(lines[i % size])
                except OSError:
                    errors += 1
            sent = due
        time.sleep(TICK)
    elapsed = time.monotonic() - start
    sock.close()
    return {
        "sent": sent - errors,
        "errors": errors,
        "seconds": elapsed,
        "max_lag": max_lag,
        "cpu": time.process_time() - cpu0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest.sender")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--tag", required=True, help="names this step's apps")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with contextlib.suppress(OSError):
        os.nice(PRIORITY)
    lines = pool(args.tag, args.seed)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    result = send(args.port, args.rate, args.seconds, lines)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
