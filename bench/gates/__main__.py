"""`python -m bench.gates [--runs N] [--noise-runs M] [--load-rounds R]`: what the gates
cost `slipway check` on examples/hello against a check without gates, how noisy the
performance gate is on an identical release, and (part 3) its false failures and its
detection of a 1.5× slower release while a neighbour app saturates the machine through
HAProxy. Prints the tables, writes them to bench/results/gates.md."""

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
        "--load-rounds",
        type=int,
        default=20,
        help="rounds of part 3 (3 checks each, under a saturating load); default %(default)s",
    )
    parser.add_argument(
        "--osv-records",
        type=int,
        default=15_000,
        help="synthetic records in the OSV database; default %(default)s",
    )
    args = parser.parse_args(argv)
    if min(args.runs, args.noise_runs, args.load_rounds) < 0 or args.osv_records < 1:
        parser.error(
            "--runs, --noise-runs, --load-rounds must be 0 or more, --osv-records positive"
        )
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        results = run(args.runs, args.noise_runs, args.osv_records, args.load_rounds)
    except (Failed, RuntimeError) as exc:  # a check, or another slipway command, failed
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    tables = [report.overhead_table(results)] if args.runs else []
    tables += [report.noise_table(results)] if args.noise_runs else []
    tables += [report.load_table(results)] if args.load_rounds else []
    text = report.render(results, tables)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "gates.md"
    out.write_text("# Gates: overhead and noise\n\n" + text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
