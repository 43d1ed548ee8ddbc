"""The run: for each rate, the floor and then slipway get the same lines from a sender process
of their own; a step is measured from the sender's first datagram to its last."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field

import psutil

from bench.ingest.targets import REPO, Daemon, Floor, Target, cpu_seconds, wakeups
from slipway.metrics.ingest import kernel_drops

IDLE_SECONDS = 3.0


@dataclass(frozen=True)
class Options:
    rates: tuple[int, ...] = (5_000, 10_000, 20_000, 40_000, 80_000)
    seconds: float = 10.0
    seed: int = 1
    quick: bool = False


@dataclass
class Step:
    target: str
    rate: int
    sent: int
    send_errors: int
    send_seconds: float  # the sender's first datagram to its last
    max_lag: float  # the latest the sender ever was against its schedule
    sender_cpu: float  # seconds
    counted: int  # recorded by slipway / counted by the floor
    kernel_drops: int  # the receive buffer was full
    recorded_losses: int | None  # losses the receiver recorded itself (slipway only)
    cpu: float  # the receiver's CPU seconds over the window
    window: float  # seconds (the caller's view of the sender's window)
    machine_busy: float  # all cores, seconds, over the window
    wakeups: int  # the receiver's voluntary context switches over the window
    settle_seconds: float  # the last datagram → everything counted

    @property
    def achieved(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.sent - self.counted

    @property
    def cpu_share(self) -> float:
        """The receiver's CPU over the window, as a fraction of one core."""
        return self.cpu / self.window

    @property
    def cpu_per_line(self) -> float:
        """Microseconds of the receiver's CPU per line counted."""
        return self.cpu / self.counted * 1e6 if self.counted else float("nan")

    @property
    def wakeups_per_1000(self) -> float:
        return self.wakeups / self.sent * 1000 if self.sent else float("nan")

    @property
    def others(self) -> float:
        """CPU taken by everything but the receiver and the sender, in cores."""
        return max(0.0, self.machine_busy - self.cpu - self.sender_cpu) / self.window

    @property
    def zero_loss(self) -> bool:
        return (
            self.lost == 0
            and self.kernel_drops == 0
            and not self.recorded_losses
            and self.send_errors == 0
        )


@dataclass
class Results:
    options: Options
    steps: list[Step] = field(default_factory=list)
    idle: dict[str, float] = field(default_factory=dict)  # target → CPU share with no traffic
    leftovers: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    finished: float = 0.0


def busy_seconds() -> float:
    times = psutil.cpu_times()
    fields: dict[str, float] = times._asdict()
    idle = fields.get("idle", 0.0) + fields.get("iowait", 0.0)
    total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
    return total - idle


def idle_share(target: Target) -> float:
    before, t0 = cpu_seconds(target.process), time.monotonic()
    time.sleep(IDLE_SECONDS)
    return (cpu_seconds(target.process) - before) / (time.monotonic() - t0)


def step(target: Target, rate: int, index: int, options: Options) -> Step:
    tag = f"s{index}"
    target.add_apps(tag)
    sender = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.ingest.sender", "--port", str(target.port)),
            *("--rate", str(rate), "--seconds", str(options.seconds)),
            *("--tag", tag, "--seed", str(options.seed)),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sender.stdin is not None and sender.stdout is not None
    try:
        if sender.stdout.readline().strip() != "ready":
            raise RuntimeError("the sender did not start")
        losses0 = target.losses()
        drops0 = kernel_drops(target.port)
        woken0 = wakeups(target.process)
        cpu0, busy0, t0 = cpu_seconds(target.process), busy_seconds(), time.monotonic()
        sender.stdin.write("go\n")
        sender.stdin.flush()
        report = json.loads(sender.stdout.readline())
        cpu1, busy1, t1 = cpu_seconds(target.process), busy_seconds(), time.monotonic()
        woken = wakeups(target.process) - woken0
        drops = kernel_drops(target.port) - drops0
        sender.wait(10)
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    counted = target.settle(tag)
    settled = time.monotonic() - t1
    recorded_losses = None
    if losses0 is not None:
        recorded_losses = (target.losses(losses0 + drops) or 0) - losses0
    return Step(
        target=target.name,
        rate=rate,
        sent=report["sent"],
        send_errors=report["errors"],
        send_seconds=report["seconds"],
        max_lag=report["max_lag"],
        sender_cpu=report["cpu"],
        counted=counted,
        kernel_drops=drops,
        recorded_losses=recorded_losses,
        cpu=cpu1 - cpu0,
        window=t1 - t0,
        machine_busy=busy1 - busy0,
        wakeups=woken,
        settle_seconds=settled,
    )


def run(options: Options, progress: bool = True) -> Results:
    results = Results(options)
    floor: Floor | None = None
    daemon: Daemon | None = None
    try:
        floor = Floor()
        daemon = Daemon()
        targets: list[Target] = [floor, daemon]
        for target in targets:
            results.idle[target.name] = idle_share(target)
        for index, rate in enumerate(options.rates):
            for target in targets:
                done = step(target, rate, index, options)
                results.steps.append(done)
                if progress:
                    print(
                        f"  {target.name:8} {rate:>7,} lines/s: sent {done.sent:,}, "
                        f"counted {done.counted:,}, lost {done.lost:,}, "
                        f"CPU {done.cpu_share:.0%} of a core",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for stoppable in (daemon, floor):
            if stoppable is None:
                continue
            try:
                results.leftovers += stoppable.stop()
            except Exception as exc:  # the other one is still to be stopped
                results.leftovers.append(f"stopping the {stoppable.name} failed: {exc}")
        results.finished = time.time()
    return results
