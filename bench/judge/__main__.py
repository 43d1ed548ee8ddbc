"""`python -m bench.judge [--deployments N] [--regression-runs N] [--seed S] [--quick]`:
simulates canary deployments with ground truth, judges each with slipway's judge and two
reference judges, prints the results table and writes it to bench/results/judge.md."""

from __future__ import annotations

import argparse
import sys

from bench.judge import report
from bench.judge.run import Options, run

RESULTS = report.REPO / "bench" / "results"
QUICK = Options(deployments=100, regression_runs=20)


def parse(argv: list[str] | None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(
        prog="python -m bench.judge",
        description="The canary judge against ground truth: slipway vs two reference judges.",
    )
    parser.add_argument(
        "--deployments",
        type=int,
        default=None,
        help=f"A/A deployments; default {defaults.deployments} ({QUICK.deployments} with --quick)",
    )
    parser.add_argument(
        "--regression-runs",
        type=int,
        default=None,
        help=f"deployments per regression; default {defaults.regression_runs} "
        f"({QUICK.regression_runs} with --quick)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (seconds, not minutes)"
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else defaults
    options = Options(
        deployments=base.deployments if args.deployments is None else args.deployments,
        regression_runs=(
            base.regression_runs if args.regression_runs is None else args.regression_runs
        ),
        seed=args.seed,
        quick=args.quick,
    )
    if options.deployments < 1 or options.regression_runs < 1:
        parser.error("--deployments and --regression-runs must be positive")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    results = run(options)
    tables = report.tables(results)
    print(report.render_text(results, tables))
    RESULTS.mkdir(parents=True, exist_ok=True)
    markdown = RESULTS / "judge.md"
    title = "# Canary judge" + (" (quick run)" if options.quick else "")
    markdown.write_text(f"{title}\n\n" + report.render_markdown(results, tables))
    print(f"wrote {markdown.relative_to(report.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
