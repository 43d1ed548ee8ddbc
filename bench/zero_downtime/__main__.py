"""`python -m bench.zero_downtime [--rounds N] [--rate R] [--concurrency C]`: runs the
benchmark, prints the results table, writes it to bench/results/zero_downtime.md."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.zero_downtime import report
from bench.zero_downtime.run import REPO, Options, run

RESULTS = REPO / "bench" / "results"


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.zero_downtime",
        description="Zero-downtime deploys: slipway vs a naive stop-then-start, under load.",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="deploys (and as many rollbacks); default %(default)s",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help="requests per second, fixed; default %(default)s",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="connections of the load generator; default %(default)s",
    )
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=defaults.steady_seconds,
        help="steady state measured before any deploy; default %(default)s",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=defaults.quiet_seconds,
        help="steady state measured again after every round; default %(default)s",
    )
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=defaults.settle_seconds,
        help="pause between operations; default %(default)s",
    )
    parser.add_argument(
        "--boot-runs",
        type=int,
        default=defaults.boot_runs,
        help="direct starts of the app to time its boot; default %(default)s",
    )
    parser.add_argument(
        "--boot-seconds",
        type=float,
        default=defaults.boot_seconds,
        help="the app's BOOT_SECONDS (a slow boot); default %(default)s",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default=defaults.client,
        help="the load generator's HTTP client (raw: a fifth of httpx's CPU); default %(default)s",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.rate <= 0 or args.concurrency < 1 or args.boot_runs < 1:
        parser.error("--rounds, --rate, --concurrency and --boot-runs must be positive")
    return Options(
        rounds=args.rounds,
        rate=args.rate,
        concurrency=args.concurrency,
        steady_seconds=args.steady_seconds,
        quiet_seconds=args.quiet_seconds,
        settle_seconds=args.settle_seconds,
        boot_runs=args.boot_runs,
        boot_seconds=args.boot_seconds,
        client=args.client,
    )


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        results = run(options)
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    tables = report.tables(results)
    print(report.render_text(results, tables))
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown: Path = RESULTS / "zero_downtime.md"
    markdown.write_text("# Zero-downtime deploys\n\n" + report.render_markdown(results, tables))
    (RESULTS / "zero_downtime.json").write_text(json.dumps(report.raw(results), indent=2))
    print(f"wrote {markdown.relative_to(REPO)} and zero_downtime.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
