"""The fleet benchmark's tables, and the run's context (machine, noise) above them."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from bench.fleet.run import APP_HOSTS, LBS, LOADED_HOSTS, SIZES, LoadPart, Results, Watched
from bench.fleet.watch import Switch
from bench.zero_downtime.analysis import Timeline, Traffic, Window, median, switch_moment
from bench.zero_downtime.load import PRIORITY
from bench.zero_downtime.report import MAX_STEADY_LAG_MS, machine, markdown_page, text_page
from bench.zero_downtime.table import Table, lat, ms, pct, ratio, secs, verdict

GROWTH_LIMIT = 0.20
SKEW_LIMIT = 0.050
ROLLBACK_LIMIT = 0.200
LOOKBACK_SECONDS = 5.0  # answers to requests sent this long before an operation can be late


# measures --------------------------------------------------------------------------------


def accepted(results: Results, w: Watched) -> float:
    """When the daemon accepted the operation, on the monotonic clock."""
    return float(w.op.deployment["started_at"]) - results.wall_offset


def step(w: Watched, name: str) -> float:
    try:
        return w.op.step_seconds(name)
    except KeyError:
        return 0.0  # a step this operation did not have


def cli_seconds(w: Watched) -> float:
    """The CLI process's share: the call's time outside the daemon's deployment."""
    return w.op.seconds - w.op.daemon_seconds


def overhead(w: Watched, boot: float) -> float:
    """total − build − the app's boot on as many hosts (measured directly)."""
    return w.op.seconds - step(w, "build") - boot


def shipping(w: Watched) -> float:
    return w.shipping.seconds if w.shipping else math.nan


def lean_overhead(w: Watched, boot: float) -> float:
    """overhead − shipping (pack start → installed on every host, watched in this deploy)."""
    return overhead(w, boot) - shipping(w)


def growth(values: dict[int, list[float]]) -> float:
    one, eight = median(values[SIZES[0]]), median(values[SIZES[-1]])
    return eight / one - 1 if one > 0 else math.nan


def rollback_switch(results: Results, w: Watched) -> float:
    """Rollback accepted → the last lb host applied the switch (midpoint of its looks)."""
    return w.switch.last - accepted(results, w) if w.switch.complete else math.nan


def client_moments(part: LoadPart, w: Watched) -> dict[str, float]:
    """Per lb host, when its clients saw only the target release (from the load)."""
    starts = sorted(o.op.started for o in part.deploys + part.rollbacks)
    until = next((t for t in starts if t > w.op.started), part.ended)
    target = str(w.op.deployment["to_release"])
    return {
        lb: switch_moment(
            timeline.between(w.op.started - LOOKBACK_SECONDS, until), target, w.op.started, until
        )
        for lb, timeline in part.timelines.items()
    }


def all_switches(results: Results) -> list[Switch]:
    part = results.load
    loaded = [w.switch for w in (part.deploys + part.rollbacks)] if part else []
    return loaded + [w.switch for ws in results.sweep.values() for w in ws]


# tables ----------------------------------------------------------------------------------


def targets_table(results: Results) -> Table:
    part = results.load
    assert part is not None
    ops = [Window("op", w.op.started, w.op.ended) for w in part.deploys + part.rollbacks]
    during = part.timeline.traffic(ops)
    whole = part.timeline.whole()
    boots = {n: median(results.boots[n]) for n in SIZES}
    overheads = {n: [overhead(w, boots[n]) for w in results.sweep[n]] for n in SIZES}
    lean = {n: [lean_overhead(w, boots[n]) for w in results.sweep[n]] for n in SIZES}
    switches = all_switches(results)
    complete = [s for s in switches if s.complete]
    skews = [s.skew for s in complete]
    bounds = [s.skew_bound for s in complete]
    rollbacks = [rollback_switch(results, w) for w in part.rollbacks]
    grew, lean_grew = growth(overheads), growth(lean)
    table = Table("Targets", ["target", "measured", "limit", "result"], align="lrrl")
    table.rows += [
        [
            f"failed requests during {len(ops)} deploys + rollbacks on {LOADED_HOSTS} app "
            f"hosts, through {len(LBS)} lb hosts",
            f"{during.failed} of {during.requests} (whole session: {whole.failed} of "
            f"{whole.requests})",
            "0",
            verdict(during.failed == 0 and whole.failed == 0),
        ],
        [
            "control-plane overhead (total − build − boot), growth from 1 to 8 app hosts",
            f"{grew:+.0%} ({secs(median(overheads[1]))} → {secs(median(overheads[8]))})",
            f"≤ +{GROWTH_LIMIT:.0%}",
            verdict(grew <= GROWTH_LIMIT),
        ],
        [
            "· the same without shipping the release (pack, copy, install: watched)",
            f"{lean_grew:+.0%} ({secs(median(lean[1]))} → {secs(median(lean[8]))})",
            f"(≤ +{GROWTH_LIMIT:.0%})",
            verdict(lean_grew <= GROWTH_LIMIT),
        ],
        [
            f"lb switch skew, first → last of {len(LBS)} lb hosts ({len(complete)} switches "
            "watched, worst)",
            f"{ms(max(skews, default=math.nan))} (median {ms(median(skews))}; "
            f"at most {ms(max(bounds, default=math.nan))})",
            f"≤ {SKEW_LIMIT * 1000:.0f} ms",
            verdict(len(complete) == len(switches) and max(bounds, default=math.inf) <= SKEW_LIMIT),
        ],
        [
            f"warm rollback: accepted by the daemon → every lb host switched "
            f"({len(rollbacks)}, worst)",
            f"{ms(max(rollbacks, default=math.nan))} (median {ms(median(rollbacks))})",
            f"≤ {ROLLBACK_LIMIT * 1000:.0f} ms",
            verdict(max(rollbacks, default=math.inf) <= ROLLBACK_LIMIT),
        ],
    ]
    table.notes.append(
        "The skew's verdict uses its upper bound (the earliest the first lb host can have "
        "switched to the latest the last one can have, from the watch's looks); a switch "
        "not seen on every lb host counts as a failure. Incomplete switches: "
        f"{len(switches) - len(complete)}."
    )
    return table


def traffic_row(results: Results, name: str, traffic: Traffic, steady: Traffic) -> list[str]:
    assert results.cpu is not None
    return [
        name,
        str(traffic.requests),
        str(traffic.failed),
        lat(traffic.p50_ms),
        lat(traffic.p99_ms),
        lat(traffic.max_ms),
        ratio(traffic.p99_ms, steady.p99_ms),
        lat(traffic.lag_p99_ms),
        pct(results.cpu.busy(traffic.windows)[0]),
    ]


def traffic_table(results: Results) -> Table:
    part = results.load
    assert part is not None
    table = Table(
        f"Traffic through the lb tier ({results.options.rate:g} req/s through each lb host; "
        "latency in ms)",
        ["phase", "requests", "failed", "p50", "p99", "max", "p99 ÷ steady", "send lag p99",
         "CPU busy"],
    )  # fmt: skip
    deploys = [Window("d", w.op.started, w.op.ended) for w in part.deploys]
    rollbacks = [Window("r", w.op.started, w.op.ended) for w in part.rollbacks]
    timelines: list[tuple[str, Timeline]] = [
        ("both lb hosts", part.timeline),
        *part.timelines.items(),
    ]
    for where, timeline in timelines:
        steady = timeline.traffic(part.steady)
        table.rows += [
            traffic_row(results, f"{where}: steady state", steady, steady),
            traffic_row(
                results,
                f"{where}: during {len(deploys)} deploys",
                timeline.traffic(deploys),
                steady,
            ),
            traffic_row(
                results,
                f"{where}: during {len(rollbacks)} rollbacks",
                timeline.traffic(rollbacks),
                steady,
            ),
            traffic_row(results, f"{where}: whole session", timeline.whole(), steady),
        ]
    table.notes.append(
        "As in bench/zero_downtime: a request belongs to a phase if it was due (fixed-rate "
        "schedule) between the CLI call and its return; latency counts from when it was due. "
        "A failed request is no response or a 5xx. The steady state is the first "
        f"{results.options.steady_seconds:g} s plus a {results.options.quiet_seconds:g} s "
        "slice after every round. CPU busy: the whole machine."
    )
    errors = part.timeline.whole().errors
    if errors:
        table.notes.append(f"Failures by kind: {errors}.")
    return table


def cell(values: Sequence[float]) -> str:
    """median (max)."""
    if not values:
        return "n/a"
    return f"{secs(median(values))} ({secs(max(values))})"


def sweep_table(results: Results) -> Table:
    sweep, boots, installs = results.sweep, results.boots, results.installs
    boot = {n: median(boots[n]) for n in SIZES}
    over = {n: [overhead(w, boot[n]) for w in sweep[n]] for n in SIZES}
    lean = {n: [lean_overhead(w, boot[n]) for w in sweep[n]] for n in SIZES}

    def shipped(measure: str) -> dict[int, list[float]]:
        return {
            n: [getattr(w.shipping, measure) if w.shipping else math.nan for w in sweep[n]]
            for n in SIZES
        }

    rest = {n: [step(w, "start") - shipping(w) for w in sweep[n]] for n in SIZES}
    table = Table(
        f"Deploy time by number of app hosts (one instance per host; "
        f"{results.options.sweep_rounds} deploys each; median (max))",
        ["measure", *(f"{n} host{'s' if n > 1 else ''}" for n in SIZES), "what it is"],
        align="l" + "r" * len(SIZES) + "l",
    )

    def row(name: str, values: dict[int, list[float]], what: str) -> list[str]:
        return [name, *(cell(values[n]) for n in SIZES), what]

    def steps(name: str) -> dict[int, list[float]]:
        return {n: [step(w, name) for w in sweep[n]] for n in SIZES}

    def grown(values: dict[int, list[float]]) -> list[str]:
        base = median(values[SIZES[0]])
        return [f"{median(values[n]) / base - 1:+.0%}" if base > 0 else "n/a" for n in SIZES]

    table.rows += [
        row("total", {n: [w.op.seconds for w in sweep[n]] for n in SIZES}, "`slipway deploy` call"),
        row("· build step", steps("build"), "on the control host: virtualenv + pip, once"),
        row("· start step", steps("start"), "place, pack + ship + install, spawn, add servers"),
        row("  · shipping (watched)", shipped("seconds"), "pack start → installed on every host"),
        row("    · pack (watched)", shipped("pack_seconds"), "the archive, on the control host"),
        row("    · slowest install (watched)", shipped("install_seconds"), "unpack + venv, a host"),
        row("  · start step − shipping", rest, "place, spawn, add servers to every lb"),
        row(
            "    · adding the servers (watched)",
            {n: [w.adding for w in sweep[n]] for n in SIZES},
            "first → last new server in an lb's HAProxy",
        ),
        row("· health step", steps("health"), "slipway's probe and HAProxy's checks pass"),
        row("· shift step", steps("shift"), "the weight switch on every lb host"),
        row(
            "· drain + retire",
            {n: [step(w, "drain") + step(w, "retire") for w in sweep[n]] for n in SIZES},
            "daemon events",
        ),  # fmt: skip
        row(
            "· CLI process",
            {n: [cli_seconds(w) for w in sweep[n]] for n in SIZES},
            "total − the daemon's accepted → finished",
        ),  # fmt: skip
        row("app boot, N at once (direct)", boots, "hello in N namespaces: spawn → all /up"),
        row("install, N at once (direct)", installs, "artifact.install in N processes"),
        row("**overhead** = total − build − boot", over, "the target's measure"),
        ["· growth from 1 host", *grown(over), "medians"],
        row("overhead − shipping", lean, "the control plane without shipping the release"),
        ["· growth from 1 host", *grown(lean), "medians"],
    ]
    table.notes.append(
        "Every size is a separate app (a copy of hello, `web` = N, `[placement] hosts` = "
        "app1..appN) on the same fleet and daemon, deployed in rotated order round by round, "
        "each deploy just after the app's own boot (and the shipping work) measured directly "
        "on as many hosts. One instance per host, so each host's work is the same at every "
        "size: a control plane that works hosts in parallel takes as long for 8 as for 1. "
        "All hosts share this machine's 2 CPUs: the direct rows measure what that sharing "
        "costs (boots and installs N at once)."
    )
    return table


def loaded_deploy_table(results: Results) -> Table:
    part = results.load
    assert part is not None
    boot = median(part.boots)
    deploys = part.deploys
    table = Table(
        f"Deploys under load ({len(deploys)} blue-green deploys, {LOADED_HOSTS} app hosts, "
        "one instance each)",
        ["measure", "median", "max", "what it is"],
        align="lrrl",
    )

    def row(name: str, values: list[float], what: str) -> list[str]:
        return [name, secs(median(values)), secs(max(values, default=math.nan)), what]

    table.rows += [
        row("total", [w.op.seconds for w in deploys], "`slipway deploy` call"),
        *(
            row(f"· {name} step", [step(w, name) for w in deploys], "daemon event")
            for name in ("build", "start", "health", "shift", "drain", "retire")
        ),
        row("· CLI process", [cli_seconds(w) for w in deploys], "outside the daemon"),
        row(
            f"app boot on {LOADED_HOSTS} hosts at once (direct)",
            part.boots,
            "under the same load",
        ),
        row("overhead = total − build − boot", [overhead(w, boot) for w in deploys], ""),
    ]
    return table


def rollback_table(results: Results) -> Table:
    part = results.load
    assert part is not None
    rbs = part.rollbacks
    clients = [client_moments(part, w) for w in rbs]
    table = Table(
        f"Warm rollback ({len(rbs)}, {LOADED_HOSTS} app hosts, {len(LBS)} lb hosts)",
        ["measure", "median", "max", "from → to"],
        align="lrrl",
    )

    def row(name: str, values: list[float], what: str) -> list[str]:
        return [name, ms(median(values)), ms(max(values, default=math.nan)), what]

    table.rows += [
        row(
            "daemon-side",
            [float(w.op.event("shift")["at"]) - float(w.op.deployment["started_at"]) for w in rbs],
            "accepted → the `shift` step's ok event",
        ),
        row(
            "watched: first lb host",
            [w.switch.first - accepted(results, w) for w in rbs],
            "accepted → the first lb host's HAProxy has the switch",
        ),
        row(
            "**watched: every lb host**",
            [rollback_switch(results, w) for w in rbs],
            "accepted → the last lb host's HAProxy has it (the target)",
        ),
        row(
            "watched: every lb host, latest",
            [w.switch.done - accepted(results, w) for w in rbs],
            "accepted → the last look that saw it answered (an upper bound)",
        ),
        row(
            "client-observed: every lb host",
            [max(c.values()) - accepted(results, w) for c, w in zip(clients, rbs, strict=True)],
            "accepted → every response through each lb host from the old release",
        ),
        row("rollback CLI call", [w.op.seconds for w in rbs], "`slipway rollback` call → return"),
    ]
    steps = sorted(
        {e["step"] for w in rbs for e in w.op.output["events"] if e["status"] == "ok"} - {"done"}
    )
    said = ", ".join(f"{s} {ms(median([step(w, s) for w in rbs]))}" for s in steps)
    table.notes.append(f"The rollback's steps (daemon events, medians): {said}.")
    return table


def skew_table(results: Results) -> Table:
    part = results.load
    assert part is not None
    groups: list[tuple[str, list[Watched]]] = [
        (f"warm rollbacks under load ({LOADED_HOSTS} app hosts)", part.rollbacks),
        (f"deploys under load ({LOADED_HOSTS} app hosts)", part.deploys),
        *((f"deploys, {n} app host(s), no load", results.sweep[n]) for n in SIZES),
    ]
    table = Table(
        f"lb switch skew: between the first and the last of {len(LBS)} lb hosts applying a "
        "weight switch",
        ["switches", "seen", "skew median", "skew max", "upper bound max", "one lb's own span",
         "look every (p50 / max)", "client-observed skew"],
    )  # fmt: skip
    for name, watched in groups:
        done = [w.switch for w in watched if w.switch.complete]
        gaps = [g for w in watched for g in w.gaps]
        spans = [a.at - a.began for s in done for a in s.hosts]
        client = "—"
        if watched is part.rollbacks or watched is part.deploys:
            skews = []
            for w in watched:
                moments = client_moments(part, w)
                if not any(math.isnan(m) for m in moments.values()):
                    skews.append(max(moments.values()) - min(moments.values()))
            client = f"{ms(median(skews))} / {ms(max(skews, default=math.nan))}"
        table.rows.append(
            [
                name,
                f"{len(done)} of {len(watched)}",
                ms(median([s.skew for s in done])),
                ms(max((s.skew for s in done), default=math.nan)),
                ms(max((s.skew_bound for s in done), default=math.nan)),
                ms(median(spans)),
                f"{median(gaps) * 1000:.1f} / {max(gaps, default=math.nan) * 1000:.0f} ms",
                client,
            ]
        )
    table.notes.append(
        "Measured from outside: a thread per lb host asks its HAProxy's admin socket (`show "
        "servers state`) for the app's server weights, about once a millisecond, from just "
        "before the CLI call until it returns. An lb host has applied the switch at the first "
        "look whose servers with weight > 0 are exactly those serving at the end; its moment "
        "is the midpoint between the last look without it being asked and that look being "
        "answered. Skew: last lb host's moment − first's; upper bound: the widest the looks "
        "allow. One lb's own span: the first server gaining or losing traffic there → switch "
        "applied (the agent sends the raised weights in one admin request, then the lowered "
        "ones in another). Client-observed: "
        "per lb host, the first response from the target release after which every response "
        "through it is from it (a resolution of about one request interval, "
        f"{results.options.concurrency / results.options.rate * 1000:.0f} ms per connection)."
    )
    return table


def tables(results: Results) -> list[Table]:
    return [
        targets_table(results),
        traffic_table(results),
        sweep_table(results),
        loaded_deploy_table(results),
        rollback_table(results),
        skew_table(results),
    ]


# context -----------------------------------------------------------------------------------


def noise(results: Results) -> str:
    cpu = results.cpu
    assert cpu is not None and results.load is not None
    foreign = cpu.foreign
    share = foreign.seconds / cpu.seconds if cpu.seconds else math.nan
    top = ", ".join(
        f"{name} {sec:.1f} s" for name, sec in foreign.by_name.most_common(3) if sec >= 0.05
    )
    steal = cpu.busy([(cpu.times[0], cpu.times[-1])])[1] if cpu.times else math.nan
    lag = results.load.timeline.traffic(results.load.steady).lag_p99_ms
    quiet = results.busy_before <= 0.15 and share <= 0.05 and lag <= MAX_STEADY_LAG_MS
    return (
        f"{pct(results.busy_before)} CPU busy just before the run; other processes used "
        f"{foreign.seconds:.1f} CPU-seconds during it ({pct(share)} of one CPU"
        f"{'; most: ' + top if top else ''}); CPU time stolen by the hypervisor: {steal:.1%}; "
        f"the load generators' send lag p99 in the steady state: {lat(lag)} ms"
        + ("" if quiet else " — NOISY, do not trust")
    )


def context(results: Results) -> list[str]:
    o, part = results.options, results.load
    assert part is not None
    prioritised = all(r.prioritised for r in part.loads.values())
    load_cpu = sum(r.cpu_share for r in part.loads.values())
    return [
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(results.started_at))}",
        f"slipway: commit {results.revision}",
        f"machine: {machine()}",
        f"noise: {noise(results)}",
        f"fleet: {len(LBS)} lb + {len(APP_HOSTS)} app hosts, each a network namespace with "
        f"its own sshd and slipway agent, on one bridge (set up and added in "
        f"{results.setup_seconds:.1f} s); the control plane in the root namespace",
        f"load: {o.rate:g} req/s fixed rate through each lb host ({o.concurrency} connections "
        f"each), {o.rounds} rounds (deploy, warm rollback), steady state {o.steady_seconds:g} s "
        f"first and {o.quiet_seconds:g} s after each round, {o.settle_seconds:g} s between "
        f"operations; the load generators (Python, one process per lb host"
        f"{', at nice ' + str(PRIORITY) if prioritised else ''}) used {load_cpu:.0%} of one CPU",
    ]


def render_text(results: Results, all_tables: list[Table]) -> str:
    return text_page("Fleet deploys", context(results), all_tables, results.leftovers)


def render_markdown(results: Results, all_tables: list[Table]) -> str:
    return markdown_page(context(results), all_tables, results.leftovers)


# raw numbers --------------------------------------------------------------------------------


def watched_raw(results: Results, w: Watched) -> dict[str, object]:
    s = w.switch
    return {
        "kind": w.op.kind,
        "seconds": w.op.seconds,
        "daemon_seconds": w.op.daemon_seconds,
        "to_release": w.op.deployment["to_release"],
        "steps": {
            e["step"]: e["data"]["seconds"]
            for e in w.op.output["events"]
            if e["status"] == "ok" and "seconds" in e["data"]
        },
        "switch": {
            a.host: {
                "after": a.after - accepted(results, w),
                "before": a.before - accepted(results, w),
                "first_change": a.began - accepted(results, w),
            }
            for a in s.hosts
        },
        "skew": s.skew,
        "skew_bound": s.skew_bound,
    }


def raw(results: Results) -> dict[str, object]:
    """Every operation's numbers (switch times from the daemon accepting it), for a closer
    look than the tables give."""
    part = results.load
    assert part is not None
    return {
        "options": vars(results.options),
        "boots": results.boots,
        "installs": results.installs,
        "packs": results.packs,
        "sweep": {n: [watched_raw(results, w) for w in ws] for n, ws in results.sweep.items()},
        "loaded_boots": part.boots,
        "deploys": [watched_raw(results, w) for w in part.deploys],
        "rollbacks": [
            watched_raw(results, w)
            | {
                "client": {
                    lb: t - accepted(results, w) for lb, t in client_moments(part, w).items()
                }
            }
            for w in part.rollbacks
        ],
    }
