"""`python -m bench.history [--hours 24] [--rounds 4] [--quick]`: fills a throwaway slipway
home with simulated traffic for 10 apps through the daemon's own write path, measures the
store on disk, a real daemon's memory and the time it takes to answer chart queries over its
TCP listener; prints the results table and writes it to bench/results/history.md."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys

import psutil

from bench.history import report
from bench.history.daemon import REPO
from bench.history.run import Options, run

RESULTS = REPO / "bench" / "results"
QUICK = Options(hours=2.0, rounds=3, profile_runs=5, quick=True)  # 2 h: a whole hour to tile


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.history",
        description="The embedded metrics store after a day of traffic for 10 apps.",
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=None,
        help=f"simulated hours; default {defaults.hours:g} ({QUICK.hours:g} with --quick)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"warm query rounds, each every app × every kind; default {defaults.rounds} "
        f"({QUICK.rounds} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke run: {QUICK.hours:g} simulated hours"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else defaults
    options = Options(
        hours=args.hours or base.hours,
        rounds=args.rounds or base.rounds,
        days=base.days,
        profile_runs=base.profile_runs,
        seed=args.seed,
        quick=args.quick,
    )
    if not 0.25 <= options.hours <= 24 * 7:
        parser.error("--hours must be between 0.25 and 168")
    if options.rounds < 1:
        parser.error("--rounds must be positive")
    return options


def others_running() -> list[str]:
    """Other benchmarks running now (they share the machine)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "-m bench." in cmdline and "bench.history" not in cmdline:
            found.append(f"{proc.pid} {cmdline}")
    return found


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # SIGTERM unwinds like Ctrl-C: the daemons are stopped and the home deleted on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = argv if argv is not None else sys.argv[1:]
    command = ("python -m bench.history " + shlex.join(args)).strip()
    busy = others_running()
    if busy:
        print(f"warning: other benchmarks are running: {'; '.join(busy)}", file=sys.stderr)
    results = run(options)
    text = report.render(results, command, busy)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "history.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
