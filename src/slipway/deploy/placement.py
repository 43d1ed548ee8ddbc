"""Where new instances go. Pure: the same fleet and the same instances give the same answer.

Each process type is spread evenly over the eligible hosts: a new instance goes to the host
with the fewest instances of that process type (of the release being placed), the first by
name on a tie, among the hosts with room for it (capacity.py)."""

from __future__ import annotations

from collections.abc import Sequence

from slipway.config.schema import Placement
from slipway.deploy.capacity import Need, Room
from slipway.errors import DeployError
from slipway.hosts.model import Host


def eligible(hosts: Sequence[Host], placement: Placement, skip: frozenset[str]) -> list[Host]:
    """The hosts the app may run on, in name order; DeployError if there are none."""
    if placement.hosts:
        known = {h.name: h for h in hosts}
        unknown = [n for n in placement.hosts if n not in known]
        if unknown:
            raise DeployError(
                f"[placement] hosts names {', '.join(unknown)}, not in the fleet",
                where="slipway.toml [placement] hosts",
                fix=f"hosts: {', '.join(sorted(known))} (see `slipway hosts`)",
            )
        chosen = [known[n] for n in placement.hosts]
    else:
        chosen = [h for h in hosts if any(h.has(role) for role in placement.roles)]
    chosen = [h for h in chosen if h.name not in skip]
    if not chosen:
        raise DeployError(
            "no host may run this app: none has the roles of [placement]"
            + (" (some are skipped)" if skip else ""),
            where="slipway.toml [placement]",
            fix="add a host with `slipway hosts add NAME --address IP --role app`, or "
            "change [placement]",
        )
    return sorted(chosen, key=lambda h: h.name)


def place(
    process: str,
    count: int,
    hosts: Sequence[str],
    existing: Sequence[str],
    room: Room,
    need: Need,
    prefer: Sequence[str] = (),
) -> list[str]:
    """Hosts for `count` new instances of `process`, given the hosts of those it keeps: of the
    hosts with room for one more, the least loaded first; on a tie, those in `prefer` (e.g.
    just freed), then by order. Each takes its room; FleetFull if one finds none."""
    load = {h: 0 for h in hosts}
    for host in existing:
        if host in load:
            load[host] += 1
    chosen = []
    for placed in range(count):
        open_hosts = [h for h in hosts if room.fits(h, need)]
        if not open_hosts:
            raise room.refuse(process, count - placed, need, hosts)
        host = min(open_hosts, key=lambda h: (load[h], h not in prefer, hosts.index(h)))
        load[host] += 1
        room.take(host, need)
        chosen.append(host)
    return chosen
