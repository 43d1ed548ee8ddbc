"""How much room each host has for new instances. Pure: hosts, the instances on them and
what each instance needs in, room out.

A host holds its cores and 90% of its memory (the rest is the system's, HAProxy's and the
agent's), or what `slipway hosts capacity` set. Every instance that is not stopped takes
what its release's [resources] say its process needs, whatever its app and release: an
instance that is starting, serving, kept warm or still stopping uses the machine all the
same. A placement that does not fit is refused (FleetFull), never squeezed in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from slipway.errors import DeployError
from slipway.hosts.model import Host
from slipway.store.records import Instance

MEMORY_SHARE = 0.9  # of a host's memory that instances may take
GIB = 1024**3
EPSILON = 1e-9  # float sums of tenths of a core must not refuse an exact fit


@dataclass(frozen=True)
class Need:
    cpu: float  # cores
    memory: int  # bytes

    def __add__(self, other: Need) -> Need:
        return Need(self.cpu + other.cpu, self.memory + other.memory)

    def __sub__(self, other: Need) -> Need:
        return Need(self.cpu - other.cpu, self.memory - other.memory)

    def covers(self, other: Need) -> bool:
        return self.cpu + EPSILON >= other.cpu and self.memory >= other.memory

    def __str__(self) -> str:
        return f"{self.cpu:g} cpu, {self.memory / GIB:.2f} GiB"


NOTHING = Need(0.0, 0)


class FleetFull(DeployError):
    """No eligible host has room for an instance: refused rather than overloading one."""

    kind = "fleet_full"


def capacity(host: Host) -> Need:
    """What slipway may place on `host`: the operator's setting, else what the host has."""
    set_by_hand = host.facts.get("capacity") or {}
    cores = set_by_hand.get("cpu", host.facts.get("cores") or 1)
    memory = set_by_hand.get("memory", int((host.facts.get("memory") or GIB) * MEMORY_SHARE))
    return Need(float(cores), int(memory))


def taking_room(instance: Instance) -> bool:
    return instance.status != "stopped"


def used(instances: Iterable[Instance], need: Callable[[Instance], Need]) -> dict[str, Need]:
    """What the instances that are not stopped take on each host."""
    total: dict[str, Need] = {}
    for instance in instances:
        if taking_room(instance):
            total[instance.host] = total.get(instance.host, NOTHING) + need(instance)
    return total


class Room:
    """What is free on each host, taken as instances are placed."""

    def __init__(self, hosts: Sequence[Host], taken: dict[str, Need]) -> None:
        self.total = {h.name: capacity(h) for h in hosts}
        self.free = {name: cap - taken.get(name, NOTHING) for name, cap in self.total.items()}

    def fits(self, host: str, need: Need) -> bool:
        return host in self.free and self.free[host].covers(need)

    def take(self, host: str, need: Need) -> None:
        self.free[host] = self.free[host] - need

    def refuse(self, process: str, count: int, need: Need, hosts: Sequence[str]) -> FleetFull:
        """The error for `count` instances of `process` that found no room on `hosts`."""
        free = "; ".join(f"{h}: {self.free[h]} free of {self.total[h]}" for h in hosts)
        return FleetFull(
            f"the fleet is full: no host may take {count} more instance(s) of {process} "
            f"({need} each) — {free or 'no eligible host'}",
            where="slipway.toml [resources]",
            fix="add a host (`slipway hosts add`), stop or scale down something else, lower "
            f"[resources.{process}] if the process needs less, or raise a host's "
            "`slipway hosts capacity`",
        )
