"""bench/bad_release: canaries end to end, with the real daemon, HAProxy and examples/hello
under steady load.

1. Bad candidates (FAIL_RATE=0.1: 10% of their answers are 500s) at a 5% first step, one
   after another: how long each served before being rolled back (target: every one within
   10 s of its first request, the worst of at least 10), how many candidate requests the
   judge had seen at its verdict, and how many user requests failed meanwhile.
2. In the same run, the same release deployed all at once (blue-green) for the median of
   those times: what it fails when nothing judges it.
3. 20 good candidates in a row: all must be promoted (0 false rollbacks).

    python -m bench.bad_release [--bad 10] [--good 20] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.zero_downtime.control import APP_NAME, GATES_OFF, OFFLINE_ENV, copy_hello
from bench.zero_downtime.load import LoadProcess
from bench.zero_downtime.procs import Processes, free_port
from slipway.loadgen import Sample

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
STEPS = [5, 25, 50, 100]
STEP_MIN_SECONDS = 5
STEP_MIN_REQUESTS = 50
TARGET_SECONDS = 10.0


def app_toml(port: int, strategy: str, env: dict[str, str]) -> str:
    env_lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in env.items())
    return f"""name = "{APP_NAME}"

[listen]
port = {port}

[processes]
web = "python app.py --port $PORT"

[build]
command = "pip install -q -r requirements.txt"

[healthcheck]
interval = "500ms"

[scale]
web = 2

[env]
{env_lines}

[deploy]
strategy = "{strategy}"
steps = {STEPS}
step_min_seconds = {STEP_MIN_SECONDS}
step_min_requests = {STEP_MIN_REQUESTS}
health_timeout = "20s"
stop_grace = "3s"
keep_warm = "10m"

[analysis]
alpha = 0.05
max_error_rate_increase = 0.005
max_latency_increase = 0.10
{GATES_OFF}"""


@dataclass
class Bad:
    release: str
    began: float
    ended: float
    verdict_seconds: float  # canary step began → the judge's rollback verdict
    verdict_reason: str
    judged: int | None = None  # candidate requests the judge had seen at its verdict
    served_seconds: float = 0.0  # candidate's first answer → its last answer
    requests: int = 0  # answers from the candidate
    failed: int = 0  # of them, failed
    all_failed: int = 0  # failed user requests in the whole bad-canary window


@dataclass
class Run:
    bad: list[Bad] = field(default_factory=list)
    naive_window: float = 0.0
    naive_requests: int = 0
    naive_failed: int = 0
    good: list[dict[str, Any]] = field(default_factory=list)
    total_requests: int = 0
    total_failed: int = 0
    lost_log_lines: int = 0  # request log lines the daemon saw lost (kernel or HAProxy)


class Bench:
    def __init__(self, root: Path, procs: Processes, rate: float) -> None:
        self.root, self.procs, self.rate = root, procs, rate
        self.home = root / "home"
        self.app = copy_hello(root / "hello")
        self.port = free_port()
        self.env = (
            dict(os.environ)
            | OFFLINE_ENV
            | {"SLIPWAY_HOME": str(self.home), "SLIPWAY_HTTP": "127.0.0.1:0"}
        )

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "slipway", *args],
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"slipway {' '.join(args)}: {proc.stderr}")
        return proc

    def deploy(self, strategy: str, **env: str) -> tuple[float, float, dict[str, Any]]:
        (self.app / "slipway.toml").write_text(app_toml(self.port, strategy, env | OFFLINE_ENV))
        began = time.monotonic()
        proc = self.cli("deploy", "--app", str(self.app), "--json", check=False)
        return began, time.monotonic(), json.loads(proc.stdout)

    def analysis(self, deployment: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.cli("analysis", str(deployment), "--json").stdout)
        return data


def candidate_answers(
    samples: list[Sample], release: str, start: float, end: float
) -> list[Sample]:
    return [s for s in samples if s.value == release and start <= s.t <= end]


def run(bad: int, good: int, rate: float) -> Run:
    result = Run()
    procs = Processes()
    root = Path(tempfile.mkdtemp(prefix="swb-", dir="/tmp"))
    bench = Bench(root, procs, rate)
    load = LoadProcess(procs, f"http://127.0.0.1:{bench.port}/", rate, 8, root / "load.json")
    started = False
    try:
        bench.cli("up")
        started = True
        bench.deploy("canary", GREETING="stable")  # the first deploy is blue-green
        load.start(bench.env, REPO)
        time.sleep(3)
        # 1. bad canaries
        for index in range(bad):
            began, ended, out = bench.deploy("canary", GREETING=f"bad {index}", FAIL_RATE="0.1")
            dep = out["deployment"]
            assert dep["outcome"] == "failed", dep
            verdicts = bench.analysis(dep["id"])["verdicts"]
            step = next(e for e in out["events"] if e["step"] == "canary" and e["status"] == "info")
            last = verdicts[-1]
            result.bad.append(
                Bad(
                    dep["to_release"],
                    began,
                    ended,
                    last["at"] - step["at"],
                    last["reason"],
                    (last.get("evidence") or {}).get("verdict", {}).get("candidate_requests"),
                )
            )
            time.sleep(2)
        # 2. the same release all at once, held long enough to compare over the time the
        #    canaries served it (that window is cut from the samples afterwards)
        naive_began, _, naive = bench.deploy("bluegreen", GREETING="bad", FAIL_RATE="0.1")
        naive_release = naive["deployment"]["to_release"]
        time.sleep(max(12.0, max(b.verdict_seconds for b in result.bad) + 5))
        bench.cli("rollback", "--app", APP_NAME)
        time.sleep(2)
        # 3. good candidates
        for index in range(good):
            began_g, ended_g, out = bench.deploy("canary", GREETING=f"good {index}")
            result.good.append(
                {
                    "release": out["deployment"]["to_release"],
                    "outcome": out["deployment"]["outcome"],
                    "seconds": ended_g - began_g,
                    "error": (out["deployment"].get("error") or {}).get("message"),
                }
            )
        time.sleep(1)
        run_data = load.stop()
        with sqlite3.connect(f"file:{bench.home / 'state.db'}?mode=ro", uri=True) as db:
            result.lost_log_lines = db.execute(
                "SELECT COALESCE(SUM(lost), 0) FROM ingest_losses"
            ).fetchone()[0]
    finally:
        if started:
            bench.cli("down", "--all", check=False)
        procs.stop_all()
        shutil.rmtree(root, ignore_errors=True)
    samples = run_data.samples
    for one in result.bad:
        answers = candidate_answers(samples, one.release, one.began, one.ended + 5)
        one.requests = len(answers)
        one.failed = sum(1 for s in answers if s.failed)
        if answers:
            one.served_seconds = max(s.done for s in answers) - min(s.t for s in answers)
        one.all_failed = sum(1 for s in samples if one.began <= s.t <= one.ended and s.failed)
    naive_answers = candidate_answers(samples, naive_release, naive_began, time.monotonic())
    if naive_answers:
        first = min(s.t for s in naive_answers)
        result.naive_window = statistics.median(b.served_seconds for b in result.bad)
        same_time = [s for s in samples if first <= s.t <= first + result.naive_window]
        result.naive_requests = len(same_time)
        result.naive_failed = sum(1 for s in same_time if s.failed)
    result.total_requests = len(samples)
    result.total_failed = sum(1 for s in samples if s.failed)
    return result


def report(result: Run, rate: float) -> str:
    promoted = [g for g in result.good if g["outcome"] == "succeeded"]
    seconds = [g["seconds"] for g in promoted]
    served = [b.served_seconds for b in result.bad]
    ok = max(served) <= TARGET_SECONDS
    lines = [
        f"- load: {rate:g} requests/s through HAProxy; canary steps {STEPS}, "
        f"step_min_seconds {STEP_MIN_SECONDS}, step_min_requests {STEP_MIN_REQUESTS}; "
        "analysis defaults (alpha 0.05, +0.5pp errors, +10% latency)",
        "",
        "| bad candidate (10% errors) | served, first to last answer | rollback verdict after "
        "the step began | candidate requests judged at the verdict | its answers / failed | "
        "failed user requests meanwhile |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {b.release} | {b.served_seconds:.1f} s | {b.verdict_seconds:.1f} s | "
            f"{'?' if b.judged is None else b.judged} | {b.requests} / {b.failed} | "
            f"{b.all_failed} |"
            for b in result.bad
        ),
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| bad candidates: served from first to last answer (median, max of {len(served)}) | "
        f"{statistics.median(served):.1f} s, {max(served):.1f} s | every one ≤ "
        f"{TARGET_SECONDS:g} s: {'PASS' if ok else 'FAIL'} "
        f"({sum(1 for v in served if v <= TARGET_SECONDS)} of {len(served)} within) |",
        f"| · failed user requests meanwhile (median) | "
        f"{statistics.median(b.all_failed for b in result.bad):g} | |",
        f"| the same release all at once, for the median {result.naive_window:.1f} s: "
        f"failed requests | {result.naive_failed} of {result.naive_requests} | (baseline) |",
        f"| good candidates promoted | {len(promoted)} of {len(result.good)} | all: "
        f"{'PASS' if len(promoted) == len(result.good) else 'FAIL'} |",
        f"| · time per good canary (median, max) | "
        f"{statistics.median(seconds) if seconds else 0:.1f} s, "
        f"{max(seconds) if seconds else 0:.1f} s | |",
        f"| requests over the whole run / failed | {result.total_requests} / "
        f"{result.total_failed} | |",
        f"| request log lines lost on the way to the judge | {result.lost_log_lines} | 0 |",
        "",
        *(f"Rollback verdict of {b.release}: {b.verdict_reason}" for b in result.bad),
    ]
    for g in result.good:
        if g["outcome"] != "succeeded":
            lines.append(f"- FALSE ROLLBACK {g['release']}: {g['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bad", type=int, default=10, help="bad candidates, one after another")
    parser.add_argument("--good", type=int, default=20, help="good candidates in a row")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    args = parser.parse_args(argv)
    result = run(args.bad, args.good, args.rate)
    text = report(result, args.rate)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (RESULTS / "bad_release.md").write_text(
        f"# Bad releases, end to end\n\n- date: {stamp}\n- machine: {os.cpu_count()} CPUs\n{text}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
