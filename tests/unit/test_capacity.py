"""Capacity: each host holds what it has (or what the operator set), every instance that is
not stopped takes what its [resources] say, a placement that does not fit is refused with
the fleet-full error and alert, and instances kept warm give up their room first."""

from __future__ import annotations

import pytest

from slipway.alerts.engine import fleet_full
from slipway.deploy import placement
from slipway.deploy.capacity import GIB, FleetFull, Need, Room, capacity, used
from slipway.hosts.model import Host
from slipway.store.records import Deployment, Instance
from tests.unit.test_engine import APP, World, config_text

SMALL = Need(0.5, GIB // 4)


def host(name: str, cores: int = 2, memory: int = 4 * GIB, **facts: object) -> Host:
    return Host(name, "10.0.0.1", frozenset({"app"}), facts={"cores": cores, "memory": memory,
                                                              **facts})  # fmt: skip


def instance(host: str, status: str = "running", app: str = "a", release: str = "r1") -> Instance:
    return Instance(app, f"{release}-web-{host}", release, "web", 1, status, None, None, 100,
                    0.0, host=host)  # fmt: skip


def test_a_host_holds_its_cores_and_most_of_its_memory_unless_set_by_hand() -> None:
    assert capacity(host("a", 4, 10 * GIB)) == Need(4.0, 9 * GIB)
    assert capacity(host("a", capacity={"cpu": 1.5})) == Need(1.5, int(4 * GIB * 0.9))
    assert capacity(host("a", capacity={"memory": GIB})) == Need(2.0, GIB)


def test_every_instance_not_stopped_takes_room_whatever_its_app_or_release() -> None:
    instances = [
        instance("a"),
        instance("a", "starting", app="b"),
        instance("a", "stopping", release="r0"),
        instance("a", "stopped", release="r9"),
        instance("b"),
    ]
    taken = used(instances, lambda i: SMALL)
    assert taken == {"a": Need(1.5, 3 * GIB // 4), "b": SMALL}


def test_placement_spreads_over_hosts_with_room_and_skips_a_full_one() -> None:
    hosts = [host("a", 1), host("b", 1), host("c", 1)]
    room = Room(hosts, {"a": Need(1.0, 0)})  # a is full
    chosen = placement.place("web", 4, ["a", "b", "c"], [], room, SMALL)
    assert chosen == ["b", "c", "b", "c"]
    assert room.free["b"] == Need(0.0, 4 * GIB * 9 // 10 - GIB // 2)


def test_a_placement_that_does_not_fit_is_refused_naming_each_hosts_room() -> None:
    room = Room([host("a", 1), host("b", 1)], {})
    with pytest.raises(FleetFull) as refused:
        placement.place("web", 5, ["a", "b"], [], room, SMALL)
    message = refused.value.message
    assert "no host may take 1 more instance(s) of web (0.5 cpu, 0.25 GiB each)" in message
    assert "a: 0 cpu, 3.10 GiB free of 1 cpu, 3.60 GiB" in message
    assert "[resources.web]" in (refused.value.fix or "")


def test_memory_bounds_a_host_as_much_as_cores() -> None:
    room = Room([host("a", 64, 2 * GIB)], {})
    assert len(placement.place("web", 7, ["a"], [], room, SMALL)) == 7  # 1.8 GiB / 0.25
    with pytest.raises(FleetFull):
        placement.place("web", 1, ["a"], [], room, SMALL)


# whole deployments (the fleet of test_engine: three app hosts of 1 core each) -----------

HALF_A_CORE = "[resources.web]\ncpu = 0.5\n"


@pytest.fixture
def world(tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)  # type: ignore[arg-type]


def test_a_deploy_past_the_fleets_capacity_fails_before_starting_anything(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text(web=3) + HALF_A_CORE)
        started = len(world.runtime.started())
        dep = await world.run(world.begin(world.release(config_text(web=4) + HALF_A_CORE)))
        assert dep.outcome == "failed"
        assert dep.error is not None and dep.error["kind"] == "fleet_full"
        assert len(world.runtime.started()) == started  # nothing squeezed in
        assert fleet_full(world.store.deployments(APP, limit=1)) == dep.error["message"]

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert len(world.ids("r1")) == 3


def test_instances_kept_warm_give_up_their_room_before_a_deploy_fails(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text(web=3) + HALF_A_CORE)
        await world.serving(config_text(web=3) + HALF_A_CORE)  # r1 warm: every host full
        assert world.store.release(APP, "r1").warm_until is not None
        dep = await world.run(world.begin(world.release(config_text(web=3) + HALF_A_CORE)))
        assert dep.outcome == "succeeded", dep.error
        assert any("stopping 3 warm instance(s)" in e for e in world.events(dep))
        assert fleet_full(world.store.deployments(APP, limit=1)) is None

    world.play(scenario)
    assert world.ids("r1") == []
    assert len(world.ids("r3")) == 3
    assert world.store.release(APP, "r2").warm_until is not None  # the new warm one


def test_instances_of_a_lost_host_start_elsewhere_only_within_the_others_capacity(
    world: World,
) -> None:
    async def scenario() -> None:
        release = await world.serving(config_text(web=3) + HALF_A_CORE)
        lost = next(i for i in world.instances(release.id) if i.host == "app-1")

        def restore(web: int) -> Deployment:  # as host_watch starts one for a host down
            return world.store.start_deployment(
                APP, kind="restore", from_release=release.id, to_release=release.id,
                formation={"web": web}, who="slipway (host app-1 down)", state="start",
                skip_hosts=["app-1"],
            )  # fmt: skip

        dep = await world.run(restore(3))  # app-2 and app-3 have room for one more each
        assert dep.outcome == "succeeded", dep.error
        assert sorted(i.host for i in world.instances(release.id) if i.id != lost.id) == [
            "app-2", "app-2", "app-3",
        ]  # fmt: skip
        dep = await world.run(world.begin(release, kind="scale", formation={"web": 5}))
        assert dep.outcome == "succeeded", dep.error  # app-1 is back: it takes two
        dep = await world.run(restore(5))  # app-1 lost again: app-3 has room for one of two
        assert dep.outcome == "failed"
        assert dep.error is not None and dep.error["kind"] == "fleet_full"

    world.play(scenario)
