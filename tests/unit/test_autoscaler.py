"""The daemon's autoscaler (daemon/autoscaler.py) on a real Store and fakes for the rest:
it scales when the rule says so, never while a deployment of the app runs (and records
that once), not while a manual scale paused it, and only as far as the fleet has room
(the rest is the `fleet full` alert's)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from slipway.config.load import config_hash, parse_config
from slipway.daemon.autoscaler import Autoscaler
from slipway.hosts.model import Host
from slipway.router.stats import ServerStat
from slipway.store import autoscale as stored
from slipway.store.records import Deployment
from slipway.store.store import Store

CONFIG = """name = "shop"
[processes]
web = "python app.py $PORT"
[autoscale.web]
max = 6
target = 2
every = "1s"
[resources.web]
cpu = 0.5
"""


class FakeService:
    """What the autoscaler uses of the daemon's Service: a real store, one host, HAProxy's
    counters as the test sets them, and scale recorded instead of run."""

    def __init__(self, tmp_path: Path, cores: int = 4) -> None:
        self.store = Store(tmp_path / "state.db")
        config = parse_config(CONFIG)
        self.store.ensure_app("shop", str(tmp_path))
        release = self.store.new_release(
            "shop", source=str(tmp_path), source_kind="dir", git_sha=None,
            config_json=config.model_dump_json(), config_hash=config_hash(config),
            status="ready",
        )  # fmt: skip
        self.store.set_current("shop", release.id, {"web": 1})
        instance = self.store.new_instance("shop", release.id, "web", 20001)
        self.store.update_instance("shop", instance.id, status="running", weight=100)
        self.in_flight = 0
        self.scaled: list[dict[str, int]] = []
        host = Host("local", "127.0.0.1", frozenset({"app", "lb"}), facts={"cores": cores})
        self.fleet = SimpleNamespace(hosts=lambda: [host])
        self.host_watch = SimpleNamespace(down=lambda: set())
        self.router = SimpleNamespace(stats=self.stats)

    async def stats(self, app: str) -> dict[str, ServerStat]:
        return {
            i.id: ServerStat(i.id, "UP", 100, self.in_flight, 0, "L7OK", 0)
            for i in self.store.instances(app)
        }

    async def scale(
        self, app: str, counts: dict[str, int], who: str, autoscaled: bool = False
    ) -> Deployment:
        assert autoscaled and who == "autoscaler"
        self.scaled.append(counts)
        formation = self.store.app(app).formation | counts
        current = self.store.app(app).current_release
        assert current is not None
        self.store.set_current(app, current, formation)  # as the finished scale leaves it
        return self.store.start_deployment(
            app, kind="scale", from_release=current, to_release=current, formation=formation,
            who=who, state="start",
        )  # fmt: skip


def rounds(scaler: Autoscaler, start: float, count: int) -> None:
    async def run() -> None:
        for n in range(count):
            await scaler.round(start + n)

    asyncio.run(run())


@pytest.fixture
def service(tmp_path: Path) -> FakeService:
    return FakeService(tmp_path)


def history(service: FakeService) -> list[dict[str, Any]]:
    return stored.history(service.store, "shop")


def test_load_over_the_target_scales_up_through_a_scale_deployment(service: FakeService) -> None:
    service.in_flight = 7  # 7 in flight on one instance, target 2: 4 instances
    rounds(Autoscaler(service), 1000.0, 2)  # type: ignore[arg-type]
    assert service.scaled == [{"web": 4}]
    waiting, decision = history(service)  # newest first
    assert (decision["observed"], decision["current"], decision["desired"]) == (7.0, 1, 4)
    assert decision["result"].startswith("scaling web 1 → 4: deployment #")
    assert waiting["result"].startswith("waiting: deployment #1")  # its own scale, running


def test_no_scaling_while_a_deployment_of_the_app_runs_and_it_is_said_once(
    service: FakeService,
) -> None:
    service.store.start_deployment(
        "shop", kind="deploy", from_release="r1", to_release="r1", formation={"web": 1},
        who="test", state="start",
    )  # fmt: skip
    service.in_flight = 7
    rounds(Autoscaler(service), 1000.0, 5)  # type: ignore[arg-type]
    assert service.scaled == []
    [decision] = history(service)  # recorded once, not every round
    assert decision["result"].startswith("waiting: deployment #1 is in progress")


def test_a_manual_scale_pauses_it(service: FakeService) -> None:
    stored.set_paused(service.store, "shop", "web", {"at": 0, "who": "ann", "count": 1})
    service.in_flight = 7
    scaler = Autoscaler(service)  # type: ignore[arg-type]
    rounds(scaler, 1000.0, 3)
    assert service.scaled == []
    assert scaler.view("shop")[0]["result"] == "paused by a manual `slipway scale`"


def test_only_what_fits_is_added_and_the_rest_is_the_fleet_full_alerts(tmp_path: Path) -> None:
    service = FakeService(tmp_path, cores=2)  # room for 4 of 0.5 core; 1 runs
    service.in_flight = 12  # 6 wanted
    scaler = Autoscaler(service)  # type: ignore[arg-type]
    rounds(scaler, 1000.0, 1)
    assert service.scaled == [{"web": 4}]
    short = scaler.short_of("shop")
    assert short is not None and "should have 5 instances, there is room for 4" in short
