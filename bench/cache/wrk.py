"""One wrk run and what it printed. Parsing is pure (tested by hand on wrk 4.x output)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and non-2xx/3xx answers


def parse(text: str) -> Run:
    def latency(label: str) -> float:
        match = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if not match:
            raise ValueError(f"no {label}% latency in wrk's output:\n{text}")
        return float(match.group(1)) * UNITS[match.group(2)]

    done = re.search(r"(\d+) requests in ([\d.]+)(ms|s)", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not done or not rps:
        raise ValueError(f"unexpected wrk output:\n{text}")
    seconds = float(done.group(2)) * UNITS[done.group(3)] / 1000
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return Run(int(done.group(1)), seconds, float(rps.group(1)), latency("50"), latency("99"),
               errors)  # fmt: skip


def run(url: str, seconds: float, connections: int, threads: int = 1) -> Run:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    return parse(out)
