"""The results as a table (Markdown, printed and written to bench/results/cache.md)."""

from __future__ import annotations

import os
import platform
import statistics

from bench.cache.run import KINDS, PATH, Results
from bench.machine import cpu_model


def machine() -> str:
    model = cpu_model()
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}"


def markdown(results: Results) -> str:
    lines = [
        f"`GET {PATH}` (`Cache-Control: public, max-age=60`, 1.9 KB) through HAProxy to one "
        f"examples/hello instance; wrk, {results.connections} connections, "
        f"{results.rounds} rounds of {results.seconds:g} s per configuration, alternating.",
        f"Machine: {machine()}; {results.haproxy}.",
        "",
        "| configuration | requests | req/s (median of rounds) | p50 ms | p99 ms (median) "
        "| p99 ms (worst round) | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        runs = results.runs[kind]
        if not runs:
            continue
        lines.append(
            f"| {kind} | {sum(r.requests for r in runs):,} "
            f"| {statistics.median(r.rps for r in runs):,.0f} "
            f"| {statistics.median(r.p50_ms for r in runs):.2f} "
            f"| {statistics.median(r.p99_ms for r in runs):.2f} "
            f"| {max(r.p99_ms for r in runs):.2f} | {sum(r.errors for r in runs)} |"
        )
    cached, plain = results.runs["cache"], results.runs["no cache"]
    if cached and plain:
        speedup = statistics.median(r.rps for r in cached) / statistics.median(r.rps for r in plain)
        lines += ["", f"With the cache: {speedup:.1f}× the requests per second."]
    if results.cache is not None:
        lines.append(
            f"HAProxy's counters for the cached app: {results.cache['hits']:,} hits of "
            f"{results.cache['lookups']:,} lookups ({results.cache['hit_ratio']:.2%})."
        )
    return "\n".join(lines) + "\n"
