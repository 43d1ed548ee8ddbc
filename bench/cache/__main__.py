"""`python -m bench.cache [--rounds N] [--seconds S] [--connections C]`: requests/s and p99
of a cacheable path through HAProxy with and without [edge.cache], in the same run. Prints
the table and writes it to bench/results/cache.md."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from bench.cache import report
from bench.cache.run import Failed, run

RESULTS = Path(__file__).resolve().parents[1] / "results"


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="default %(default)s")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="per configuration and round; %(default)s"
    )
    parser.add_argument("--connections", type=int, default=16, help="default %(default)s")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 100 or not 1 <= args.seconds <= 600:
        parser.error("--rounds is 1-100, --seconds 1-600")
    if not 1 <= args.connections <= 1000:
        parser.error("--connections is 1-1000")
    if shutil.which("wrk") is None:
        print("error: wrk is not installed (`make bench` installs it)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        results = run(args.rounds, args.seconds, args.connections)
    except Failed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    text = report.markdown(results)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cache.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
