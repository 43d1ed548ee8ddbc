"""Bringing HAProxy's runtime servers to the recorded ones (after a daemon or HAProxy restart).
Pure: the plan is a list of changes; the router applies them in order.

The order is the invariant every traffic change keeps: capacity is added before any is taken
away (new servers, then raised weights, then lowered ones, then removals), so at no moment
does the backend have fewer serving servers than both before and after the change. Applied
in instance order instead, a sync interrupted mid-shift once set the old servers to 0 before
raising the new ones, and the backend had no server for a moment (503s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from slipway.router.config import Server
from slipway.router.stats import ServerStat

Kind = Literal["add", "raise", "lower", "remove"]
ORDER: tuple[Kind, ...] = ("add", "raise", "lower", "remove")


@dataclass(frozen=True)
class Change:
    kind: Kind
    server: str
    weight: int = 0
    new: Server | None = None  # for "add"


def plan_sync(current: dict[str, ServerStat], wanted: tuple[Server, ...]) -> list[Change]:
    changes: list[Change] = []
    names = {s.name for s in wanted}
    for server in wanted:
        now = current.get(server.name)
        if now is None:
            changes.append(Change("add", server.name, server.weight, server))
            continue
        parked = now.status.startswith(("MAINT", "DRAIN"))  # gets no new traffic at any weight
        effective = 0 if parked else now.weight
        if server.weight > effective:
            changes.append(Change("raise", server.name, server.weight))
        elif server.weight < effective:
            changes.append(Change("lower", server.name, server.weight))
    changes += [Change("remove", name) for name in sorted(current.keys() - names)]
    return sorted(changes, key=lambda c: ORDER.index(c.kind))
