"""hello's worker: takes simulated jobs; on SIGTERM it finishes the job in hand, then exits.

JOB_SECONDS  how long one job takes (default 1)
"""

from __future__ import annotations

import os
import signal
import time

JOB_SECONDS = float(os.environ.get("JOB_SECONDS", "1") or 1)
RELEASE = os.environ.get("SLIPWAY_RELEASE", "dev")


def main() -> None:
    stopping = False

    def on_term(*_: object) -> None:
        nonlocal stopping
        stopping = True
        print("SIGTERM: will exit after the current job", flush=True)

    signal.signal(signal.SIGTERM, on_term)
    job = 0
    print(f"worker {RELEASE} ready", flush=True)
    while not stopping:
        job += 1
        print(f"job {job}: started", flush=True)
        end = time.monotonic() + JOB_SECONDS
        while time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        print(f"job {job}: finished", flush=True)
    print(f"worker {RELEASE} exiting cleanly after {job} job(s)", flush=True)


if __name__ == "__main__":
    main()
