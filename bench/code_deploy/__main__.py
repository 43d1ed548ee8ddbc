"""`python -m bench.code_deploy [--rounds N]`: code-only deploys of examples/hello, each
round one with the virtualenv reused and one built anew (`[build] reuse = false`, what
every deploy did before), in alternating order so the machine's noise lands on both alike.
Prints the table and writes it to bench/results/code_deploy.md. Run it under the shared
lock: `flock /tmp/slipway-heavy.lock python -m bench.code_deploy`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.zero_downtime.control import Operation, Slipway, app_env, app_toml, copy_hello
from bench.zero_downtime.procs import free_port

RESULTS = Path(__file__).resolve().parents[1] / "results"
VARIANTS = ("reused", "built anew")


@dataclass
class Variant:
    name: str
    app: str
    folder: Path
    port: int
    totals: list[float] = field(default_factory=list)
    builds: list[float] = field(default_factory=list)
    reused: int = 0

    def toml(self) -> str:
        text = app_toml(self.port, app_env("hello", 0)).replace(
            'name = "hello"', f'name = "{self.app}"'
        )
        if self.name == "built anew":
            text = text.replace("[build]\n", "[build]\nreuse = false\n", 1)
        return text


def deploy(slipway: Slipway, variant: Variant, round_number: int) -> None:
    """A code-only change (app.py gains a comment), then `slipway deploy`, timed around the
    CLI as a user waits for it."""
    with open(variant.folder / "app.py", "a") as app:
        app.write(f"# round {round_number}\n")
    variant.folder.joinpath("slipway.toml").write_text(variant.toml())
    started = time.monotonic()
    proc = slipway.cli("deploy", "--app", str(variant.folder), "--json")
    ended = time.monotonic()
    operation = Operation("deploy", started, ended, json.loads(proc.stdout))
    variant.totals.append(operation.seconds)
    variant.builds.append(operation.step_seconds("build"))
    release = operation.deployment["to_release"]
    log = slipway.home / "apps" / variant.app / "builds" / f"{release}.log"
    variant.reused += "reusing the virtualenv" in log.read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.code_deploy", description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="deploys of each; %(default)s")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="swcode-", dir="/tmp"))
    variants = [
        Variant(name, f"hello{n}", copy_hello(root / f"app{n}"), free_port())
        for n, name in enumerate(VARIANTS)
    ]
    slipway = Slipway(root, variants[0].folder, variants[0].port, boot_seconds=0)
    others_before = other_cpu()
    started = time.time()
    try:
        slipway.up()
        for variant in variants:  # the first deploy builds for both: not measured
            deploy(slipway, variant, 0)
            variant.totals, variant.builds, variant.reused = [], [], 0
        for n in range(1, args.rounds + 1):
            for variant in variants if n % 2 else reversed(variants):
                deploy(slipway, variant, n)
    finally:
        leftovers = slipway.down_all()
    text = report(variants, args.rounds, started, other_cpu() - others_before)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "code_deploy.md").write_text("# Code-only deploys\n\n" + text + "\n")
    if leftovers:
        print(f"processes left behind (killed): {leftovers}")
    return 1 if leftovers else 0


def other_cpu() -> float:
    """CPU seconds used so far by processes that are not this benchmark's."""
    mine = {os.getpid()}
    total = 0.0
    for proc in psutil.process_iter(["pid", "cpu_times", "cmdline"]):
        info = proc.info
        if info["pid"] in mine or not info["cpu_times"]:
            continue
        if any("swcode-" in part for part in info["cmdline"] or []):
            continue
        total += info["cpu_times"].user + info["cpu_times"].system
    return total


def report(variants: list[Variant], rounds: int, started: float, noise: float) -> str:
    reused, anew = variants
    elapsed = time.time() - started
    commit = subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True,
                            text=True).stdout.strip()  # fmt: skip
    ratio = statistics.median(reused.totals) / statistics.median(anew.totals)
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}; slipway {commit}",
        f"- machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}",
        f"- noise: other processes used {noise:.1f} CPU-seconds during the {elapsed:.0f} s run "
        f"({noise / elapsed:.0%} of one CPU)",
        f"- {rounds} code-only deploys of each (app.py changed, nothing else), alternating; "
        "2 web instances, gates off (bench/gates times them)",
        "",
        "| deploy | median total | max total | median build step | builds skipped |",
        "|---|---:|---:|---:|---:|",
    ]
    for v in variants:
        lines.append(
            f"| {v.name} | {statistics.median(v.totals):.2f} s | {max(v.totals):.2f} s | "
            f"{statistics.median(v.builds):.2f} s | {v.reused} of {len(v.totals)} |"
        )
    verdict = "PASS" if ratio <= 0.40 else "FAIL"
    lines += ["", f"Reused ÷ built anew (medians): **{ratio:.0%}** (target ≤ 40%): {verdict}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
