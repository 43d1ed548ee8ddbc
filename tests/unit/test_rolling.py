"""Rolling deploys (deploy/rolling.py): the batch rules, pure; then whole rolls on the fakes
of tests/fakes.py over three app hosts and two lb hosts (the World of test_engine.py):
never more than `max_unavailable` out, never no web instance serving, never room for two
releases needed, a failed roll rolled back the same way, a roll interrupted and resumed."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import ValidationError

from slipway import faults
from slipway.config.load import parse_config
from slipway.deploy.engine import Engine
from slipway.deploy.planning import warm_release
from slipway.deploy.rolling import leaves_nothing_serving, missing, next_batch, shortfall
from slipway.router.config import SERVING_WEIGHT
from slipway.store.records import Deployment, Instance, Release
from tests.fakes import CRASH_LOOP
from tests.unit.test_engine import APP, APP_HOSTS, World, config_text

ROLLING = 'strategy = "rolling"\nkeep_warm = "5m"'


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def instance(
    name: str, host: str, weight: int | None = SERVING_WEIGHT, process: str = "web"
) -> Instance:
    release = name.split("-")[0]
    return Instance(APP, name, release, process, 20000, "running", 1, 1.0, weight, 0.0, host=host)


# the rules, pure ---------------------------------------------------------------------------


def test_a_batch_takes_what_does_not_serve_first_then_by_host() -> None:
    theirs = [
        instance("r1-web-1", "app-2"),
        instance("r1-web-2", "app-1"),
        instance("r1-web-3", "app-3", weight=0),  # e.g. a warm release's: costs nothing
    ]
    assert [i.id for i in next_batch(theirs, 2, "instances")] == ["r1-web-3", "r1-web-2"]


def test_a_batch_of_hosts_takes_every_instance_on_them() -> None:
    theirs = [instance(f"r1-web-{n}", f"app-{n % 3 + 1}") for n in range(6)]
    batch = next_batch(theirs, 1, "hosts")
    assert {i.host for i in batch} == {"app-1"} and len(batch) == 2


def test_what_is_missing_is_what_neither_release_serves() -> None:
    ours = [instance("r2-web-1", "app-1")]
    lacking = shortfall({"web": 3, "worker": 1, "clock": 0}, ours)
    assert lacking == {"web": 2, "worker": 1}
    theirs = [
        instance("r1-web-2", "app-2"),
        instance("r1-web-3", "app-3", weight=0),  # out of traffic: serves nothing
        instance("r1-worker-4", "app-1", None, "worker"),
    ]
    assert missing(lacking, theirs) == {"web": 1}
    assert missing(lacking, [*theirs, instance("r1-web-5", "app-3")]) == {}


def test_the_last_serving_web_instance_is_never_taken_out_first() -> None:
    only = [instance("r1-web-1", "app-1")]
    assert leaves_nothing_serving(only, only, [])
    assert not leaves_nothing_serving(only, only, [instance("r2-web-2", "app-2")])
    assert not leaves_nothing_serving(only, [*only, instance("r1-web-3", "app-2")], [])


@pytest.mark.parametrize(
    ("value", "meaning"),
    [(1, (1, "instances")), ("2", (2, "instances")), ("1 host", (1, "hosts")),
     ("3 hosts", (3, "hosts")), ("2 instances", (2, "instances"))],
)  # fmt: skip
def test_max_unavailable_counts_instances_or_hosts(value: object, meaning: object) -> None:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    config = parse_config(config_text(deploy=f'strategy = "rolling"\nmax_unavailable = {shown}'))
    assert config.deploy.unavailable == meaning


@pytest.mark.parametrize("value", ["0", '"half"', '"1 rack"', "-1"])
def test_max_unavailable_refuses_what_it_cannot_count(value: str) -> None:
    with pytest.raises((ValidationError, Exception), match="max_unavailable"):
        parse_config(config_text(deploy=f"max_unavailable = {value}"))


# whole rolls on the fakes ---------------------------------------------------------------------


def begin_roll(world: World, release: Release, kind: str = "deploy") -> Deployment:
    app = world.store.app(APP)
    config = release.config
    return world.store.start_deployment(
        APP,
        kind=kind,
        from_release=app.current_release,
        to_release=release.id,
        formation={p: config.scale.get(p, 1) for p in config.processes},
        who="test",
        state="roll",
        strategy="rolling",
    )


class Watch:
    """After every change to the lb tier: how many web instances serve, and how many
    instances run (on all hosts)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.serving: list[int] = []
        self.running: list[int] = []
        original = world.router._set

        def spy(host: str, app: str, weights: dict[str, int]) -> None:
            original(host, app, weights)
            if host == "lb-1":
                self.look()

        world.router._set = spy  # type: ignore[method-assign]
        world.runtime.on_start.append(lambda _: self.look())

    def look(self) -> None:
        weights = self.world.router.weights_on("lb-1", APP)
        self.serving.append(sum(1 for w in weights.values() if w == SERVING_WEIGHT))
        self.running.append(len(self.world.runtime.running()))


def test_a_roll_replaces_one_instance_at_a_time_and_never_needs_room_for_two(
    world: World,
) -> None:
    watch = Watch(world)

    async def scenario() -> None:
        await world.serving(config_text(deploy=ROLLING))
        watch.serving.clear()
        watch.running.clear()
        dep = await world.run(begin_roll(world, world.release(config_text(deploy=ROLLING))))
        assert dep.outcome == "succeeded", dep.error
        assert "r2 in place of 3 old instance(s), 1 instance(s) at a time" in "\n".join(
            world.events(dep)
        )

    world.play(scenario)
    assert world.store.app(APP).current_release == "r2"
    assert min(watch.serving) >= 2  # 3 web, at most 1 out at a time
    assert max(watch.running) <= 3  # never both releases side by side
    assert sorted(i.host for i in world.instances("r2")) == list(APP_HOSTS)  # where r1 was
    assert world.instances("r1") == []  # nothing of r1 kept warm: there is no room
    assert world.store.release(APP, "r1").warm_until is None


def test_a_roll_by_hosts_takes_every_instance_of_one_host_at_a_time(world: World) -> None:
    watch = Watch(world)
    text = config_text(web=6, deploy=ROLLING + '\nmax_unavailable = "1 host"')

    async def scenario() -> None:
        await world.serving(text)
        watch.serving.clear()
        watch.running.clear()
        dep = await world.run(begin_roll(world, world.release(text)))
        assert dep.outcome == "succeeded", dep.error

    world.play(scenario)
    assert min(watch.serving) >= 4 and max(watch.running) <= 6
    assert Counter(i.host for i in world.instances("r2")) == dict.fromkeys(APP_HOSTS, 2)


def test_one_web_instance_is_replaced_only_once_its_successor_serves(world: World) -> None:
    watch = Watch(world)
    text = config_text(web=1, deploy=ROLLING)

    async def scenario() -> None:
        await world.serving(text)
        watch.serving.clear()
        dep = await world.run(begin_roll(world, world.release(text)))
        assert dep.outcome == "succeeded", dep.error

    world.play(scenario)
    assert min(watch.serving) >= 1  # traffic always has somewhere to go
    assert len(world.instances("r2")) == 1 and world.instances("r1") == []


def test_a_roll_that_fails_rolls_back_the_same_way(world: World) -> None:
    watch = Watch(world)

    async def scenario() -> None:
        await world.serving(config_text(deploy=ROLLING))
        # the second r2 instance crash-loops: one r1 instance was replaced by then
        world.runtime.script("r2-web-5", CRASH_LOOP)
        watch.serving.clear()
        watch.running.clear()
        dep = await world.run(begin_roll(world, world.release(config_text(deploy=ROLLING))))
        assert dep.outcome == "failed"
        assert dep.error is not None and "r2-web-5 is crash-looping" in dep.error["message"]
        assert any("r1 in place of" in e for e in world.events(dep)), world.events(dep)

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert len(world.instances("r1")) == 3 and world.instances("r2") == []
    assert set(world.router.weights(APP).values()) == {SERVING_WEIGHT}
    assert min(watch.serving) >= 2 and max(watch.running) <= 3


def test_a_roll_interrupted_anywhere_goes_on_where_it_was(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon dies right after a batch went out of traffic, then right after new
    instances were recorded: a new engine over the same store finishes the roll."""

    class Died(BaseException):  # past the engine's net for bugs, as a kill would be
        pass

    points = ["roll:out", "roll:planned"]

    def crash_at(point: str) -> None:
        if points and point == points[0]:
            points.pop(0)
            raise Died(point)

    monkeypatch.setattr(faults, "crash_at", crash_at)

    async def scenario() -> None:
        await world.serving(config_text(deploy=ROLLING))
        dep = begin_roll(world, world.release(config_text(deploy=ROLLING)))
        for _ in range(2):
            with pytest.raises(Died):
                await world.engine.run(dep.id)
            world.engine = Engine(world.engine.s)  # a daemon started again
        dep = await world.run(world.store.deployment(dep.id))
        assert dep.outcome == "succeeded", dep.error

    world.play(scenario)
    assert points == []
    assert world.store.app(APP).current_release == "r2"
    assert sorted(i.host for i in world.instances("r2")) == list(APP_HOSTS)
    running = [f.instance.id for f in world.runtime.running()]
    assert sorted(running) == sorted(world.ids("r2"))  # nothing doubled, nothing orphaned


def test_a_warm_release_goes_first_is_not_replaced_and_the_spread_stays_even(
    world: World,
) -> None:
    watch = Watch(world)

    async def scenario() -> None:
        await world.serving(config_text())  # blue-green: r1 stays warm after r2
        await world.serving(config_text(deploy=ROLLING))
        assert len(world.instances("r1")) == 3  # warm, weight 0
        watch.serving.clear()
        dep = await world.run(begin_roll(world, world.release(config_text(deploy=ROLLING))))
        assert dep.outcome == "succeeded", dep.error

    world.play(scenario)
    assert min(watch.serving) >= 2
    assert sorted(i.host for i in world.instances("r3")) == list(APP_HOSTS)
    assert world.instances("r1") == [] and world.instances("r2") == []
    # nothing is warm any more: a daemon restarted now must not start r1 again
    releases = world.store.releases(APP)
    assert warm_release(releases, "r3", time.time()) is None
