"""`python -m bench.fleet [--quick]`: runs the fleet benchmark (root: it makes network
namespaces), prints the results table, writes it to bench/results/fleet.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from bench.fleet import report
from bench.fleet.run import QUICK, Options, run
from bench.zero_downtime.run import REPO

RESULTS = REPO / "bench" / "results"
Opts = TypeVar("Opts")
R = TypeVar("R")


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet",
        description="Fleet deploys: 2 lb hosts, 1 to 8 app hosts, on network namespaces.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (2 rounds, 1 sweep)")
    parser.add_argument(
        "--rounds", type=int, help=f"deploys + rollbacks under load ({defaults.rounds})"
    )
    parser.add_argument(
        "--sweep-rounds", type=int, help=f"deploys per fleet size ({defaults.sweep_rounds})"
    )
    parser.add_argument(
        "--rate", type=float, help=f"req/s through each lb host ({defaults.rate:g})"
    )
    args = parser.parse_args(argv)
    options = QUICK if args.quick else defaults
    given = {
        "rounds": args.rounds,
        "sweep_rounds": args.sweep_rounds,
        "rate": args.rate,
    }
    options = dataclasses.replace(options, **{k: v for k, v in given.items() if v is not None})
    if options.rounds < 1 or options.sweep_rounds < 1 or options.rate <= 0:
        parser.error("--rounds, --sweep-rounds and --rate must be positive")
    return options


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def run_as_root(name: str, bench: Callable[[Opts], R], options: Opts) -> R:
    """`bench(options)`, which makes network namespaces: root only (exit 2 otherwise);
    SIGTERM stops it as Ctrl-C does, after its cleanup (exit 130)."""
    if os.geteuid() != 0:
        print(f"{name} needs root: it makes network namespaces and a bridge", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return bench(options)
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        sys.exit(130)


def main(argv: list[str] | None = None) -> int:
    results = run_as_root("bench.fleet", run, parse(argv))
    tables = report.tables(results)
    print(report.render_text(results, tables))
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown = RESULTS / "fleet.md"
    markdown.write_text("# Fleet deploys\n\n" + report.render_markdown(results, tables))
    (RESULTS / "fleet.json").write_text(json.dumps(report.raw(results), indent=2))
    print(f"wrote {markdown.relative_to(REPO)} and fleet.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
