"""`python -m bench.gates [--runs N] [--noise-runs M]`: what the gates cost `slipway check`
on examples/hello against a check without gates, and how noisy the performance gate is on
an identical release. Prints the tables, writes them to bench/results/gates.md."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.gates import report
from bench.gates.run import Failed, run

RESULTS = Path(__file__).resolve().parents[1] / "results"


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gates", description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=5, help="checks per configuration; default %(default)s"
    )
    parser.add_argument(
        "--noise-runs",
        type=int,
        default=10,
        help="checks with the performance gate alone; default %(default)s",
    )
    parser.add_argument(
        "--osv-records",
        type=int,
        default=15_000,
        help="synthetic records in the OSV database; default %(default)s",
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.noise_runs < 1 or args.osv_records < 1:
        parser.error("--runs, --noise-runs and --osv-records must be positive")
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        results = run(args.runs, args.noise_runs, args.osv_records)
    except (Failed, RuntimeError) as exc:  # a check, or another slipway command, failed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    text = report.render(results, [report.overhead_table(results), report.noise_table(results)])
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "gates.md"
    out.write_text("# Gates: overhead and noise\n\n" + text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
