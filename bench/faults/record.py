"""What the run keeps of each fault: its window on the monotonic clock, and what was seen
besides the requests (the address moving, the control plane's state coming back)."""

from __future__ import annotations

from dataclasses import dataclass, field

from slipway.loadgen import Sample


@dataclass(frozen=True)
class ControlLoss:
    """The control plane lost and restored: a change (a secret) made every `mark_every`."""

    every: float  # the replica's copy interval
    made: int  # changes made before the kill
    kept: int  # the last change the restored control plane has (its number)
    lost_seconds: float  # the kill − when the last kept change was made (0: none lost)
    snapshot_age: float  # the kill − when the restored snapshot was taken
    restore_seconds: float  # `slipway control restore`
    up_seconds: float  # restore + `slipway up`

    @property
    def lost(self) -> int:
        return self.made - self.kept


@dataclass(frozen=True)
class FaultWindow:
    name: str  # e.g. "lb killed"
    what: str  # what was done, for the notes
    start: float  # the fault (monotonic)
    end: float  # the end of its window: the fault's consequences are over
    baseline: bool  # the baseline fleet suffered it too
    vip_moved: float | None = None  # the address first seen on the other lb host
    control: ControlLoss | None = None


@dataclass
class Traffic:
    """Every request of one fleet's load, by method."""

    get: list[Sample] = field(default_factory=list)
    post: list[Sample] = field(default_factory=list)

    @property
    def all(self) -> list[Sample]:
        return [*self.get, *self.post]
