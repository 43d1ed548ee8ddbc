"""`python -m bench.ingest [--rates 5000,10000,…] [--seconds 10] [--quick]`: per-request log
lines at fixed rates into the real slipway daemon and into a bare counting receiver; prints
the results table and writes it to bench/results/ingest.md."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys

import psutil

from bench.ingest import report
from bench.ingest.run import Options, run
from bench.ingest.targets import REPO

RESULTS = REPO / "bench" / "results"
QUICK = Options(rates=(5_000, 20_000), seconds=3.0, quick=True)


def rates(text: str) -> tuple[int, ...]:
    values = tuple(int(float(v)) for v in text.split(",") if v.strip())
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("rates are positive numbers, comma-separated")
    return values


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="How many request log lines per second the daemon absorbs with zero loss.",
    )
    parser.add_argument(
        "--rates",
        type=rates,
        default=None,
        help=f"lines per second, comma-separated; default {','.join(map(str, defaults.rates))}",
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help=f"per rate; default {defaults.seconds:g}"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5k and 20k, 3 s each")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else defaults
    options = Options(
        rates=args.rates or base.rates,
        seconds=args.seconds or base.seconds,
        seed=args.seed,
        quick=args.quick,
    )
    if options.seconds <= 0:
        parser.error("--seconds must be positive")
    return options


def others_running() -> list[str]:
    """Other benchmarks running now (they share the machine)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "-m bench." in cmdline and "bench.ingest" not in cmdline:
            found.append(f"{proc.pid} {cmdline}")
    return found


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    # SIGTERM unwinds like Ctrl-C, so the daemon and the receivers are stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = "python -m bench.ingest " + shlex.join(argv if argv is not None else sys.argv[1:])
    busy = others_running()
    if busy:
        print(f"warning: other benchmarks are running: {'; '.join(busy)}", file=sys.stderr)
    results = run(options)
    text = report.render(results, command.strip())
    if busy:
        text += f"\n\nOther benchmarks were running at the start: {'; '.join(busy)}"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
