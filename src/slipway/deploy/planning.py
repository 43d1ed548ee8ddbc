"""Step planning for deployments. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable

from slipway.config.schema import AppConfig
from slipway.store.records import Release

DEPLOY_STEPS = ("build", "gates", "start", "health", "perf", "shift", "drain", "retire")
CANARY_STEPS = ("build", "gates", "start", "health", "perf", "canary", "shift", "drain", "retire")
# A check runs every gate of a new release, then stops what it started: nothing is deployed.
CHECK_STEPS = ("build", "gates", "start", "health", "perf", "cleanup")
# Started again (rollback, scale, restore), a release that already passed its gates needs none.
RESTART_STEPS = ("start", "health", "shift", "drain", "retire")
# Rolling (fleets without room for two releases): instances are replaced a few at a time;
# a rollback or a secrets change of a rolling app rolls too. Scale and restore only add or
# remove instances of one release: their usual steps need no extra room.
ROLLING_STEPS = ("build", "gates", "roll", "retire")
ROLLED_AGAIN_STEPS = ("roll", "retire")
ROLLED_KINDS = frozenset({"rollback", "config"})
# The warm release's web instances started again (after `down --all`): never given traffic.
WARM_STEPS = ("start", "health")
# A daemon restarted in the middle of a deployment rolls back one that had not given the
# new release traffic yet, resumes a canary (its judge continues from recorded data), and
# finishes one that had shifted all traffic.
# A roll goes on where it was (what serves is a mix of both releases, each instance healthy);
# One being undone ("unroll") fails again on restart, which undoes it to the end.
RESUMED_AFTER_RESTART = frozenset({"canary", "shift", "drain", "retire", "roll"})
# A failing step undoes the deployment (the stable release takes all traffic back) only
# until the shift; after it, the new release is the stable one.
UNDONE_ON_FAILURE = frozenset(
    {"build", "gates", "start", "health", "perf", "canary", "cleanup", "roll", "unroll"}
)


def steps_for(kind: str, strategy: str = "bluegreen") -> tuple[str, ...]:
    if kind == "check":
        return CHECK_STEPS
    if kind == "warm":
        return WARM_STEPS
    if strategy == "rolling":
        if kind == "deploy":
            return ROLLING_STEPS
        if kind in ROLLED_KINDS:
            return ROLLED_AGAIN_STEPS
    if kind != "deploy":
        return RESTART_STEPS
    return CANARY_STEPS if strategy == "canary" else DEPLOY_STEPS


def first_step(kind: str, strategy: str) -> str:
    return steps_for(kind, strategy)[0]


def rolled_or_not(config: AppConfig | None) -> str:
    """A rolling app rolls its rollbacks and secrets changes too (it has no room for two
    releases); for the others they are blue-green."""
    return "rolling" if config is not None and config.deploy.strategy == "rolling" else "bluegreen"


def next_state(
    kind: str, state: str, strategy: str = "bluegreen", skip: frozenset[str] = frozenset()
) -> str:
    """The step after `state`, passing over those in `skip` (e.g. perf without a performance
    gate; a check without one need not start anything)."""
    steps = [s for s in steps_for(kind, strategy) if s == state or s not in skip]
    index = steps.index(state)
    return steps[index + 1] if index + 1 < len(steps) else "done"


def resumed_after_restart(state: str) -> bool:
    return state in RESUMED_AFTER_RESTART


def undone_on_failure(state: str) -> bool:
    return state in UNDONE_ON_FAILURE


def split_weights(share: float, stable_servers: int, candidate_servers: int) -> tuple[int, int]:
    """Per-server HAProxy weights (stable, candidate), each 1–256, so that under roundrobin the
    candidate's servers together get `share` percent of requests, as closely as integers
    allow (5% with 2 + 2 servers: 19 and 1)."""
    target = share / 100
    best: tuple[float, int, int] | None = None
    for stable in range(1, 257):
        candidate = round(stable * target * stable_servers / ((1 - target) * candidate_servers))
        if not 1 <= candidate <= 256:
            continue
        got = (
            candidate
            * candidate_servers
            / (candidate * candidate_servers + stable * stable_servers)
        )
        if best is None or abs(got - target) < best[0] - 1e-12:
            best = (abs(got - target), stable, candidate)
    if best is None:
        raise ValueError(f"no weights give {share}% with {stable_servers}+{candidate_servers}")
    return best[1], best[2]


def plan_formation(
    current: dict[str, int], old: AppConfig | None, new: AppConfig
) -> dict[str, int]:
    """Instances per process type for a new release.

    `slipway scale` choices survive deploys (as on Heroku) unless the new config changes
    that process type's [scale] entry, which then wins (as in Kamal). An autoscaled process
    keeps the count the autoscaler reached (within the new [autoscale] bounds): a deploy
    at peak load must not start with the count of a quiet hour."""
    formation = {}
    for process in new.processes:
        wanted = new.scale.get(process, 1)
        unchanged = (
            old is not None
            and process in old.processes
            and old.scale.get(process, 1) == wanted
            and process in current
        )
        formation[process] = current[process] if unchanged else wanted
        policy = new.autoscale.get(process)
        if policy is not None:
            count = current.get(process, wanted)
            formation[process] = min(policy.max, max(policy.min, count))
    return formation


def rollback_target(releases: list[Release], current: str | None) -> Release | None:
    """The release that served before the current one: the latest deployed other release
    that can still run (ready and on disk)."""
    candidates = [
        r
        for r in releases
        if r.deployed_at is not None and r.id != current and r.status == "ready" and r.on_disk
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda r: r.deployed_at or 0.0)


def releases_to_prune(releases: list[Release], keep: int, protected: set[str]) -> list[Release]:
    """Releases whose files can go: beyond the newest `keep` ready ones, never protected ones."""
    on_disk = [r for r in releases if r.on_disk and r.status != "building"]
    ready = sorted((r for r in on_disk if r.status == "ready"), key=lambda r: -r.number)
    kept = {r.id for r in ready[:keep]} | protected
    return [r for r in on_disk if r.id not in kept]


def warm_release(releases: list[Release], current: str, now: float) -> Release | None:
    """The release kept warm for an instant rollback at `now`, if any."""
    warm = [r for r in releases if r.id != current and r.warm_until and r.warm_until > now]
    return warm[0] if warm else None


def thin_traffic(
    rate: float,
    steps: list[float],
    min_requests: int,
    min_seconds: float,
    timeout: float,
    unproven: Callable[[list[tuple[float, float]]], list[str]] | None = None,
) -> str | None:
    """A warning when, at `rate` requests/s, the candidate cannot get `min_requests` within
    `timeout` at some step's share, or (with `unproven`: the judge's checks that a good
    candidate would not be shown no worse on, given (share 0–1, candidate requests) per
    step) cannot be promoted out of the last step within `timeout`; with settings that
    would work. None when it can."""
    if not steps:
        return None
    first = min(steps)
    per_second = rate * first / 100
    if per_second * timeout >= min_requests:
        return (
            None
            if unproven is None
            else _unprovable(rate, steps, min_requests, min_seconds, timeout, unproven)
        )
    seconds = min_requests / per_second if per_second > 0 else math.inf
    need_share = 100 * min_requests / (rate * timeout) if rate > 0 else math.inf
    options = [f"step_min_requests = {max(1, int(per_second * timeout * 0.8))}"]
    if need_share <= 50:
        options.append(f"a first step of {math.ceil(need_share)}%")
    if math.isfinite(seconds):
        options.append(f'step_timeout = "{math.ceil(seconds * 1.25)}s"')
    wait = "never" if not math.isfinite(seconds) else f"after about {seconds:.0f}s"
    return (
        f"thin traffic: the app served {rate:.1f} requests/s in the last minute, so at "
        f"{first:g}% the candidate gets {per_second:.2f}/s and reaches step_min_requests = "
        f"{min_requests} {wait}, past step_timeout ({timeout:g}s); the step will end "
        f"inconclusive. Would work: {' or '.join(options)}"
        + (f" (and step_min_seconds = {min_seconds:g}s still applies)" if min_seconds else "")
    )


def _unprovable(
    rate: float,
    steps: list[float],
    min_requests: int,
    min_seconds: float,
    timeout: float,
    unproven: Callable[[list[tuple[float, float]]], list[str]],
) -> str | None:
    """The last step needs evidence that the candidate is no worse, gathered over the whole
    canary: the earlier steps last until they have `min_requests` and `min_seconds`, the last
    one until `timeout`. A warning when even a candidate as good as the stable would likely
    not get it, with the step_timeout that would do."""
    last = steps[-1]
    per_second = rate * last / 100
    earlier = [(s / 100, max(min_requests, rate * s / 100 * min_seconds)) for s in steps[:-1]]

    def short(seconds: float) -> list[str]:
        return unproven([*earlier, (last / 100, per_second * seconds)])

    checks = short(timeout)
    if not checks or per_second <= 0:
        return None
    enough = timeout * 2
    while short(enough) and enough < timeout * 1024:
        enough *= 2
    options = ['on_inconclusive = "pause"']
    if not short(enough):
        low = enough / 2
        while enough - low > max(1.0, enough / 50):
            middle = (low + enough) / 2
            low, enough = (low, middle) if not short(middle) else (middle, enough)
        options.insert(0, f'step_timeout = "{math.ceil(enough * 1.25)}s"')
    return (
        f"thin traffic: the app served {rate:.1f} requests/s in the last minute, so at the "
        f"last step ({last:g}%) the candidate gets {per_second:.2f}/s; by step_timeout "
        f"({timeout:g}s) even a candidate as good as the stable would likely not be shown no "
        f"worse on {', '.join(checks)}, and the canary will end inconclusive. Would work: "
        f"{' or '.join(options)}"
    )
