"""The run: a fleet (2 lb hosts holding a virtual address, 3 app hosts, a replica host, a
spare host for the control plane's restore) and a plain HAProxy beside it in front of the
same instances; a steady GET + POST load through each; then, one after the other, an app
host killed, an app host cut off, the control plane lost and restored, the lb host holding
the address cut off, and the one holding it then killed (with the baseline's HAProxy).
Every process, namespace and the bridge started here are stopped here, also on error."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.testbed import Bed

from bench.faults.baseline import PlainLb
from bench.faults.control import Marks, destroy, kept_mark, restore, restored_in
from bench.faults.record import ControlLoss, FaultWindow, Traffic
from bench.faults.vip import MoveWatch, holders
from bench.fleet.fleet import Fleet, FleetApp
from bench.zero_downtime.control import Slipway
from bench.zero_downtime.load import LoadProcess
from bench.zero_downtime.procs import Processes, free_port, wait_for
from bench.zero_downtime.run import REPO, pause, revision, say
from slipway.control.replicator import DEFAULT_EVERY

# Our own names and subnet: never the tests' or another benchmark's.
PREFIX, BRIDGE, SUBNET = "swbq-", "swbq0", "10.210.0"
VIP = f"{SUBNET}.100"
LBS, APP_HOSTS = ["lb1", "lb2"], ["app1", "app2", "app3"]
REPLICA, NEW_CONTROL = "rep1", "ctl2"


@dataclass(frozen=True)
class Options:
    get_rate: float = 60.0  # req/s through each fleet's front
    post_rate: float = 15.0
    get_concurrency: int = 6
    post_concurrency: int = 2  # also the most POSTs in flight on a host that dies
    steady_seconds: float = 10.0
    observe_seconds: float = 8.0  # after the address moved / the instances were replaced
    settle_seconds: float = 4.0
    replace_timeout: float = 45.0
    marks_seconds: float = 8.0  # changes made before the control plane is lost
    replicate_every: float = DEFAULT_EVERY  # slipway's default


QUICK = Options(
    get_rate=40.0,
    post_rate=10.0,
    steady_seconds=3.0,
    observe_seconds=4.0,
    settle_seconds=2.0,
    marks_seconds=4.0,
)


@dataclass
class Results:
    options: Options
    started_at: float
    revision: str
    setup_seconds: float = 0.0
    faults: list[FaultWindow] = field(default_factory=list)
    slipway: Traffic = field(default_factory=Traffic)
    baseline: Traffic = field(default_factory=Traffic)
    leftovers: list[str] = field(default_factory=list)
    seconds: float = 0.0


def kill_but_sshd(bed: Bed, name: str) -> None:
    """The lb host's every process but sshd: keepalived, HAProxy, the agent."""
    for pid in bed.pids(name):
        with contextlib.suppress(OSError):
            if "sshd" not in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)


class Bench:
    def __init__(self, options: Options, root: Path) -> None:
        self.o, self.root = options, root
        self.procs = Processes()
        testbed = Bed(root / "bed", subnet=SUBNET, prefix=PREFIX, bridge=BRIDGE)
        self.fleet = Fleet(root, LBS, APP_HOSTS, testbed, spare=(REPLICA, NEW_CONTROL))
        self.bed = self.fleet.bed
        self.app: FleetApp | None = None
        self.plain = PlainLb(self.procs, root / "baseline", f"{SUBNET}.1:{free_port()}")
        self.key_file = root / "replica.key"
        self.loads: dict[tuple[str, str], LoadProcess] = {}

    @property
    def slipway(self) -> Slipway:
        return self.fleet.slipway

    def json(self, *args: str) -> Any:
        return json.loads(self.slipway.cli(*args, "--json").stdout)

    def setup(self) -> None:
        self.fleet.up()
        self.fleet.add_host(REPLICA)  # no role: it keeps the control plane's replica
        self.app = self.fleet.add_app("hello", free_port(), len(APP_HOSTS), APP_HOSTS)
        self.fleet.deploy(self.app, "g1")
        self.slipway.cli("hosts", "vip", f"{VIP}/24")
        wait_for(lambda: len(holders(self.bed, LBS, VIP)) == 1, 30, "one lb host with the VIP")
        every = f"{self.o.replicate_every:g}s"
        turned_on = self.json("control", "replicate", "--to", REPLICA, "--every", every)
        self.key_file.write_text(turned_on["key"])
        self.key_file.chmod(0o600)
        self.plain.serve(self.servers())

    def servers(self) -> list[tuple[str, int]]:
        """The serving instances' addresses and ports, for the baseline's HAProxy."""
        listed = self.json("ps", "--app", "hello")
        return sorted(
            (self.bed.hosts[i["host"]].address, int(i["port"]))
            for i in listed
            if i["role"] == "serving"
        )

    def serving_hosts(self) -> list[str]:
        listed = self.json("ps", "--app", "hello")
        return sorted(i["host"] for i in listed if i["role"] == "serving")

    def state(self, host: str) -> str:
        return str(next(h["state"] for h in self.fleet.hosts() if h["name"] == host))

    def start_loads(self) -> None:
        assert self.app is not None
        fronts = {
            "slipway": f"http://{VIP}:{self.app.port}/",
            "baseline": f"http://{self.plain.bind}/",
        }
        for fleet, url in fronts.items():
            for method, rate, concurrency in (
                ("GET", self.o.get_rate, self.o.get_concurrency),
                ("POST", self.o.post_rate, self.o.post_concurrency),
            ):
                out = self.root / f"{fleet}-{method}.json"
                load = LoadProcess(self.procs, url, rate, concurrency, out, "httpx", method)
                self.loads[(fleet, method)] = load.start(dict(os.environ), REPO)

    def stop_loads(self, results: Results) -> None:
        for (fleet, method), load in self.loads.items():
            traffic = results.slipway if fleet == "slipway" else results.baseline
            samples = load.stop().samples
            (traffic.get if method == "GET" else traffic.post).extend(samples)

    def soft_wait(self, condition: Any, timeout: float, what: str) -> bool:
        try:
            wait_for(condition, timeout, what, every=0.3)
            return True
        except TimeoutError as exc:
            say(f"warning: {exc}")
            return False

    def lose_app_host(self, cause: str) -> FaultWindow:
        """`crash` (every process killed) or `cut` (its link down) a host serving an instance;
        the window lasts until the control plane has replaced its instances elsewhere."""
        host = self.serving_hosts()[-1]
        start = time.monotonic()
        getattr(self.bed, cause)(host)
        self.soft_wait(
            lambda: self.state(host) == "down"
            and len(hosts := self.serving_hosts()) == len(APP_HOSTS)
            and host not in hosts,
            self.o.replace_timeout,
            f"{host}'s instance replaced",
        )
        replaced = time.monotonic() - start
        pause(self.o.observe_seconds)
        end = time.monotonic()
        if cause == "crash":
            self.bed.reboot(host)
        else:
            self.bed.mend(host)
        self.soft_wait(lambda: self.state(host) == "up", 60, f"{host} up again")
        pause(self.o.settle_seconds)
        self.plain.serve(self.servers())  # the baseline in front of where they now run
        pause(self.o.settle_seconds)
        what = {"crash": "every process killed (sshd too)", "cut": "its link down"}[cause]
        say(f"app host {cause}: {host}, instance replaced after {replaced:.1f}s")
        return FaultWindow(
            f"app host {'killed' if cause == 'crash' else 'cut off'}",
            f"{host}: {what}; its instance serving again elsewhere after {replaced:.1f} s",
            start,
            end,
            baseline=True,
        )

    def lose_control(self) -> FaultWindow:
        old = self.slipway
        with Marks(old.home, "hello") as marks:
            pause(self.o.marks_seconds)
        start = time.monotonic()
        killed_at = destroy(old)
        new = restored_in(self.root / "restored", self.bed, NEW_CONTROL)
        began = time.monotonic()
        done = restore(new, self.bed, REPLICA, self.key_file)
        restore_seconds = time.monotonic() - began
        new.up()
        up_seconds = time.monotonic() - began
        self.fleet.slipway = new
        kept = kept_mark(new, "hello")
        made = dict(marks.made)
        kept_at = made[kept] if kept in made else marks.made[0][1]
        self.soft_wait(
            lambda: all(h["reachable"] for h in self.fleet.hosts()), 30, "every host to answer"
        )
        pause(self.o.observe_seconds)
        loss = ControlLoss(
            every=self.o.replicate_every,
            made=len(marks.made),
            kept=kept,
            lost_seconds=killed_at - kept_at if kept < len(marks.made) else 0.0,
            snapshot_age=killed_at - float(str(done["taken_at"])),
            restore_seconds=restore_seconds,
            up_seconds=up_seconds,
        )
        say(f"control plane restored in {up_seconds:.1f}s, {loss.lost} change(s) lost")
        return FaultWindow(
            "control plane lost",
            f"daemon killed (-9) and its home deleted; restored on {NEW_CONTROL} "
            f"(another address) from {REPLICA} (copies every {self.o.replicate_every:g} s): "
            f"restore {restore_seconds:.1f} s, restore + up {up_seconds:.1f} s, snapshot "
            f"{loss.snapshot_age:.2f} s old at the kill, {loss.made} changes made (one "
            "every 0.5 s)",
            start,
            time.monotonic(),
            baseline=False,
            control=loss,
        )

    def lose_lb(self, cause: str) -> FaultWindow:
        """The lb host holding the address: `cut` off, or `kill`ed (every process but sshd;
        the baseline's HAProxy with it)."""
        (holder,) = holders(self.bed, LBS, VIP)
        with MoveWatch(self.bed, LBS, VIP, holder) as watch:
            start = time.monotonic()
            if cause == "cut":
                self.bed.cut(holder)
            else:
                kill_but_sshd(self.bed, holder)
                self.plain.kill()
            moved = watch.wait(20)
        pause(self.o.observe_seconds)
        end = time.monotonic()
        if cause == "cut":
            self.bed.mend(holder)
            pause(self.o.settle_seconds)
        shown = "not seen" if moved is None else f"{moved - start:.2f}s"
        say(f"lb {cause}: {holder}, the address moved after {shown}")
        what = {"cut": "its link down", "kill": "keepalived, HAProxy and the agent killed"}
        return FaultWindow(
            f"lb {'killed' if cause == 'kill' else 'cut off'}",
            f"{holder} (holding the address): {what[cause]}"
            + ("; the baseline's HAProxy killed at the same moment" if cause == "kill" else ""),
            start,
            end,
            baseline=cause == "kill",
            vip_moved=moved,
        )

    def faults(self, results: Results) -> None:
        steady = pause(self.o.steady_seconds)
        results.faults.append(
            FaultWindow("none (steady)", "no fault", steady.start, steady.end, baseline=True)
        )
        results.faults.append(self.lose_app_host("crash"))
        results.faults.append(self.lose_app_host("cut"))
        results.faults.append(self.lose_control())
        results.faults.append(self.lose_lb("cut"))
        results.faults.append(self.lose_lb("kill"))


def run(options: Options) -> Results:
    root = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/tmp"))
    root.chmod(0o755)
    results = Results(options, time.time(), revision())
    began = time.monotonic()
    bench = Bench(options, root)
    try:
        bench.setup()
        results.setup_seconds = time.monotonic() - began
        say(f"fleet up in {results.setup_seconds:.1f}s; load through {VIP} and the baseline")
        bench.start_loads()
        bench.faults(results)
        bench.stop_loads(results)
    finally:
        bench.procs.stop_all()
        results.leftovers = bench.fleet.down()
        shutil.rmtree(root, ignore_errors=True)
    results.seconds = time.monotonic() - began
    return results
