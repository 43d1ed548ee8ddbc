"""The tables: per fault and fleet what failed, how long until traffic was whole again, where
the address went and what data was lost; then a verdict per target (pure)."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.faults.outcome import failures, first_answer, whole_again
from bench.faults.record import FaultWindow, Traffic
from bench.zero_downtime.report import markdown_page, text_page
from bench.zero_downtime.table import Table

if TYPE_CHECKING:
    from bench.faults.run import Results

VIP_TARGET = 4.0  # seconds: the address moves
LOSS_TARGET = 5.0  # seconds of changes lost


@dataclass(frozen=True)
class Row:
    fault: FaultWindow
    fleet: str  # "slipway" | "baseline"
    traffic: Traffic

    def count(self, method: str) -> tuple[int, int, int]:
        samples = self.traffic.get if method == "GET" else self.traffic.post
        f = failures(samples, self.fault.start, self.fault.end)
        return f.sent, f.retryable, f.not_retryable

    @property
    def whole(self) -> float:
        return whole_again(self.traffic.all, self.fault.start, self.fault.end)

    @property
    def moved(self) -> float:
        if self.fleet != "slipway" or self.fault.vip_moved is None:
            return math.nan
        return self.fault.vip_moved - self.fault.start

    @property
    def answered(self) -> float:
        """The fault → the first answer to a request sent once the address had moved."""
        if math.isnan(self.moved):
            return math.nan
        assert self.fault.vip_moved is not None
        after = first_answer(self.traffic.all, self.fault.vip_moved, self.fault.end)
        return self.moved + after


def rows(faults: list[FaultWindow], slipway: Traffic, baseline: Traffic) -> list[Row]:
    found = []
    for fault in faults:
        found.append(Row(fault, "slipway", slipway))
        if fault.baseline:
            found.append(Row(fault, "baseline", baseline))
    return found


def seconds(value: float, window: float) -> str:
    if math.isnan(value):
        return "—"
    return f"never ({window:.0f} s)" if math.isinf(value) else f"{value:.2f} s"


def lost(row: Row) -> str:
    control = row.fault.control
    if control is None or row.fleet != "slipway":
        return "—"
    return f"{control.lost} changes, {control.lost_seconds:.2f} s"


def fault_table(found: list[Row]) -> Table:
    table = Table(
        "Faults under load through the virtual address (failed: retryable / not)",
        [
            "fault",
            "fleet",
            "GET sent",
            "GET failed",
            "POST sent",
            "POST failed",
            "whole again",
            "VIP moved",
            "VIP answers",
            "data lost",
        ],  # fmt: skip
        align="llrrrrrrrr",
    )
    for row in found:
        get, post = row.count("GET"), row.count("POST")
        window = row.fault.end - row.fault.start
        table.rows.append(
            [
                row.fault.name, row.fleet,
                str(get[0]), f"{get[1]} / {get[2]}", str(post[0]), f"{post[1]} / {post[2]}",
                seconds(row.whole, window), seconds(row.moved, window),
                seconds(row.answered, window), lost(row),
            ]
        )  # fmt: skip
    table.notes = [
        "whole again: from the fault to the answer of the first request after which every "
        "request in the window succeeded (for at least 1 s); never: not within the window",
        "VIP moved: the address first seen on the other lb host (looked at every 50 ms); VIP "
        "answers: the first answer to a request sent after that",
        *[f"{f.name}: {f.what}" for f in {r.fault.name: r.fault for r in found}.values()],
    ]
    return table


def verdicts(found: list[Row], in_flight_posts: int) -> Table:
    table = Table("Targets (slipway)", ["target", "measured", "verdict"], align="llr")
    for row in (r for r in found if r.fleet == "slipway"):
        get, post = row.count("GET"), row.count("POST")
        name = row.fault.name
        if name.startswith("lb"):
            ok = row.answered <= VIP_TARGET
            table.rows.append(
                [f"{name}: the address moves within {VIP_TARGET:g} s",
                 f"moved {seconds(row.moved, 0)}, answers {seconds(row.answered, 0)}",
                 "met" if ok else "missed"]
            )  # fmt: skip
        elif name.startswith("app"):
            ok = get[1] + get[2] == 0 and post[1] + post[2] <= in_flight_posts
            table.rows.append(
                [f"{name}: 0 failed GET, POST at most the {in_flight_posts} in flight",
                 f"GET {get[1] + get[2]}, POST {post[1] + post[2]}",
                 "met" if ok else "missed"]
            )  # fmt: skip
        elif row.fault.control is not None:
            failed = get[1] + get[2] + post[1] + post[2]
            table.rows.append(
                [f"{name}: 0 failed requests", str(failed), "met" if failed == 0 else "missed"]
            )
            loss = row.fault.control.lost_seconds
            table.rows.append(
                [f"{name}: at most {LOSS_TARGET:g} s of changes lost", f"{loss:.2f} s",
                 "met" if loss <= LOSS_TARGET else "missed"]
            )  # fmt: skip
    return table


def context(results: Results) -> list[str]:
    o = results.options
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(results.started_at))
    return [
        f"{when}, slipway {results.revision}, {os.cpu_count()} CPUs, "
        f"run took {results.seconds:.0f} s (fleet set up in {results.setup_seconds:.0f} s)",
        f"load through each front: GET {o.get_rate:g}/s ({o.get_concurrency} connections), "
        f"POST {o.post_rate:g}/s ({o.post_concurrency}), httpx, 10 s timeout",
        "slipway: 2 lb hosts (HAProxy by slipway, keepalived VRRPv3 unicast, advert 0.5 s, "
        "nopreempt), 3 app hosts (1 instance each), control replica every "
        f"{o.replicate_every:g} s; baseline: one HAProxy, roundrobin, `check` (inter 2s "
        "fall 3), retries 0, no redispatch, no observe, same instances",
    ]


def tables(results: Results) -> list[Table]:
    found = rows(results.faults, results.slipway, results.baseline)
    return [fault_table(found), verdicts(found, results.options.post_concurrency)]


def render_text(results: Results, all_tables: list[Table]) -> str:
    return text_page("Fleet faults", context(results), all_tables, results.leftovers)


def render_markdown(results: Results, all_tables: list[Table]) -> str:
    return markdown_page(context(results), all_tables, results.leftovers)
