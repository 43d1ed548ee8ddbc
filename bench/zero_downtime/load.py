"""The load generator in its own process (so the benchmark's own work never holds its event
loop): slipway.loadgen at a fixed rate until its stdin closes, then every sample to a file.

    python -m bench.zero_downtime.load URL --rate R --concurrency C --out FILE [--client raw]
        [--method POST]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.zero_downtime.procs import Processes
from slipway.loadgen import BackgroundLoad, Sample

READY = "load started"
READY_NORMAL = "load started at normal priority"
# The measuring instrument must not be what is starved: it runs ahead of everything else on
# the machine (if allowed to); HAProxy, the app and slipway keep their ordinary priority.
PRIORITY = -10


def raise_priority() -> bool:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class LoadRun:
    samples: list[Sample]
    seconds: float
    cpu_seconds: float  # the load generator's own CPU time (user + system)
    prioritised: bool  # it ran at PRIORITY (nice) rather than the ordinary priority

    @property
    def cpu_share(self) -> float:
        """Of one CPU, on average."""
        return self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


class LoadProcess:
    """`start()` the load against `url`; `stop()` returns every request as a `Sample`, with
    times on this machine's monotonic clock (the same clock as the benchmark's)."""

    def __init__(
        self,
        procs: Processes,
        url: str,
        rate: float,
        concurrency: int,
        out: Path,
        client: str = "raw",
        method: str = "GET",
    ) -> None:
        self.procs = procs
        self.argv = [
            sys.executable,
            "-m",
            "bench.zero_downtime.load",
            url,
            "--rate",
            str(rate),
            "--concurrency",
            str(concurrency),
            "--out",
            str(out),
            "--client",
            client,
            "--method",
            method,
        ]
        self.out = out
        self.proc: subprocess.Popen[str] | None = None
        self.prioritised = False

    def start(self, env: dict[str, str], cwd: Path) -> LoadProcess:
        self.proc = self.procs.spawn(
            self.argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line not in (READY, READY_NORMAL):
            raise RuntimeError(f"the load generator did not start: {line!r}")
        self.prioritised = line == READY
        return self

    def stop(self) -> LoadRun:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.procs.stop(self.proc)
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load generator exited with {self.proc.returncode}")
        data = json.loads(self.out.read_text())
        samples = [Sample(*row) for row in data["samples"]]
        return LoadRun(
            samples, float(data["seconds"]), float(data["cpu_seconds"]), self.prioritised
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--method", choices=["GET", "POST"], default="GET")
    args = parser.parse_args()
    prioritised = raise_priority()
    samples: list[Sample] = []
    load = BackgroundLoad(
        args.url,
        args.concurrency,
        args.rate,
        record_key="release",
        samples=samples,
        client=args.client,
        method=args.method,
    ).start()
    print(READY if prioritised else READY_NORMAL, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    result = load.stop()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rows = [[s.t, s.latency_ms, s.status, s.value, s.error, s.lag_ms] for s in samples]
    data = {
        "samples": rows,
        "seconds": result.seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    args.out.write_text(json.dumps(data))
    print(result.summary(), flush=True)


if __name__ == "__main__":
    main()
