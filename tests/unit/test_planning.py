"""Deployment step planning: steps, point of no return, formations, rollback, pruning."""

from __future__ import annotations

import pytest

from slipway.config.load import parse_config
from slipway.config.schema import AppConfig
from slipway.deploy.planning import (
    DEPLOY_STEPS,
    next_state,
    plan_formation,
    releases_to_prune,
    resumed_after_restart,
    rollback_target,
    split_weights,
    steps_for,
    undone_on_failure,
)
from slipway.store.records import Release


def make_config(processes: dict[str, str], scale: dict[str, int] | None = None) -> AppConfig:
    lines = ['name = "shop"', "[processes]"]
    lines += [f'{name} = "{command}"' for name, command in processes.items()]
    if scale is not None:
        lines.append("[scale]")
        lines += [f"{name} = {count}" for name, count in scale.items()]
    return parse_config("\n".join(lines) + "\n")


WEB = "python app.py --port $PORT"
WORKER = "python worker.py"


def release(
    number: int,
    status: str = "ready",
    deployed_at: float | None = None,
    on_disk: bool = True,
) -> Release:
    return Release(
        app="shop",
        id=f"r{number}",
        number=number,
        status=status,
        created_at=1000.0 + number,
        source="/srv/shop",
        source_kind="dir",
        git_sha=None,
        config_hash="0" * 12,
        config_json="{}",
        deployed_at=deployed_at,
        on_disk=on_disk,
    )


# -- steps -----------------------------------------------------------------------------


def test_deploy_runs_every_step_in_order() -> None:
    assert steps_for("deploy") == (
        "build",
        "gates",
        "start",
        "health",
        "perf",
        "shift",
        "drain",
        "retire",
    )


def test_gates_run_before_traffic_and_the_performance_gate_after_health() -> None:
    steps = steps_for("deploy", "canary")
    assert steps.index("build") < steps.index("gates") < steps.index("start")
    assert steps.index("health") < steps.index("perf") < steps.index("canary")


def test_steps_with_nothing_to_do_are_passed_over() -> None:
    assert next_state("deploy", "health", skip=frozenset({"perf"})) == "shift"
    assert next_state("deploy", "health") == "perf"
    skip = frozenset({"start", "health", "perf"})
    assert next_state("check", "gates", skip=skip) == "cleanup"
    assert next_state("check", "cleanup", skip=skip) == "done"


def test_a_check_never_shifts_traffic() -> None:
    assert not {"canary", "shift", "drain", "retire"} & set(steps_for("check"))
    assert steps_for("check")[-1] == "cleanup"


@pytest.mark.parametrize("kind", ["rollback", "scale", "restore"])
def test_other_kinds_skip_the_build(kind: str) -> None:
    assert steps_for(kind) == ("start", "health", "shift", "drain", "retire")


def test_next_state_walks_the_steps_then_done() -> None:
    state = "build"
    seen = [state]
    while state != "done":
        state = next_state("deploy", state)
        seen.append(state)
    assert seen == [*DEPLOY_STEPS, "done"]


def test_next_state_of_rollback_starts_at_start() -> None:
    assert next_state("rollback", "start") == "health"
    assert next_state("rollback", "retire") == "done"
    with pytest.raises(ValueError):
        next_state("rollback", "build")  # a rollback has no build step


@pytest.mark.parametrize(
    ("state", "resumed", "undone"),
    [
        ("build", False, True),
        ("gates", False, True),
        ("start", False, True),
        ("perf", False, True),
        ("cleanup", False, True),
        ("health", False, True),
        ("canary", True, True),  # the judge resumes; a failing canary gives traffic back
        ("shift", True, False),
        ("drain", True, False),
        ("retire", True, False),
        ("done", False, False),
    ],
)
def test_what_a_restart_or_a_failure_does_at_each_step(
    state: str, resumed: bool, undone: bool
) -> None:
    assert resumed_after_restart(state) is resumed
    assert undone_on_failure(state) is undone


def test_a_canary_deploy_judges_between_health_and_shift() -> None:
    assert steps_for("deploy", "canary") == (
        "build",
        "gates",
        "start",
        "health",
        "perf",
        "canary",
        "shift",
        "drain",
        "retire",
    )
    assert next_state("deploy", "perf", "canary") == "canary"
    assert next_state("deploy", "canary", "canary") == "shift"
    assert steps_for("rollback", "canary")[0] == "start", "rollbacks are always blue-green"
    assert "canary" not in steps_for("rollback", "canary")


@pytest.mark.parametrize(
    ("share", "stable", "candidate"),
    [(5, 2, 2), (1, 2, 2), (25, 3, 1), (50, 2, 2), (10, 1, 3), (5, 1, 1), (99, 2, 2)],
)
def test_split_weights_give_the_share_under_roundrobin(
    share: float, stable: int, candidate: int
) -> None:
    ws, wc = split_weights(share, stable, candidate)
    assert 1 <= ws <= 256 and 1 <= wc <= 256
    got = 100 * wc * candidate / (wc * candidate + ws * stable)
    assert abs(got - share) < 0.05, (ws, wc, got)


# -- formation -------------------------------------------------------------------------


def test_first_deploy_uses_config_scale_or_one() -> None:
    new = make_config({"web": WEB, "worker": WORKER}, {"worker": 3})
    assert plan_formation({}, None, new) == {"web": 1, "worker": 3}


def test_scale_choice_survives_deploy_when_config_scale_unchanged() -> None:
    old = make_config({"web": WEB, "worker": WORKER}, {"web": 2})
    new = make_config({"web": WEB + " --v2", "worker": WORKER}, {"web": 2})
    # the user ran `slipway scale web=5 worker=0` since the last deploy
    assert plan_formation({"web": 5, "worker": 0}, old, new) == {"web": 5, "worker": 0}


def test_scale_choice_survives_when_neither_config_has_a_scale_entry() -> None:
    old = make_config({"web": WEB})
    new = make_config({"web": WEB})
    assert plan_formation({"web": 4}, old, new) == {"web": 4}


def test_changed_config_scale_entry_wins_over_scale_choice() -> None:
    old = make_config({"web": WEB, "worker": WORKER}, {"web": 2, "worker": 1})
    new = make_config({"web": WEB, "worker": WORKER}, {"web": 3, "worker": 1})
    assert plan_formation({"web": 5, "worker": 4}, old, new) == {"web": 3, "worker": 4}


def test_removed_config_scale_entry_counts_as_a_change() -> None:
    old = make_config({"web": WEB}, {"web": 2})
    new = make_config({"web": WEB})
    assert plan_formation({"web": 5}, old, new) == {"web": 1}


def test_new_process_type_gets_config_scale_or_one() -> None:
    old = make_config({"web": WEB})
    new = make_config({"web": WEB, "worker": WORKER, "mailer": "python mail.py"}, {"worker": 2})
    assert plan_formation({"web": 3}, old, new) == {"web": 3, "worker": 2, "mailer": 1}


def test_removed_process_type_disappears() -> None:
    old = make_config({"web": WEB, "worker": WORKER})
    new = make_config({"web": WEB})
    assert plan_formation({"web": 2, "worker": 3}, old, new) == {"web": 2}


def test_process_missing_from_current_formation_gets_config_value() -> None:
    old = make_config({"web": WEB, "worker": WORKER}, {"worker": 2})
    new = make_config({"web": WEB, "worker": WORKER}, {"worker": 2})
    assert plan_formation({"web": 2}, old, new) == {"web": 2, "worker": 2}


# -- rollback target -------------------------------------------------------------------


def test_rollback_target_is_latest_deployed_other_release() -> None:
    releases = [
        release(1, deployed_at=100.0),
        release(2, deployed_at=300.0),  # current
        release(3, deployed_at=200.0),  # deployed, then rolled back from
        release(4),  # built, never deployed
        release(5, status="failed"),
    ]
    target = rollback_target(releases, "r2")
    assert target is not None and target.id == "r3"


def test_rollback_target_uses_deploy_time_not_release_number() -> None:
    releases = [release(1, deployed_at=500.0), release(2, deployed_at=100.0)]
    target = rollback_target(releases, "r3")
    assert target is not None and target.id == "r1"


def test_rollback_target_none_when_nothing_else_served() -> None:
    assert rollback_target([release(1, deployed_at=10.0), release(2)], "r1") is None
    assert rollback_target([], None) is None


# -- pruning ---------------------------------------------------------------------------


def ids(releases: list[Release]) -> list[str]:
    return [r.id for r in releases]


def test_prune_keeps_newest_ready_releases() -> None:
    releases = [release(n) for n in range(1, 7)]
    assert ids(releases_to_prune(releases, keep=3, protected=set())) == ["r1", "r2", "r3"]


def test_prune_never_removes_protected_releases() -> None:
    releases = [release(n) for n in range(1, 6)]
    pruned = releases_to_prune(releases, keep=2, protected={"r1", "r3"})
    assert ids(pruned) == ["r2"]


def test_prune_skips_building_and_already_removed_releases() -> None:
    releases = [
        release(1, on_disk=False),
        release(2),
        release(3, status="building"),
        release(4),
    ]
    assert ids(releases_to_prune(releases, keep=1, protected=set())) == ["r2"]


def test_prune_removes_failed_releases_without_counting_them_as_kept() -> None:
    releases = [release(1), release(2), release(3, status="failed"), release(4, status="failed")]
    pruned = releases_to_prune(releases, keep=2, protected=set())
    assert sorted(ids(pruned)) == ["r3", "r4"]


def test_prune_nothing_when_under_the_limit() -> None:
    releases = [release(1), release(2)]
    assert releases_to_prune(releases, keep=5, protected=set()) == []


def test_rollback_target_skips_releases_that_can_no_longer_run() -> None:
    releases = [
        release(1, deployed_at=100.0),
        release(2, deployed_at=200.0, on_disk=False),  # pruned
        release(3, deployed_at=300.0),  # current
    ]
    target = rollback_target(releases, "r3")
    assert target is not None and target.id == "r1"
