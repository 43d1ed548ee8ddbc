"""The deploy engine's steps and whole deployments, on the fakes of its seams (tests/fakes.py)
with a real Store: blue-green, health failures, unreachable hosts, a refused switch, a
canary aborted by hand, warm rollback, scale, failures that cannot be recorded, placement;
and TierRouter's all-or-nothing switches on fake transports.

The fleet: a control host that runs nothing, three app hosts (app-1..3) reached over SSH
(releases are shipped to them), two lb hosts (lb-1, lb-2). Releases are made "ready"
directly in the store (no build); deployments start at the step "start". The engine's time
is a FakeClock: nothing here waits for time to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from slipway.config.load import config_hash, parse_config
from slipway.daemon.secrets import SecretKeeper
from slipway.deploy import canary, health
from slipway.deploy import engine as engine_module
from slipway.deploy.engine import Engine, Services
from slipway.errors import DeployError, RouterError, StorageError
from slipway.hosts.model import Host, SshTarget
from slipway.paths import Home
from slipway.router.config import SERVING_WEIGHT, Backend, Server
from slipway.router.tier import Member, TierRouter
from slipway.store.records import Deployment, Instance, Release
from slipway.store.store import Store, database_full
from tests.fakes import (
    CRASH_LOOP,
    Behaviour,
    Change,
    FakeClock,
    FakeRouter,
    FakeRuntime,
    FakeTransport,
)

APP = "shop"
APP_HOSTS = ("app-1", "app-2", "app-3")
LB_HOSTS = ("lb-1", "lb-2")


def fleet() -> list[Host]:
    def remote(name: str, address: str, role: str) -> Host:
        ssh = SshTarget(address, "SHA256:fake", home=f"/srv/{name}/slipway")
        return Host(name, address, frozenset({role}), ssh)

    return [
        Host("local", "127.0.0.1", frozenset()),  # the control host: runs nothing here
        *(remote(name, f"10.0.0.{11 + n}", "app") for n, name in enumerate(APP_HOSTS)),
        *(remote(name, f"10.0.1.{11 + n}", "lb") for n, name in enumerate(LB_HOSTS)),
    ]


ADDRESS = {h.name: h.address for h in fleet()}


def config_text(web: int = 3, worker: int = 0, deploy: str = "", placement: str = "") -> str:
    lines = ['name = "shop"', "[processes]", 'web = "python app.py"']
    if worker:
        lines.append('worker = "python worker.py"')
    lines += ["[scale]", f"web = {web}"] + ([f"worker = {worker}"] if worker else [])
    if deploy:
        lines += ["[deploy]", deploy]
    if placement:
        lines += ["[placement]", placement]
    return "\n".join(lines) + "\n"


class World:
    """A store in tmp_path, the fakes, and an engine composed as daemon/service.py does."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp = tmp_path
        self.home = Home(tmp_path / "home")
        self.home.root.mkdir()
        self.store = Store(self.home.db)
        self.clock = FakeClock()
        self.runtime = FakeRuntime(self.clock)
        self.router = FakeRouter(LB_HOSTS)
        self.transports = {h.name: FakeTransport(h.name) for h in fleet()}
        self.engine = Engine(
            Services(
                self.home,
                self.store,
                self.runtime,
                self.router,
                SecretKeeper(self.home.secrets_key, self.store),
                fleet,
                self.transports.__getitem__,
            )
        )
        self.full = False  # the disk is full: every write to the store fails
        monkeypatch.setattr(engine_module, "PROBE_EVERY", 0)
        monkeypatch.setattr(engine_module, "DRAIN_POLL_EVERY", 0)
        monkeypatch.setattr(canary, "LOOK_EVERY", 0)
        monkeypatch.setattr(engine_module, "time", self.clock)
        monkeypatch.setattr(health, "time", self.clock)
        real_tx = self.store.tx

        @contextlib.contextmanager
        def tx() -> Iterator[sqlite3.Connection]:
            if self.full:
                full = sqlite3.OperationalError("database or disk is full")
                raise database_full(self.home.db, full)
            with real_tx() as conn:
                yield conn

        monkeypatch.setattr(self.store, "tx", tx)

    def play(self, scenario: Callable[[], Awaitable[object]]) -> None:
        async def main() -> None:
            try:
                await scenario()
            finally:
                await self.settle()
                await self.engine.close()

        asyncio.run(main())

    async def settle(self) -> None:
        """Until what the engine left running in the background (stops, pruning) is done."""
        while pending := [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            await asyncio.gather(*pending, return_exceptions=True)

    # releases and deployments --------------------------------------------------------------

    def release(self, text: str) -> Release:
        """A release as a finished build leaves it: ready, its files on disk."""
        config = parse_config(text)
        self.store.ensure_app(config.name, str(self.tmp / "src"))
        release = self.store.new_release(
            config.name,
            source=str(self.tmp / "src"),
            source_kind="dir",
            git_sha=None,
            config_json=config.model_dump_json(),
            config_hash=config_hash(config),
            status="ready",
        )
        folder = self.home.release_dir(config.name, release.id)
        (folder / ".venv" / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
        (folder / "app.py").write_text("print('hello')\n")
        return release

    def begin(
        self,
        release: Release,
        kind: str = "deploy",
        formation: dict[str, int] | None = None,
        strategy: str = "bluegreen",
    ) -> Deployment:
        """A deployment recorded at the step "start" (after build and gates)."""
        app = self.store.app(APP)
        config = release.config
        return self.store.start_deployment(
            APP,
            kind=kind,
            from_release=app.current_release,
            to_release=release.id,
            formation=formation or {p: config.scale.get(p, 1) for p in config.processes},
            who="test",
            state="start",
            strategy=strategy,
        )

    async def run(self, dep: Deployment) -> Deployment:
        await self.engine.run(dep.id)
        await self.settle()
        return self.store.deployment(dep.id)

    async def step(self, dep: Deployment) -> tuple[str, Deployment]:
        """Its current step, then the next state recorded (as Engine.run does)."""
        said = await getattr(self.engine, f"step_{dep.state}")(dep)
        return said, self.engine.advance(self.store.deployment(dep.id))

    async def serving(self, text: str) -> Release:
        """A release deployed and serving all traffic."""
        release = self.release(text)
        dep = await self.run(self.begin(release))
        assert dep.outcome == "succeeded", dep.error
        return release

    # reading -------------------------------------------------------------------------------

    def instances(self, release: str, live: bool = True) -> list[Instance]:
        return [i for i in self.store.instances(APP, live_only=live) if i.release == release]

    def ids(self, release: str) -> list[str]:
        return [i.id for i in self.instances(release)]

    def weights_of(self, release: str) -> dict[str, int]:
        """Each of the release's servers' weight, the same on every lb host."""
        return {n: w for n, w in self.router.weights(APP).items() if n.startswith(release + "-")}

    def events(self, dep: Deployment) -> list[str]:
        return [f"{e.step} {e.status}: {e.message}" for e in self.store.events(dep.id)]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


# blue-green ------------------------------------------------------------------------------


def test_instances_are_recorded_before_any_starts_and_spread_over_the_app_hosts(
    world: World,
) -> None:
    seen_at_start: list[tuple[list[str], list[str]]] = []

    async def scenario() -> None:
        release = world.release(config_text(web=3, worker=1))
        dep = world.begin(release)

        def look(_: Instance) -> None:  # what the store holds as each instance starts
            recorded = world.store.deployment(dep.id).instances
            seen_at_start.append((recorded, world.ids(release.id)))

        world.runtime.on_start.append(look)
        said, dep = await world.step(dep)
        assert said == "started 4 instance(s)"
        assert dep.state == "health"

    world.play(scenario)
    planned = world.store.deployment(1).instances
    assert len(planned) == 4
    assert seen_at_start == [(planned, planned)] * 4  # all recorded before the first start
    placed = {i.id: (i.process, i.host) for i in world.instances("r1")}
    assert sorted(placed.values()) == [
        ("web", "app-1"), ("web", "app-2"), ("web", "app-3"), ("worker", "app-1"),
    ]  # fmt: skip
    for instance in world.instances("r1"):  # started where it was placed, listening there
        fake = world.runtime.get(instance)
        assert fake.host == instance.host
        assert fake.spec.cwd == Path(f"/srv/{instance.host}/slipway/apps/shop/releases/r1")
        if instance.is_web:
            assert fake.spec.env["PORT"] == str(instance.port)
            assert fake.spec.env["HOST"] == ADDRESS[instance.host]
        assert instance.status == "running" and instance.handle == fake.handle


def test_ports_are_chosen_by_each_host_and_releases_shipped_once_per_host(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        await world.serving(config_text())

    world.play(scenario)
    ports = {(i.release, i.host): i.port for i in world.store.instances(APP, live_only=False)}
    for host in APP_HOSTS:
        assert (ports[("r1", host)], ports[("r2", host)]) == (20000, 20001)
        transport = world.transports[host]
        assert [Path(local).name for local, _ in transport.puts] == ["r1.tar.gz", "r2.tar.gz"]
        assert transport.methods().count("release.install") == 2
    for host in ("local", *LB_HOSTS):  # nothing runs there: nothing shipped
        assert world.transports[host].calls == []


def test_new_servers_join_every_lb_host_at_weight_0(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        dep = world.begin(world.release(config_text()))
        await world.step(dep)

    world.play(scenario)
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), 0)
    for lb in LB_HOSTS:
        for instance in world.instances("r2"):
            server = world.router.servers(APP, lb)[instance.id]
            assert (server.address, server.port) == (ADDRESS[instance.host], instance.port)
    added = [c for c in world.router.log if c.op == "add_server" and c.server.startswith("r2")]
    assert [c.weights for c in added] == [((i, 0),) for i in world.ids("r2")]


def test_health_waits_for_consecutive_probe_passes(world: World) -> None:
    """healthy_threshold = 2: an instance whose first probe failed needs two more."""

    async def scenario() -> None:
        await world.serving(config_text())
        world.runtime.script("r2-web", Behaviour(failing_probes=1), host="app-2")
        _, dep = await world.step(world.begin(world.release(config_text())))
        said, dep = await world.step(dep)
        assert said.startswith("3 instance(s) healthy")

    world.play(scenario)
    probes = {i.host: world.runtime.get(i).probes for i in world.instances("r2")}
    assert probes == {"app-1": 2, "app-2": 3, "app-3": 2}
    assert all(world.runtime.get(i).nice == 0 for i in world.instances("r2"))  # priority lifted


def test_health_waits_for_haproxy_to_agree(world: World) -> None:
    """Probes pass at once, but HAProxy's checks fail for the first 3 looks: the instances
    are healthy only at the 4th, the first where HAProxy agrees."""

    async def scenario() -> None:
        await world.serving(config_text())
        failing = ("DOWN", "L7STS")
        world.router.script_check("r2", failing, failing, failing)
        _, dep = await world.step(world.begin(world.release(config_text())))
        before = world.router.stats_calls
        await world.step(dep)
        assert world.router.stats_calls - before == 4

    world.play(scenario)
    assert all(world.runtime.get(i).probes == 4 for i in world.instances("r2"))


def test_bluegreen_deploy_shifts_in_one_switch_new_servers_raised_first(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        old = world.ids("r1")
        start = len(world.router.log)
        dep = await world.run(world.begin(world.release(config_text())))
        assert dep.outcome == "succeeded", dep.error
        switches = [c for c in world.router.log[start:] if c.op == "set_weights"]
        new = world.ids("r2")
        assert switches == [
            Change("set_weights", APP, weights=(*((n, 100) for n in new), *((o, 0) for o in old)))
        ]

    world.play(scenario)
    assert world.store.app(APP).current_release == "r2"
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), SERVING_WEIGHT)
    assert set(world.weights_of("r1").values()) == {0}


def test_drain_waits_until_the_old_servers_are_idle(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        dep = world.begin(world.release(config_text()))
        while dep.state != "drain":
            _, dep = await world.step(dep)
        world.router.busy("r1-web", polls=2)
        before = world.router.stats_calls
        said, _ = await world.step(dep)
        assert said.startswith("3 old instance(s) drained")
        assert world.router.stats_calls - before == 3  # busy, busy, idle

    world.play(scenario)


def test_retire_stops_the_old_release_but_keeps_its_web_instances_warm(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text(worker=1))
        dep = await world.run(world.begin(world.release(config_text(worker=1))))
        assert dep.outcome == "succeeded", dep.error
        note = world.events(dep)[-2]
        assert note.startswith("retire ok: stopping 1 old instance(s); r1 stays warm until")

    world.play(scenario)
    worker = next(i for i in world.instances("r1", live=False) if i.process == "worker")
    assert worker.status == "stopped" and not world.runtime.get(worker).running
    warm = world.instances("r1")
    assert [i.process for i in warm] == ["web"] * 3
    assert all(world.runtime.get(i).running for i in warm)
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), 0)  # in HAProxy, no traffic
    r1 = world.store.release(APP, "r1")
    assert r1.warm_until == pytest.approx(world.clock.time() + 300, abs=1)


def test_without_keep_warm_every_old_instance_is_retired(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        dep = await world.run(world.begin(world.release(config_text(deploy='keep_warm = "0s"'))))
        assert dep.outcome == "succeeded", dep.error

    world.play(scenario)
    old = world.instances("r1", live=False)
    assert [i.status for i in old] == ["stopped"] * 3
    assert [world.runtime.get(i).stopped_with for i in old] == [10.0] * 3  # stop_grace
    assert world.weights_of("r1") == {}
    for instance in old:  # out of HAProxy: drained first, then removed
        ops = [c.op for c in world.router.log if c.server == instance.id]
        assert ops == ["add_server", "drain", "remove_server"]
    assert world.store.release(APP, "r1").warm_until is None


# failures before the shift ------------------------------------------------------------------


def test_a_crash_looping_instance_fails_the_deploy_with_its_log(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        switches = world.router.ops(APP).count("set_weights")
        world.runtime.script("r2-web", CRASH_LOOP, host="app-3")
        dep = await world.run(world.begin(world.release(config_text())))
        assert dep.outcome == "failed"
        assert world.router.ops(APP).count("set_weights") == switches  # nothing shifted
        assert dep.error is not None
        crashed = next(i for i in world.instances("r2", live=False) if i.host == "app-3")
        assert dep.error["message"].startswith(
            f"instance {crashed.id} is crash-looping (last exit: code 1); the deploy was stopped"
        )
        assert dep.error["where"] == f"app shop, release r2, instance {crashed.id}"
        assert [d.split(" ", 1)[1] for d in dep.error["details"]] == [
            "stderr: Traceback (most recent call last):",
            "stderr: boom",
        ]

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    assert world.weights_of("r2") == {}  # out of HAProxy
    new = world.instances("r2", live=False)
    assert [i.status for i in new] == ["stopped"] * 3
    assert not any(world.runtime.get(i).running for i in new)


def test_an_instance_never_healthy_within_health_timeout_fails_the_deploy(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        slow = Behaviour(probe_seconds=30.0, log=("listening on :8000",))
        world.runtime.script("r2-web", slow, host="app-1")
        began = world.clock.monotonic()
        text = config_text(deploy='health_timeout = "10s"')
        dep = await world.run(world.begin(world.release(text)))
        assert dep.outcome == "failed"
        assert dep.error is not None
        stuck = next(i for i in world.instances("r2", live=False) if i.host == "app-1")
        assert dep.error["message"].startswith(
            f"instance {stuck.id} did not become healthy within 10s "
            "(last check: GET /up timed out after 2s); the deploy was stopped"
        )
        assert [d.split(" ", 1)[1] for d in dep.error["details"]] == ["stderr: listening on :8000"]
        waited = world.clock.monotonic() - began
        assert 10 < waited < 15  # gave up at the first look past the timeout (simulated time)

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    assert [i.status for i in world.instances("r2", live=False)] == ["stopped"] * 3


def test_a_host_unreachable_during_health_fails_the_deploy_naming_it(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        switches = world.router.ops(APP).count("set_weights")
        _, dep = await world.step(world.begin(world.release(config_text())))
        world.runtime.cut("app-2")
        dep = await world.run(dep)
        assert dep.outcome == "failed"
        assert dep.error is not None
        lost = next(i for i in world.instances("r2", live=False) if i.host == "app-2")
        assert dep.error["message"].startswith(f"host app-2 of instance {lost.id} does not answer")
        assert dep.error["where"] == "host app-2"
        assert "--skip-host app-2" in dep.error["fix"]
        assert world.router.ops(APP).count("set_weights") == switches  # nothing shifted
        # the instance on app-2 could not be stopped: said so, and left for housekeeping
        assert any(
            e.startswith("abort fail: cleanup failed: host app-2 does not answer")
            for e in world.events(dep)
        )

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    status = {i.host: i.status for i in world.instances("r2", live=False)}
    assert status == {"app-1": "stopped", "app-2": "stopping", "app-3": "stopped"}


def test_unknown_placement_host_is_a_deploy_error_naming_it(world: World) -> None:
    async def scenario() -> None:
        text = config_text(placement='hosts = ["app-1", "app-9"]')
        dep = await world.run(world.begin(world.release(text)))
        assert dep.outcome == "failed"
        assert dep.error is not None
        assert dep.error["kind"] == "deploy"
        assert dep.error["message"] == "[placement] hosts names app-9, not in the fleet"
        assert "app-1, app-2, app-3" in dep.error["fix"]

    world.play(scenario)
    assert world.runtime.started() == []
    assert world.store.instances(APP, live_only=False) == []


# a switch refused by an lb host --------------------------------------------------------------


async def refused_shift(world: World) -> Deployment:
    await world.serving(config_text())
    world.router.refuse("set_weights", on="lb-2")
    return await world.run(world.begin(world.release(config_text())))


def test_a_switch_refused_by_one_lb_host_fails_the_shift_and_changes_no_weight(
    world: World,
) -> None:
    async def scenario() -> None:
        dep = await refused_shift(world)
        assert dep.outcome == "failed"
        assert dep.error is not None
        assert dep.error["where"] == "lb host lb-2"
        assert "undone on the 1 other lb host(s)" in dep.error["message"]
        steps = [e.split(":")[0] for e in world.events(dep)]
        assert "shift fail" in steps and steps[-1] == "abort ok"  # then undone: r2 stopped

    world.play(scenario)
    # on every lb host (weights() checks they agree): r1 serves, r2 has no traffic
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), 0)
    ops = [(c.op, c.refused_by, c.hosts) for c in world.router.log]
    refused = next(n for n, (op, by, _) in enumerate(ops) if op == "set_weights" and by == "lb-2")
    assert ops[refused + 1][0] == "undo" and ops[refused + 1][2] == ("lb-1",)


def test_after_a_refused_switch_the_record_agrees_with_the_lb_tier(world: World) -> None:
    world.play(lambda: refused_shift(world))
    assert world.store.app(APP).current_release == "r1"
    recorded = {i.id: i.weight for i in world.store.instances(APP) if i.is_web}
    assert recorded == world.router.weights(APP)


def tier(*hosts: str) -> tuple[TierRouter, dict[str, FakeTransport]]:
    transports = {h: FakeTransport(h) for h in hosts}
    members = [Member(h, transports[h], None) for h in hosts]
    return TierRouter(lambda: members, Path("/nonexistent")), transports


def test_tier_router_undoes_a_refused_switch_on_the_hosts_that_took_it() -> None:
    router, transports = tier("lb-1", "lb-2", "lb-3")
    transports["lb-2"].refuse("router.set_weights", RouterError("HAProxy said no"))
    with pytest.raises(RouterError) as caught:
        asyncio.run(router.set_weights(APP, {"new": 100, "old": 0}, {"old": 100, "new": 0}))
    assert caught.value.where == "lb host lb-2"
    assert caught.value.message == (
        f"weights of {APP} failed on lb host lb-2 (HAProxy said no); it was undone on the "
        "2 other lb host(s): every lb host serves as before"
    )
    for host in ("lb-1", "lb-3"):
        sent = [p["weights"] for m, p in transports[host].calls if m == "router.set_weights"]
        assert sent == [{"new": 100, "old": 0}, {"old": 100, "new": 0}]  # switched, then undone
    assert router.missed == {"lb-2"}  # synced before it is used again


def test_tier_router_removes_a_server_whose_add_was_refused_by_one_host() -> None:
    router, transports = tier("lb-1", "lb-2")
    transports["lb-1"].refuse("router.add_server", RouterError("no room"))
    backend = Backend(APP, "127.0.0.1", 8080)
    with pytest.raises(RouterError, match="add server s1 failed on lb host lb-1"):
        asyncio.run(router.add_server(backend, Server("s1", 20000, 0, "10.0.0.11")))
    assert transports["lb-2"].methods() == ["router.add_server", "router.remove_server"]


# canary ------------------------------------------------------------------------------------


def test_a_canary_aborted_by_hand_gives_the_stable_release_all_traffic_back(
    world: World,
) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        stable = world.ids("r1")
        text = config_text(deploy='strategy = "canary"')
        dep = world.begin(world.release(text), strategy="canary")
        while dep.state != "canary":
            _, dep = await world.step(dep)
        candidates = world.ids("r2")
        start = len(world.router.log)
        world.engine.give_canary_command(dep.id, "abort", "alice")
        dep = await world.run(dep)
        assert dep.outcome == "failed"
        assert dep.error is not None and dep.error["message"] == "canary r2 aborted by alice"
        log = world.router.log[start:]
        switches = [c.weights for c in log if c.op == "set_weights"]
        first_step = (*((i, 1) for i in candidates), *((i, 19) for i in stable))  # 5% on r2
        back = (*((i, 100) for i in stable), *((i, 0) for i in candidates))  # raised first
        assert switches == [first_step, back]  # each one switch on every lb host
        assert {c.op for c in log} == {"set_weights", "drain", "remove_server", "ensure"}
        for instance in candidates:  # then out of HAProxy
            assert [c.op for c in log if c.server == instance] == ["drain", "remove_server"]
        assert all(world.runtime.get(i, APP).running for i in stable)  # never stopped

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    assert world.weights_of("r2") == {}
    assert [i.status for i in world.instances("r2", live=False)] == ["stopped"] * 3


# warm rollback and scale -----------------------------------------------------------------------


def test_rollback_to_the_warm_release_is_a_pure_traffic_switch(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        await world.serving(config_text())
        warm = world.ids("r1")
        started = len(world.runtime.started())
        probes = {i: world.runtime.get(i, APP).probes for i in warm}
        start = len(world.router.log)
        formation = world.store.app(APP).formation
        release = world.store.release(APP, "r1")
        dep = await world.run(world.begin(release, kind="rollback", formation=formation))
        assert dep.outcome == "succeeded", dep.error
        assert dep.instances == warm  # the same instances, none started
        assert len(world.runtime.started()) == started
        assert all(world.runtime.get(i, APP).running for i in warm)
        # warm instances served before: one passing probe each is enough
        assert {i: world.runtime.get(i, APP).probes - probes[i] for i in warm} == dict.fromkeys(
            warm, 1
        )
        changes = [c for c in world.router.log[start:] if c.op != "ensure"]
        r2 = world.ids("r2")
        assert changes == [
            Change("set_weights", APP, weights=(*((i, 100) for i in warm), *((i, 0) for i in r2)))
        ]

    world.play(scenario)
    assert world.store.app(APP).current_release == "r1"
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)
    # and r2 is now the warm one, for an instant roll forward
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), 0)
    assert all(world.runtime.get(i).running for i in world.instances("r2"))
    assert world.store.release(APP, "r2").warm_until is not None


def test_scale_up_starts_only_the_new_instance_and_keeps_the_warm_release(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        current = await world.serving(config_text())
        kept = world.ids("r2")
        warm_until = world.store.release(APP, "r1").warm_until
        started = len(world.runtime.started())
        dep = await world.run(world.begin(current, kind="scale", formation={"web": 4}))
        assert dep.outcome == "succeeded", dep.error
        new = world.runtime.started()[started:]
        assert len(new) == 1
        added = world.store.instance(APP, new[0])
        assert (added.host, added.port) == ("app-1", 20002)  # least loaded host, first by name
        assert dep.instances == [*kept, added.id]
        assert world.store.release(APP, "r1").warm_until == warm_until  # window stays open
        assert world.transports["app-1"].methods().count("release.install") == 2  # not again

    world.play(scenario)
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), SERVING_WEIGHT)
    assert len(world.ids("r2")) == 4
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), 0)
    assert all(world.runtime.get(i).running for i in world.instances("r1"))


def test_scale_down_retires_one_instance_and_keeps_the_warm_release(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        current = await world.serving(config_text())
        before = world.ids("r2")
        warm_until = world.store.release(APP, "r1").warm_until
        dep = await world.run(world.begin(current, kind="scale", formation={"web": 2}))
        assert dep.outcome == "succeeded", dep.error
        assert dep.instances == before[:2]
        assert world.store.instance(APP, before[2]).status == "stopped"
        assert world.store.release(APP, "r1").warm_until == warm_until

    world.play(scenario)
    assert world.weights_of("r2") == dict.fromkeys(world.ids("r2"), SERVING_WEIGHT)
    assert len(world.ids("r2")) == 2
    assert len(world.ids("r1")) == 3  # still warm


# failures that cannot be recorded -------------------------------------------------------------


def test_a_failure_that_cannot_be_recorded_is_kept_and_recorded_later(world: World) -> None:
    async def scenario() -> None:
        await world.serving(config_text())
        _, dep = await world.step(world.begin(world.release(config_text())))
        error = DeployError("instance r2-web-4 is crash-looping", where="app shop")
        world.full = True
        await world.engine.end_failed(dep, error)
        pending = world.engine.unrecorded[dep.id]
        assert pending.error is error
        assert isinstance(pending.cause, StorageError)
        shown = pending.to_dict()
        assert shown["message"] == error.message
        assert shown["details"][-1].startswith("not recorded yet: the state database could not")
        assert world.store.deployment(dep.id).finished_at is None

        await world.engine.retry_unrecorded()  # still no room: still kept
        assert dep.id in world.engine.unrecorded

        world.full = False
        await world.engine.retry_unrecorded()
        assert world.engine.unrecorded == {}
        recorded = world.store.deployment(dep.id)
        assert (recorded.outcome, recorded.state) == ("failed", "done")
        assert recorded.error is not None and recorded.error["message"] == error.message

    world.play(scenario)
    # recorded, it was also undone: r2 stopped, r1 serves
    assert [i.status for i in world.instances("r2", live=False)] == ["stopped"] * 3
    assert world.weights_of("r1") == dict.fromkeys(world.ids("r1"), SERVING_WEIGHT)


def test_a_deployment_that_cannot_record_anything_still_ends(world: World) -> None:
    async def scenario() -> None:
        dep = world.begin(world.release(config_text()))
        world.full = True
        await world.engine.run(dep.id)  # returns: nothing waits for room
        assert isinstance(world.engine.unrecorded[dep.id].cause, StorageError)

    world.play(scenario)
