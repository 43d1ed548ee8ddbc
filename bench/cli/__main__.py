"""`python -m bench.cli [--runs N] [--no-app]`: times the CLI's start-up, prints the table,
writes it to bench/results/cli.md. Run it under the shared lock:
`flock /tmp/slipway-heavy.lock python -m bench.cli`."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli import report
from bench.cli.run import Options, measure

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main(argv: list[str] | None = None) -> int:
    defaults = Options()
    parser = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=defaults.runs, help="runs of each command; %(default)s"
    )
    parser.add_argument(
        "--no-app", action="store_true", help="deploy nothing (status and ps show no app)"
    )
    args = parser.parse_args(argv)
    results = measure(Options(runs=args.runs, app=not args.no_app))
    print(report.render_text(results))
    if results.leftovers:
        print(f"processes left behind (killed): {results.leftovers}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli.md").write_text("# CLI start-up\n\n" + report.render_markdown(results))
    print(f"\nwritten: {RESULTS / 'cli.md'}")
    return 1 if results.leftovers else 0


if __name__ == "__main__":
    raise SystemExit(main())
