"""`python -m bench.faults [--quick]`: the fleet's faults under load (root: it makes network
namespaces), prints the tables, writes bench/results/faults.md."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bench.faults import report
from bench.faults.run import QUICK, Options, run
from bench.fleet.__main__ import RESULTS, run_as_root
from bench.zero_downtime.run import REPO


def parse(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults",
        description="Faults of a fleet under load through its virtual address, and a baseline.",
    )
    parser.add_argument("--quick", action="store_true", help="shorter windows, lighter load")
    parser.add_argument(
        "--replicate-every",
        type=float,
        help=f"the control plane's copy interval, seconds ({Options().replicate_every:g})",
    )
    args = parser.parse_args(argv)
    options = QUICK if args.quick else Options()
    if args.replicate_every is not None:
        if args.replicate_every < 0.5:
            parser.error("--replicate-every: at least 0.5")
        options = dataclasses.replace(options, replicate_every=args.replicate_every)
    return options


def main(argv: list[str] | None = None) -> int:
    results = run_as_root("bench.faults", run, parse(argv))
    tables = report.tables(results)
    print(report.render_text(results, tables))
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown = RESULTS / "faults.md"
    markdown.write_text("# Fleet faults\n\n" + report.render_markdown(results, tables))
    print(f"wrote {markdown.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
