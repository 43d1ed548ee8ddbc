"""The control plane's reaction to a host that stops answering (daemon/host_watch.py and the
pure hosts/reachability.py): unreachable at once, down only when the lb tier sees none of its
instances up either, then an alert and its instances started on the other hosts through a
restore deployment; a host cut off from the control plane but serving is never down; a host
that comes back is up again. On the fakes of tests/fakes.py with a real Store and Engine
(the fleet of test_engine.py: app-1..3, lb-1, lb-2; the app "shop", 3 web instances)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from slipway.config.load import parse_config
from slipway.daemon import host_watch as host_watch_module
from slipway.daemon.host_watch import HostWatch, may_run_on
from slipway.hosts.reachability import (
    DOWN_AFTER,
    DOWN_AFTER_UNSEEN,
    Reach,
    Witness,
    after_probe,
    first,
)
from slipway.store.records import Deployment
from tests.unit.test_engine import APP, LB_HOSTS, World, config_text, fleet


class Watched:
    """A World whose hosts a HostWatch watches; deployments it launches run on its engine."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.notes: list[tuple[str, str, str]] = []
        self.launched: list[Deployment] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.watch = HostWatch(
            world.store,
            fleet,
            world.transports.__getitem__,
            world.router,
            lambda app, status, message: self.notes.append((app, status, message)),
            self.launch,
        )

    def launch(self, deployment: Deployment) -> None:
        self.launched.append(deployment)
        self.tasks.append(asyncio.ensure_future(self.world.engine.run(deployment.id)))

    async def looks(self, seconds: float) -> None:
        """The watch's rounds over `seconds` (one a second), then whatever they launched."""
        for _ in range(int(seconds)):
            await self.watch.look()
            self.world.clock.advance(1.0)
        await self.world.settle()

    def lose(self, host: str) -> None:
        """The host dies: nothing reaches it, and every lb host's checks see its servers down."""
        self.world.transports[host].cut()
        self.world.runtime.cut(host)
        for lb in LB_HOSTS:
            for name, server in self.world.router.members[lb].get(APP, {}).items():
                if name in self.on(host):
                    server.health = False

    def on(self, host: str) -> list[str]:
        return [i.id for i in self.world.store.instances(APP) if i.host == host and i.live]


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Watched:
    world = World(tmp_path, monkeypatch)
    monkeypatch.setattr(host_watch_module, "time", world.clock)
    return Watched(world)


# the pure state machine -----------------------------------------------------------------


def test_a_silent_host_is_unreachable_at_once_and_down_once_no_lb_sees_it_serve() -> None:
    up = first(0.0)
    one = after_probe(up, False, Witness.NOT_SERVING, 1.0, "timeout")
    assert (one.state, one.since, one.failing_since) == ("unreachable", 1.0, 1.0)
    early = after_probe(one, False, Witness.NOT_SERVING, 1.0 + DOWN_AFTER - 0.1)
    assert early.state == "unreachable" and early.since == 1.0
    down = after_probe(early, False, Witness.NOT_SERVING, 1.0 + DOWN_AFTER, "timeout")
    assert down == Reach("down", 1.0 + DOWN_AFTER, 1.0, "timeout")
    assert after_probe(down, False, Witness.SERVING, 99.0).down  # down until it answers
    assert after_probe(down, True, Witness.NONE, 100.0) == Reach("up", 100.0)


@pytest.mark.parametrize("witness", [Witness.SERVING, Witness.NONE])
def test_a_silent_host_that_serves_or_that_nobody_can_judge_is_never_down(
    witness: Witness,
) -> None:
    state = first(0.0)
    for second in range(1, 60):
        state = after_probe(state, False, witness, float(second))
    assert state.state == "unreachable" and state.since == 1.0


# the watch on the fakes -----------------------------------------------------------------


def test_a_lost_host_is_down_alerts_and_its_instances_start_on_the_others(
    watched: Watched,
) -> None:
    world = watched.world

    async def scenario() -> None:
        release = await world.serving(config_text(web=3))
        lost = watched.on("app-3")
        assert len(lost) == 1
        watched.lose("app-3")
        await watched.looks(DOWN_AFTER + 1)
        assert watched.watch.state("app-3") is not None
        assert watched.watch.down() == {"app-3"}
        assert watched.watch.down_for(release.config.placement) == ["app-3"]
        [restore] = watched.launched
        assert (restore.kind, restore.skip_hosts) == ("restore", ["app-3"])
        done = world.store.deployment(restore.id)
        assert done.outcome == "succeeded", done.error
        live = world.instances(release.id)
        assert sorted(i.host for i in live if i.id not in lost) == ["app-1", "app-1", "app-2"]
        # the lost instance left every lb host, and waits to be stopped when app-3 answers
        [old] = [i for i in world.store.instances(APP) if i.id in lost]
        assert (old.status, old.weight) == ("stopping", None)
        assert all(w == 100 for w in world.weights_of(release.id).values())
        assert lost[0] not in world.weights_of(release.id)
        said = [n for n in watched.notes if n[1] == "fail"]
        assert said and "host app-3 is down" in said[0][2]
        await watched.looks(3)
        assert len(watched.launched) == 1  # replaced once

        world.transports["app-3"].is_cut = False  # it answers again
        world.runtime.reconnect("app-3")
        await watched.looks(1)
        assert watched.watch.down() == set() and watched.watch.to_replace == set()
        assert "answers again" in watched.notes[-1][2]

    world.play(scenario)


def test_a_host_cut_off_from_the_control_plane_but_serving_keeps_everything(
    watched: Watched,
) -> None:
    world = watched.world

    async def scenario() -> None:
        release = await world.serving(config_text(web=3))
        world.transports["app-1"].cut()  # the lb hosts still see its instance up
        world.runtime.cut("app-1")
        await watched.looks(3 * DOWN_AFTER)
        reach = watched.watch.state("app-1")
        assert reach is not None and reach.state == "unreachable"
        assert watched.launched == [] and watched.watch.down() == set()
        assert len(world.weights_of(release.id)) == 3

    world.play(scenario)


def test_without_an_lb_host_that_answers_no_host_is_declared_down(watched: Watched) -> None:
    world = watched.world

    async def scenario() -> None:
        await world.serving(config_text(web=3))
        watched.lose("app-2")
        for lb in LB_HOSTS:  # the control plane may be the one cut off: it cannot tell
            world.router.cut(lb)
            world.transports[lb].cut()
        await watched.looks(3 * DOWN_AFTER)
        assert watched.watch.down() == set() and watched.launched == []

    world.play(scenario)


def test_an_app_placed_on_the_lost_host_only_waits_for_it(watched: Watched) -> None:
    world = watched.world

    async def scenario() -> None:
        text = config_text(web=2, placement='hosts = ["app-3"]')
        await world.serving(text)
        watched.lose("app-3")
        await watched.looks(DOWN_AFTER + 1)
        assert watched.watch.down() == {"app-3"} and watched.launched == []
        assert "they come back with it" in watched.notes[-1][2]

    world.play(scenario)


def test_an_app_busy_deploying_is_replaced_once_its_deployment_ends(watched: Watched) -> None:
    world = watched.world

    async def scenario() -> None:
        release = await world.serving(config_text(web=3))
        busy = world.begin(release, kind="scale", formation={"web": 3})
        watched.lose("app-3")
        await watched.looks(DOWN_AFTER + 1)
        assert watched.launched == [] and watched.watch.to_replace == {"app-3"}
        world.store.finish_deployment(busy.id, "aborted")
        await watched.looks(1)
        assert [d.kind for d in watched.launched] == ["restore"]

    world.play(scenario)


def test_placement_by_roles_or_names() -> None:
    hosts = {h.name: h for h in fleet()}
    by_role = parse_config(config_text()).placement
    named = parse_config(config_text(placement='hosts = ["lb-1"]')).placement
    assert may_run_on(hosts["app-2"], by_role) and not may_run_on(hosts["lb-1"], by_role)
    assert may_run_on(hosts["lb-1"], named) and not may_run_on(hosts["app-2"], named)


def test_a_host_of_workers_only_is_declared_down_only_after_a_long_silence(
    watched: Watched,
) -> None:
    """Nothing of it is in the lb tier: dead or only cut off, nobody can tell, and declaring
    it down starts its workers a second time elsewhere; a short cut must not do that."""
    world = watched.world

    async def scenario() -> None:
        await world.serving(config_text(web=1, worker=3))  # web on app-1; a worker each
        assert [i.process for i in world.store.instances(APP) if i.host == "app-3"] == ["worker"]
        world.transports["app-3"].cut()
        world.runtime.cut("app-3")
        await watched.looks(3 * DOWN_AFTER)
        reach = watched.watch.state("app-3")
        assert reach is not None and reach.state == "unreachable"
        assert watched.launched == []
        await watched.looks(DOWN_AFTER_UNSEEN)
        assert watched.watch.down() == {"app-3"}

    world.play(scenario)
