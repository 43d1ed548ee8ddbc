"""Whether a host is up, cut off from the control plane, or down. Pure: no I/O.

The control plane alone cannot tell a dead host from one it is cut off from: both stop
answering over SSH. The lb tier can: it reaches the app hosts on its own path, and its health
checks say whether their instances still answer. So a host that stops answering is
"unreachable" at once, and "down" only when it has not answered for `DOWN_AFTER` seconds and
no lb host sees any of its servers up (the witness). A host cut off from the control plane
but still serving stays "unreachable": nothing is torn down or doubled for it. Without a
witness at all (no lb host answers either: the control plane may be the one cut off), no
host is declared down. A host that runs nothing the lb tier can see (workers only) has no
witness either way: it is declared down only after `DOWN_AFTER_UNSEEN`, so that a short cut
does not start its workers a second time elsewhere (a cut longer than that still may: its
workers keep running where the control plane cannot stop them)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

DOWN_AFTER = 3.0  # seconds without an answer before a host may be declared down
# the same for a host the lb tier cannot witness (it serves no traffic): dead or only cut
# off, nobody can tell, and declaring it down starts its workers again elsewhere
DOWN_AFTER_UNSEEN = 60.0


class Witness(Enum):
    SERVING = "serving"  # an lb host sees one of its servers up
    NOT_SERVING = "not serving"  # the lb hosts that answer see none of its servers up
    NONE = "none"  # no lb host answers: nothing is known of the data path
    UNSEEN = "unseen"  # the lb hosts answer, but the host has no server they could see


@dataclass(frozen=True)
class Reach:
    state: str  # up | unreachable | down
    since: float  # when it entered that state
    failing_since: float | None = None  # first unanswered probe of this outage
    error: str | None = None  # why the last probe failed

    @property
    def down(self) -> bool:
        return self.state == "down"


def first(now: float) -> Reach:
    """A host not probed yet is taken to be up (it answered when it was added)."""
    return Reach("up", now)


def after_probe(
    current: Reach, answered: bool, witness: Witness, now: float, error: str | None = None
) -> Reach:
    """The host's state after one probe (answered or not) and what the lb tier sees."""
    if answered:
        return current if current.state == "up" else Reach("up", now)
    failing_since = current.failing_since if current.failing_since is not None else now
    if current.down:
        return replace(current, error=error)  # down until it answers again
    silent = now - failing_since
    if (witness is Witness.NOT_SERVING and silent >= DOWN_AFTER) or (
        witness is Witness.UNSEEN and silent >= DOWN_AFTER_UNSEEN
    ):
        return Reach("down", now, failing_since, error)
    since = current.since if current.state == "unreachable" else now
    return Reach("unreachable", since, failing_since, error)
