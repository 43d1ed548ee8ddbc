"""The autoscaler's in-flight readings (daemon/autoscaler.py): averaged over the window, and
started again when the number of serving instances changes, so readings of an earlier count
(e.g. one saturated instance's queue) do not ask for more instances after a scale-up."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from slipway.config.autoscale import Autoscale
from slipway.daemon.autoscaler import Autoscaler, Track
from slipway.router.stats import ServerStat
from slipway.store.records import App, Instance

if TYPE_CHECKING:
    from slipway.daemon.service import Service

POLICY = Autoscale(min=1, max=6, target=1.5, window=15.0)
APP = App("hello", "/src", "r1", {"web": 1}, 0.0)


def instance(n: int) -> Instance:
    return Instance("hello", f"web-{n}", "r1", "web", 9000 + n, "running", None, None, 1, 0.0)


class Scaler(Autoscaler):
    """Serving instances given by the test instead of read from the store."""

    def __init__(self) -> None:
        super().__init__(cast("Service", object()))
        self.live: list[Instance] = []

    def serving(self, app: App, process: str) -> list[Instance]:
        return self.live


def stats(busy: dict[int, int]) -> dict[str, ServerStat]:
    return {f"web-{n}": ServerStat(f"web-{n}", "UP", 1, b, 0, "L7OK", 0) for n, b in busy.items()}


def test_readings_are_averaged_over_the_window() -> None:
    scaler, track = Scaler(), Track()
    scaler.live = [instance(1), instance(2)]
    for t, busy in ((0.0, 2), (1.0, 4), (2.0, 6)):
        scaler.sample(APP, "web", POLICY, track, stats({1: busy, 2: busy}), t)
    assert scaler.observe(APP, POLICY, track, 2.0) == 4.0
    scaler.sample(APP, "web", POLICY, track, stats({1: 0, 2: 0}), 16.5)  # 0.0 and 1.0 are out
    assert scaler.observe(APP, POLICY, track, 16.5) == 3.0


def test_a_new_count_starts_the_window_again() -> None:
    scaler, track = Scaler(), Track()
    scaler.live = [instance(1)]
    for t in range(5):  # one saturated instance: a queue of 8
        scaler.sample(APP, "web", POLICY, track, stats({1: 8}), float(t))
    assert scaler.observe(APP, POLICY, track, 4.0) == 8.0
    scaler.live = [instance(1), instance(2), instance(3)]  # the scale-up is serving
    scaler.sample(APP, "web", POLICY, track, stats({1: 1, 2: 1, 3: 2}), 5.0)
    observed = scaler.observe(APP, POLICY, track, 5.0)
    assert observed is not None and abs(observed - 4 / 3) < 1e-9  # not (5 × 8 + 4/3) / 6
