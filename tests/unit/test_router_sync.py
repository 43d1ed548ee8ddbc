"""Syncing HAProxy's servers to the recorded ones adds capacity before it takes any away."""

from __future__ import annotations

from slipway.router.config import Server
from slipway.router.stats import ServerStat
from slipway.router.sync import Change, plan_sync


def stat(name: str, weight: int, status: str = "UP") -> ServerStat:
    return ServerStat(name, status, weight, 0, 0, "L7OK", 0)


def test_an_interrupted_shift_raises_the_new_servers_before_lowering_the_old() -> None:
    """Recorded: r2 at 100, r1 at 0 (the shift was committed); HAProxy still has the
    opposite. Listed old-first, as instances are; the plan must still raise first."""
    current = {s.name: s for s in (stat("r1-web-1", 100), stat("r1-web-2", 100))}
    current |= {s.name: s for s in (stat("r2-web-3", 0), stat("r2-web-4", 0))}
    wanted = (
        Server("r1-web-1", 1, 0),
        Server("r1-web-2", 2, 0),
        Server("r2-web-3", 3, 100),
        Server("r2-web-4", 4, 100),
    )
    assert plan_sync(current, wanted) == [
        Change("raise", "r2-web-3", 100),
        Change("raise", "r2-web-4", 100),
        Change("lower", "r1-web-1", 0),
        Change("lower", "r1-web-2", 0),
    ]


def test_adds_come_first_and_removals_last() -> None:
    current = {"gone": stat("gone", 100), "stays": stat("stays", 100)}
    wanted = (Server("stays", 1, 0), Server("new", 2, 100))
    plan = plan_sync(current, wanted)
    assert [c.kind for c in plan] == ["add", "lower", "remove"]
    assert plan[0].new == Server("new", 2, 100)
    assert plan[2] == Change("remove", "gone")


def test_a_parked_server_gets_its_weight_back_and_a_matching_one_is_left_alone() -> None:
    current = {
        "drained": stat("drained", 100, "DRAIN"),
        "maint": stat("maint", 100, "MAINT"),
        "same": stat("same", 100),
        "warm": stat("warm", 0, "DRAIN"),
    }
    wanted = (
        Server("drained", 1, 100),
        Server("maint", 2, 100),
        Server("same", 3, 100),
        Server("warm", 4, 0),
    )
    assert plan_sync(current, wanted) == [
        Change("raise", "drained", 100),
        Change("raise", "maint", 100),
    ]
