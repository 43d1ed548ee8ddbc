"""Step planning for deployments. Pure: no I/O."""

from __future__ import annotations

from slipway.config.schema import AppConfig
from slipway.store.records import Release

DEPLOY_STEPS = ("build", "start", "health", "shift", "drain", "retire")
# Once the shift step is committed, traffic may already be on the new release: a daemon
# restarted after that point finishes the deployment; before it, it rolls it back.
FORWARD_FROM = DEPLOY_STEPS.index("shift")


def steps_for(kind: str) -> tuple[str, ...]:
    return DEPLOY_STEPS if kind == "deploy" else DEPLOY_STEPS[1:]


def next_state(kind: str, state: str) -> str:
    steps = steps_for(kind)
    index = steps.index(state)
    return steps[index + 1] if index + 1 < len(steps) else "done"


def past_point_of_no_return(state: str) -> bool:
    return state in DEPLOY_STEPS and DEPLOY_STEPS.index(state) >= FORWARD_FROM


def plan_formation(
    current: dict[str, int], old: AppConfig | None, new: AppConfig
) -> dict[str, int]:
    """Instances per process type for a new release.

    `slipway scale` choices survive deploys (as on Heroku) unless the new config changes
    that process type's [scale] entry, which then wins (as in Kamal)."""
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
