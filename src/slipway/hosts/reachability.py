"""Whether a host is up, cut off from the control plane, or down. Pure: no I/O.

The control plane alone cannot tell a dead host from one it is cut off from: both stop
answering over SSH. The lb tier can: it reaches the app hosts on its own path, and its health
checks say whether their instances still answer. So a host that stops answering is
"unreachable" at once, and "down" only when it has not answered for `DOWN_AFTER` seconds and
no lb host sees any of its servers up (the witness). A host cut off from the control plane
but still serving stays "unreachable": nothing is torn down or doubled for it. Without a
witness at all (no lb host answers either: the control plane may be the one cut off), no
host is declared down."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

DOWN_AFTER = 3.0  # seconds without an answer before a host may be declared down


class Witness(Enum):
    SERVING = "serving"  # an lb host sees one of its servers up
    NOT_SERVING = "not serving"  # the lb hosts that answer see none of its servers up
    NONE = "none"  # no lb host answers: nothing is known of the data path


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
    if now - failing_since >= DOWN_AFTER and witness is Witness.NOT_SERVING:
        return Reach("down", now, failing_since, error)
    since = current.since if current.state == "unreachable" else now
    return Reach("unreachable", since, failing_since, error)
