"""The deploy, rollback and targets tables."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from bench.zero_downtime.analysis import Window, median
from bench.zero_downtime.measures import (
    accepted_at,
    client_switch,
    daemon_switch,
    finished_at,
    overhead,
)
from bench.zero_downtime.naive import STOP_TIMEOUT
from bench.zero_downtime.run import Results
from bench.zero_downtime.table import Table, ms, secs, verdict
from bench.zero_downtime.traffic import traffic_table

P99_RATIO_LIMIT = 1.5
OVERHEAD_LIMIT = 1.0
SWITCH_LIMIT = 0.200


def summary_row(
    name: str, values: Sequence[float], fmt: Callable[[float], str], what: str
) -> list[str]:
    return [name, fmt(median(values)), fmt(max(values, default=math.nan)), what]


def deploy_table(results: Results) -> Table:
    deploys, costs = results.slipway.deploys, results.costs
    boot = costs.boot
    table = Table(
        f"Deploy time ({len(deploys)} blue-green deploys of 2 instances)",
        ["measure", "median", "max", "what it includes"],
        align="lrrl",
    )
    step = {
        name: [d.step_seconds(name) for d in deploys]
        for name in ("build", "start", "health", "shift", "drain", "retire")
    }
    table.rows += [
        summary_row(
            "total", [d.seconds for d in deploys], secs, "`slipway deploy` CLI call → return"
        ),
        summary_row(
            "build step", step["build"], secs, "daemon event: snapshot + virtualenv + build command"
        ),
        [
            f"app boot (direct, {len(costs.boots)} runs)",
            secs(boot),
            secs(max(costs.boots, default=math.nan)),
            "hello started without slipway: spawn → first 200 on /up (median used below)",
        ],
        summary_row(
            "total − boot",
            [d.seconds - boot for d in deploys],
            secs,
            "everything but the app's boot, build included",
        ),
        summary_row(
            "**overhead**: total − build − boot",
            [overhead(d, boot) for d in deploys],
            secs,
            "the control plane's overhead (the target)",
        ),
        summary_row(
            "· CLI process",
            [d.seconds - d.daemon_seconds for d in deploys],
            secs,
            "total − the daemon's deployment time (accepted → finished), of which:",
        ),
        summary_row(
            "  · CLI start-up",
            [accepted_at(d, results) - d.started for d in deploys],
            secs,
            "CLI call → deployment accepted: Python start-up, imports, the request",
        ),
        summary_row(
            "  · CLI return",
            [d.ended - finished_at(d, results) for d in deploys],
            secs,
            "deployment finished → CLI exited: event stream (50 ms polls), output, exit",
        ),
    ]
    for name in ("start", "health", "shift", "drain", "retire"):
        table.rows.append(summary_row(f"· {name} step", step[name], secs, "daemon event"))
    naive = results.baseline.deploys
    killed = sum(d.killed for d in naive)
    table.rows += [
        summary_row(
            "naive: stop + start",
            [d.seconds for d in naive],
            secs,
            "SIGTERM → old exited → new instances answer /up",
        ),
        summary_row(
            "naive: until routed",
            [d.routed - d.started for d in naive],
            secs,
            "SIGTERM → HAProxy has both new instances UP",
        ),
        summary_row(
            "reference: `slipway status`",
            [w.seconds for w in results.slipway.status_calls],
            secs,
            "the CLI call alone (the control phase): Python start-up, one request",
        ),
        [
            "reference: virtualenv",
            secs(costs.virtualenv_seconds),
            "",
            "`virtualenv` run directly, once (part of the build step)",
        ],
        [
            "reference: build command",
            secs(costs.build_command_seconds),
            "",
            "the app's `pip install` run directly, once (part of the build step)",
        ],
    ]
    table.notes.append(
        "Rows marked · split the overhead: the CLI process plus the daemon's start, health, "
        "shift, drain and retire steps (start and health include the app's boot; health "
        "also HAProxy's checks)."
    )
    table.notes.append(
        f"Old instances still running {STOP_TIMEOUT:g} s after SIGTERM, then SIGKILLed: "
        f"slipway {results.slipway.sigkills} (from the shims' logs), naive {killed}."
    )
    return table


def rollback_table(results: Results) -> Table:
    rollbacks = results.slipway.rollbacks
    clients = [client_switch(r, results) for r in rollbacks]
    table = Table(
        f"Warm rollback traffic switch ({len(rollbacks)} rollbacks)",
        ["measure", "median", "max", "from → to"],
        align="lrrl",
    )
    table.rows += [
        summary_row(
            "daemon-side switch",
            [daemon_switch(r) for r in rollbacks],
            ms,
            "rollback accepted by the daemon → `shift` step done",
        ),
        summary_row(
            "client-observed, from the daemon",
            [c - accepted_at(r, results) for c, r in zip(clients, rollbacks, strict=True)],
            ms,
            "rollback accepted → every response from the target release",
        ),
        summary_row(
            "client-observed, from the CLI call",
            [c - r.started for c, r in zip(clients, rollbacks, strict=True)],
            ms,
            "`slipway rollback` called → every response from the target release",
        ),
        summary_row(
            "rollback CLI call",
            [r.seconds for r in rollbacks],
            ms,
            "`slipway rollback` CLI call → return",
        ),
    ]
    return table


def targets_table(results: Results) -> Table:
    s = results.slipway
    ops = [Window("op", o.started, o.ended) for o in s.deploys + s.rollbacks]
    during_ops = s.timeline.traffic(ops)
    deploys = s.timeline.traffic([Window("d", d.started, d.ended) for d in s.deploys])
    steady = s.timeline.traffic(s.steady)
    p99_ratio = deploys.p99_ms / steady.p99_ms if steady.p99_ms else math.nan
    overheads = [overhead(d, results.costs.boot) for d in s.deploys]
    daemon = [daemon_switch(r) for r in s.rollbacks]
    clients = [client_switch(r, results) - r.started for r in s.rollbacks]
    worst = max(overheads, default=math.nan)
    naive_failed = results.baseline.timeline.traffic(
        [Window("n", d.started, d.routed) for d in results.baseline.deploys]
    ).failed
    table = Table("Targets", ["target", "measured", "limit", "result"], align="lrrl")
    table.rows += [
        [
            f"failed requests during {len(ops)} deploys + rollbacks",
            str(during_ops.failed),
            f"0 (naive baseline: {naive_failed})",
            verdict(during_ops.failed == 0),
        ],
        [
            "p99 during deploys ÷ steady-state p99",
            f"{p99_ratio:.2f}× ({deploys.p99_ms:.1f} / {steady.p99_ms:.1f} ms)",
            f"≤ {P99_RATIO_LIMIT}×",
            verdict(p99_ratio <= P99_RATIO_LIMIT),
        ],
        [
            "control-plane overhead per deploy (worst)",
            f"{secs(worst)} (median {secs(median(overheads))})",
            f"≤ {OVERHEAD_LIMIT:g} s",
            verdict(worst <= OVERHEAD_LIMIT),
        ],
        [
            "warm rollback switch, daemon-side (worst)",
            f"{ms(max(daemon, default=math.nan))} (median {ms(median(daemon))})",
            f"≤ {SWITCH_LIMIT * 1000:.0f} ms",
            verdict(max(daemon, default=math.inf) <= SWITCH_LIMIT),
        ],
        [
            "warm rollback switch, client-observed from the CLI call (worst)",
            f"{ms(max(clients, default=math.nan))} (median {ms(median(clients))})",
            f"≤ {SWITCH_LIMIT * 1000:.0f} ms",
            verdict(max(clients, default=math.inf) <= SWITCH_LIMIT),
        ],
    ]
    return table


def tables(results: Results) -> list[Table]:
    return [
        targets_table(results),
        traffic_table(results),
        deploy_table(results),
        rollback_table(results),
    ]
