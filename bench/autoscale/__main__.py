"""`python -m bench.autoscale`: examples/hello with a worker pool (SLOTS) and a service time,
under an open-loop load that ramps from low to about 4× one instance's capacity and back,
three times in one run: autoscaled ([autoscale.web]), a fixed `min` count and a fixed `max`
count. Reports failed requests, p95 per second against the latency target, and
instance-seconds against fixed max's. Prints the tables, writes them to
bench/results/autoscale.md (and every second of every variant to autoscale.json)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from types import FrameType

from bench.autoscale import report
from bench.autoscale.ramp import Ramp
from bench.autoscale.run import VARIANTS, Options, run

RESULTS = Path(__file__).resolve().parents[1] / "results"


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same cleanup as Ctrl-C


def parse(argv: list[str] | None) -> tuple[Options, tuple[str, ...]]:
    parser = argparse.ArgumentParser(prog="python -m bench.autoscale", description=__doc__)
    add = parser.add_argument
    add("--slots", type=int, default=2, help="hello's SLOTS per instance; %(default)s")
    add("--service-ms", type=float, default=40, help="service time per request; %(default)s")
    add("--work-ms", type=float, default=1, help="of it, CPU work (WORK_MS); %(default)s")
    add("--low", type=float, help="req/s at the start and end; default: 0.4× one instance")
    add("--peak", type=float, help="req/s at the peak; default: 4× one instance")
    add("--low-seconds", type=float, default=15, help="%(default)s")
    add("--up-seconds", type=float, default=50, help="%(default)s")
    add("--hold-seconds", type=float, default=30, help="%(default)s")
    add("--down-seconds", type=float, default=50, help="%(default)s")
    add("--tail-seconds", type=float, default=35, help="%(default)s")
    add("--min", type=int, default=1, help="%(default)s")
    add("--max", type=int, default=6, help="%(default)s")
    add("--signal", choices=["inflight", "p95", "cpu"], default="inflight", help="%(default)s")
    add("--target", type=float, default=1.5,
        help="the autoscaler's target in the signal's unit; %(default)s (in flight per "
        "instance: 75%% of SLOTS=2)")  # fmt: skip
    add("--every", type=float, default=5, help="seconds; %(default)s (the default)")
    add("--window", type=float, default=15, help="seconds; %(default)s (the default)")
    add("--scale-down-after", type=float, default=30,
        help="seconds; %(default)s (the default is 300: too long for a 3-minute ramp)")  # fmt: skip
    add("--latency-target-ms", type=float, default=100, help="p95 per second; %(default)s")
    add("--variants", default=",".join(VARIANTS), help="%(default)s")
    args = parser.parse_args(argv)
    capacity = args.slots * 1000 / args.service_ms
    ramp = Ramp(
        low=args.low if args.low is not None else round(0.4 * capacity),
        peak=args.peak if args.peak is not None else round(4 * capacity),
        low_seconds=args.low_seconds, up_seconds=args.up_seconds,
        hold_seconds=args.hold_seconds, down_seconds=args.down_seconds,
        tail_seconds=args.tail_seconds,
    )  # fmt: skip
    variants = tuple(v for v in args.variants.split(",") if v)
    if not set(variants) <= set(VARIANTS) or not variants:
        parser.error(f"--variants: some of {', '.join(VARIANTS)}")
    if args.work_ms > args.service_ms or args.slots < 1 or args.min > args.max:
        parser.error("--work-ms is part of --service-ms; --slots ≥ 1; --min ≤ --max")
    options = Options(args.slots, args.service_ms, args.work_ms, ramp, args.min, args.max,
                      args.signal, args.target, args.every, args.window,
                      args.scale_down_after, args.latency_target_ms)  # fmt: skip
    return options, variants


def main(argv: list[str] | None = None) -> int:
    options, variants = parse(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        results = run(options, variants, RESULTS / "autoscale-daemon.log")
    except (RuntimeError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: every process the benchmark started has been stopped", file=sys.stderr)
        return 130
    text = report.render(results)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "autoscale.md"
    out.write_text("# Autoscaling under a load ramp\n\n" + text)
    dump = report.Report.of(results)
    seconds = {
        name: {"p95_ms": data.p95s(), "failed": data.failed, "running": data.running,
               "serving": data.serving}
        for name, data in dump.per.items()
    }  # fmt: skip
    auto = results.variant("auto")
    detail = {"options": asdict(options), "first_scale_up": dump.since, "seconds": seconds,
              "decisions": auto.history if auto else []}  # fmt: skip
    (RESULTS / "autoscale.json").write_text(json.dumps(detail, default=str))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
