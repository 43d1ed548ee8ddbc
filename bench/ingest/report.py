"""The results as Markdown: one row per rate, slipway beside the floor, and the verdict."""

from __future__ import annotations

import math
import os
import platform
import socket
import subprocess
import time

from bench.ingest.lines import APPS, INSTANCES, MEDIAN_MS, OUTCOMES
from bench.ingest.run import Results, Step
from bench.ingest.targets import REPO
from bench.machine import cpu_model
from slipway.metrics.ingest import RECEIVE_BUFFER, udp_socket

TARGET_RATE = 20_000
TARGET_CPU = 0.5  # of one core
INGEST_PATH = ("src/slipway/metrics/", "src/slipway/store/traffic.py", "src/slipway/daemon/")
KEPT_SCHEDULE = 0.99  # a step counts at its nominal rate if the sender achieved this much of it


def machine() -> str:
    model = cpu_model()
    return (
        f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def revision() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.rstrip()  # porcelain lines start with a space: keep it

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    files = sorted({ln[3:] for ln in git("status", "--porcelain").splitlines()})
    if not files:
        return head
    # the files on the ingest path are named: they are what this run measured
    named = [f for f in files if f.startswith(INGEST_PATH)]
    listed = ", ".join(named) or "none on the ingest path"
    return f"{head} + {len(files)} uncommitted files ({listed})"


def mix() -> str:
    releases = sum(len(rels) for _, rels in APPS.values())
    failed = sum(w for status, state, w in OUTCOMES if status >= 500 or state[0] == "S")
    aborted = sum(w for _, state, w in OUTCOMES if state[0] == "C")
    return (
        f"{len(APPS)} apps, {releases} releases, {releases * INSTANCES} instances; "
        f"{failed:.1%} 5xx or failed connections, {aborted:.1%} client aborts; lognormal "
        f"latencies, median {MEDIAN_MS:g} ms; varied methods, paths, clients"
    )


def receive_buffer() -> str:
    with udp_socket(0) as sock:
        actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    return f"{actual / 2**20:.0f} MiB (asked {RECEIVE_BUFFER / 2**20:.0f} MiB)"


def pct(share: float) -> str:
    return f"{share:.1%}" if share < 0.1 else f"{share:.0%}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}×" if b > 0 else "–"


def us(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1f}"


def loss(s: Step) -> str:
    text = f"{s.lost:,}"
    if s.kernel_drops:
        text += f" (kernel dropped {s.kernel_drops:,})"
    if s.send_errors:
        text += f" ({s.send_errors:,} send errors)"
    return text


def kept_schedule(s: Step) -> bool:
    return s.achieved >= KEPT_SCHEDULE * s.rate


def passes(s: Step) -> bool:
    return s.zero_loss and s.cpu_share < TARGET_CPU and kept_schedule(s)


def pairs(results: Results) -> list[tuple[Step, Step]]:
    floor = {s.rate: s for s in results.steps if s.target == "floor"}
    return [(floor[s.rate], s) for s in results.steps if s.target == "slipway" and s.rate in floor]


def absorbed(steps: list[Step]) -> float:
    """The highest achieved rate with zero loss at it and at every lower rate."""
    best = 0.0
    for s in sorted(steps, key=lambda s: s.rate):
        if not s.zero_loss:
            break
        best = max(best, s.achieved)
    return best


def verdict(results: Results) -> tuple[bool, str]:
    """The target: a rate of at least 20,000 lines/s absorbed with zero loss, and every lower
    rate too, with the daemon under half a core at it."""
    ours = sorted((s for _, s in pairs(results)), key=lambda s: s.rate)
    meeting = []
    for s in ours:
        if s.rate >= TARGET_RATE and passes(s):
            meeting.append(s)
        if not s.zero_loss:
            break
    ok = bool(meeting)
    if ok:
        best = max(meeting, key=lambda s: s.rate)
        why = f"{best.achieved:,.0f} lines/s with zero loss at {pct(best.cpu_share)} of one core"
    else:
        at = [s for s in ours if s.rate >= TARGET_RATE]
        why = (
            f"at {at[0].achieved:,.0f} lines/s: lost {at[0].lost:,}, "
            f"{pct(at[0].cpu_share)} of one core"
            if at
            else f"no step at {TARGET_RATE:,} lines/s or more"
        )
    return ok, why


def others(results: Results) -> tuple[float, float]:
    """Mean and max CPU (in cores) of everything but the receiver and the sender."""
    values = [s.others for s in results.steps] or [0.0]
    return sum(values) / len(values), max(values)


def table(results: Results) -> list[str]:
    lines = [
        "| rate (lines/s) | achieved | lines sent | slipway: lost | slipway: CPU | "
        f"floor: lost | floor: CPU | CPU slipway / floor | slipway: 0 lost, < {TARGET_CPU:.0%} "
        "of a core |",
        "|" + "---:|" * 8 + "---|",
    ]
    for floor, ours in pairs(results):
        recorded = ours.recorded_losses
        lost = loss(ours) + (f"; daemon recorded {recorded:,} lost" if recorded else "")
        target = "yes" if passes(ours) else "no"
        if not ours.zero_loss:
            target += ": lost lines"
        elif ours.cpu_share >= TARGET_CPU:
            target += ": CPU"
        elif not kept_schedule(ours):
            target += ": the sender fell behind"
        lines.append(
            f"| {ours.rate:,} | {ours.achieved:,.0f} | {ours.sent:,} | {lost} | "
            f"{pct(ours.cpu_share)} | {loss(floor)} | {pct(floor.cpu_share)} | "
            f"{ratio(ours.cpu_share, floor.cpu_share)} | {target} |"
        )
    return lines


def details(results: Results) -> list[str]:
    lines = [
        "| rate (lines/s) | µs CPU per line: slipway | floor | wakeups per 1,000 lines: "
        "slipway | floor | slipway recorded all after | sender behind schedule (max) | "
        "others' CPU |",
        "|" + "---:|" * 8,
    ]
    for floor, ours in pairs(results):
        lag = max(floor.max_lag, ours.max_lag)
        others = (floor.others + ours.others) / 2
        lines.append(
            f"| {ours.rate:,} | {us(ours.cpu_per_line)} | {us(floor.cpu_per_line)} | "
            f"{ours.wakeups_per_1000:.0f} | {floor.wakeups_per_1000:.0f} | "
            f"{ours.settle_seconds:.2f} s | {lag * 1000:.1f} ms | {others:.2f} cores |"
        )
    return lines


def render(results: Results, command: str) -> str:
    ok, why = verdict(results)
    ps = pairs(results)
    sender_cpu = max((s.sender_cpu / s.window for p in ps for s in p), default=0.0)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.started))
    lines = [
        "# Per-request log ingest",
        "",
        f"- date: {started}, {results.finished - results.started:.0f} s",
        f"- machine: {machine()}",
        f"- command: `{command}`",
        f"- revision: {revision()}",
        f"- load: {results.options.seconds:g} s per rate and receiver, one UDP datagram per "
        f"line to 127.0.0.1 from a sender process of its own ({mix()}); receive buffer "
        f"{receive_buffer()}",
        f"- sender: at most {pct(sender_cpu)} of a core; the daemon's apps have their folders, "
        "so it writes their request logs as for deployed apps",
        f"- other work on the machine during the windows: mean {others(results)[0]:.2f}, max "
        f"{others(results)[1]:.2f} cores (of {os.cpu_count()})",
        f"- idle (no traffic): slipway {pct(results.idle.get('slipway', 0.0))} of a core, "
        f"floor {pct(results.idle.get('floor', 0.0))}",
        f"- target: ≥ {TARGET_RATE:,} lines/s with zero loss, daemon < "
        f"{TARGET_CPU:.0%} of one core: **{'PASS' if ok else 'FAIL'}** ({why})",
        f"- highest rate absorbed with zero loss (and at every lower rate): slipway "
        f"{absorbed([s for _, s in ps]):,.0f} lines/s, floor "
        f"{absorbed([f for f, _ in ps]):,.0f} lines/s (of the rates tried)",
        "",
        *table(results),
        "",
        "Lost: lines sent but not recorded in `traffic` (slipway) or not counted (floor); "
        "kernel drops are read from /proc/net/udp for the receiver's socket. CPU: the "
        "receiving process's user + system time over the sender's window, in % of one core "
        "(the kernel's work of delivering on loopback is mostly charged to the sender).",
        "",
        *details(results),
        "",
        "µs CPU per line: the receiver's CPU over the window / lines it took in. Wakeups: "
        "its voluntary context switches (the event loop slept, then a datagram woke it); a "
        "receiver that keeps up sleeps between the sender's bursts and pays for a wakeup "
        "every few lines, which is most of the cost per line at low rates. "
        "Recorded all after: from the last datagram until slipway had recorded everything "
        "(a second is flushed 0.25 s after it ends, every 0.25 s). Others' CPU: the whole "
        "machine's busy time minus the receiver's and the sender's (mean of both windows).",
        "",
        "The floor sets glibc's mmap threshold to 1 MiB: asyncio reads each datagram into a "
        "fresh 256 KiB buffer, which a young process's allocator maps and unmaps for every "
        "datagram (three system calls: more than doubled the floor's CPU here); the daemon's "
        "threshold has been raised by its own history, so it does not pay this.",
    ]
    if results.leftovers:
        lines.append(f"\nKilled after `slipway down --all`: {'; '.join(results.leftovers)}")
    return "\n".join(lines)
