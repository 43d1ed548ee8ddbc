"""`python -m bench.judge [--deployments N] [--regression-runs N] [--seed S] [--quick]
[--cases KEY,…] [--set FIELD=VALUE …]`: simulates canary deployments with ground truth in
the conditions of production, judges each with slipway's judge and two reference judges,
prints the results tables and writes them to bench/results/judge.md."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from bench.judge import report, slipway_judge
from bench.judge.model import CASES
from bench.judge.run import Options, run
from slipway.judge.verdict import Settings

RESULTS = report.REPO / "bench" / "results"
QUICK = Options(deployments=100, regression_runs=20)


def settings_of(assignments: list[str], parser: argparse.ArgumentParser) -> Settings:
    """`Settings` with FIELD=VALUE overrides (for a diagnosis; the targets are meant for the
    defaults)."""
    base = slipway_judge.SETTINGS
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    changes: dict[str, object] = {}
    for assignment in assignments:
        name, _, text = assignment.partition("=")
        if name not in fields or not text:
            parser.error(f"--set {assignment}: expected FIELD=VALUE, FIELD one of {list(fields)}")
        current = fields[name]
        try:
            if isinstance(current, tuple):
                changes[name] = tuple(float(v) for v in text.split(","))
            else:
                changes[name] = type(current)(text)
        except ValueError:
            parser.error(f"--set {assignment}: not a {type(current).__name__}")
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


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
        help=f"A/A deployments per condition; default {defaults.deployments} "
        f"({QUICK.deployments} with --quick)",
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
        "--quick", action="store_true", help="a short smoke run (minutes, not an hour)"
    )
    parser.add_argument(
        "--cases",
        default="",
        help="comma-separated case keys to run (default: all): " + ", ".join(c.key for c in CASES),
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="vary one of slipway's judge Settings (for a diagnosis), e.g. warmup_seconds=0",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else defaults
    wanted = tuple(k for k in args.cases.split(",") if k)
    unknown = set(wanted) - {c.key for c in CASES}
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}")
    options = Options(
        deployments=base.deployments if args.deployments is None else args.deployments,
        regression_runs=(
            base.regression_runs if args.regression_runs is None else args.regression_runs
        ),
        seed=args.seed,
        quick=args.quick,
        cases=wanted,
        settings=settings_of(args.set, parser),
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
    partial = options.quick or options.cases or options.settings != slipway_judge.SETTINGS
    title = "# Canary judge" + (" (partial or varied run)" if partial else "")
    markdown.write_text(f"{title}\n\n" + report.render_markdown(results, tables))
    print(f"wrote {markdown.relative_to(report.REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
