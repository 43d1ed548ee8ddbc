"""The traffic table: the load's requests per phase, against the steady state."""

from __future__ import annotations

from bench.zero_downtime.analysis import Timeline, Traffic, Window
from bench.zero_downtime.cpu import CpuMonitor
from bench.zero_downtime.measures import breakdown
from bench.zero_downtime.run import Results
from bench.zero_downtime.table import Table, lat, pct, ratio


def traffic_row(
    cpu: CpuMonitor, name: str, traffic: Traffic, steady: Traffic, naive: Traffic | None
) -> list[str]:
    return [
        name,
        str(traffic.requests),
        str(traffic.failed),
        lat(traffic.p50_ms),
        lat(traffic.p99_ms),
        lat(traffic.max_ms),
        ratio(traffic.p99_ms, steady.p99_ms),
        ratio(traffic.p99_ms, naive.p99_ms) if naive else "",
        lat(traffic.p99_sent_ms),
        lat(traffic.lag_p99_ms),
        pct(cpu.busy(traffic.windows)[0]),
    ]


def steady_name(system: str, windows: list[Window]) -> str:
    if len(windows) < 2:
        return f"{system}: steady state"
    return (
        f"{system}: steady state ({windows[0].seconds:.0f} s first, "
        f"{windows[1].seconds:.0f} s after each round)"
    )


def steady_parts(
    timeline: Timeline, windows: list[Window], steady: Traffic
) -> list[tuple[str, Traffic, Traffic, Traffic | None]]:
    """The steady state's first window and its slices between rounds: if they differ much,
    the machine's speed drifted during the run."""
    if len(windows) < 2:
        return []
    return [
        ("· before any deploy", timeline.traffic(windows[:1]), steady, None),
        ("· between rounds", timeline.traffic(windows[1:]), steady, None),
    ]


def traffic_table(results: Results) -> Table:
    s, b, cpu = results.slipway, results.baseline, results.cpu
    deploys = [Window("deploy", d.started, d.ended) for d in s.deploys]
    rollbacks = [Window("rollback", r.started, r.ended) for r in s.rollbacks]
    naive = [Window("naive", d.started, d.routed) for d in b.deploys]
    steady, naive_t = s.timeline.traffic(s.steady), b.timeline.traffic(naive)
    b_steady = b.timeline.traffic(b.steady)
    table = Table(
        "Traffic through HAProxy (latency in ms)",
        [
            "phase",
            "requests",
            "failed",
            "p50",
            "p99",
            "max",
            "p99 ÷ steady",
            "p99 ÷ naive deploys",
            "p99 from send",
            "send lag p99",
            "CPU busy",
        ],
    )
    rows: list[tuple[str, Traffic, Traffic, Traffic | None]] = [
        (steady_name("slipway", s.steady), steady, steady, None),
        *steady_parts(s.timeline, s.steady, steady),
        (
            f"slipway: during {len(s.status_calls)} `slipway status` calls (control)",
            s.timeline.traffic(s.status_calls),
            steady,
            None,
        ),
        (f"slipway: during {len(deploys)} deploys", s.timeline.traffic(deploys), steady, naive_t),
        *breakdown(s.timeline, s.deploys, steady, results),
        (
            f"slipway: during {len(rollbacks)} rollbacks",
            s.timeline.traffic(rollbacks),
            steady,
            naive_t,
        ),
        *breakdown(s.timeline, s.rollbacks, steady, results),
        ("slipway: whole session (incl. warm-up, boot timing)", s.timeline.whole(), steady, None),
        (
            "noise floor: HAProxy answers by itself (no app)",
            b.floor.traffic([b.floor_window]),
            steady,
            None,
        ),
        (steady_name("naive", b.steady), b_steady, b_steady, None),
        *steady_parts(b.timeline, b.steady, b_steady),
        (f"naive: during {len(naive)} stop-then-start deploys", naive_t, b_steady, None),
        ("naive: whole session (incl. warm-up)", b.timeline.whole(), b_steady, None),
    ]
    table.rows += [traffic_row(cpu, *row) for row in rows]
    table.notes.append(
        "A request belongs to a phase if it was due (by the fixed-rate schedule) between the "
        "CLI call and its return (naive: from SIGTERM until HAProxy has both new instances "
        "UP); rows marked · cut the deploys (then the rollbacks) at their recorded events. "
        "p50 / p99 / max count from when the request was due, so a held-up generator cannot "
        "hide a wait (no coordinated omission); `p99 from send` counts from when it was "
        "actually sent, and `send lag p99` is how late requests left. Failed requests count "
        "too (time until the error). The control row runs only `slipway status`: what "
        "starting the CLI costs the traffic on this machine. The noise floor runs the same "
        "load against HAProxy answering by itself: the machine's own jitter. CPU busy: the "
        "whole machine (every process, both CPUs), sampled every 0.1 s."
    )
    errors = {
        name: t.errors
        for name, t in (("slipway", s.timeline.whole()), ("naive", b.timeline.whole()))
        if t.errors
    }
    if errors:
        table.notes.append(f"Failures by kind: {errors}.")
    return table
