"""When a database's next backup or verification is due, and which are late. Pure: times in,
decisions out (the daemon's scheduler acts on them, the alert reads `overdue`).

A kind is due when its last success is older than its interval (or there never was one);
it is overdue when that age passes the interval plus a grace, so a backup that is slow or
retried does not alert, but one that silently stopped happening does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slipway.errors import UsageError

MIN_EVERY = 10.0  # seconds: shorter would only load the host (tests use it)
MAX_EVERY = 366 * 86400.0
GRACE = 0.5  # of the interval, at least MIN_GRACE: how late is "did not happen on time"
MIN_GRACE = 600.0
KINDS = ("full", "diff", "verify")


@dataclass(frozen=True)
class Schedule:
    full: float | None = 7 * 86400.0  # None: not scheduled
    diff: float | None = 86400.0
    verify: float | None = 86400.0

    def every(self, kind: str) -> float | None:
        value: float | None = getattr(self, kind)
        return value

    def to_dict(self) -> dict[str, float | None]:
        return {k: self.every(k) for k in KINDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Schedule:
        if not data:
            return cls()
        return cls(**{k: (float(data[k]) if data.get(k) is not None else None)
                      for k in KINDS if k in data})  # fmt: skip


def check_every(kind: str, seconds: float | None) -> float | None:
    if seconds is not None and not MIN_EVERY <= seconds <= MAX_EVERY:
        raise UsageError(
            f"--{kind} every {seconds:g}s is out of bounds",
            fix=f"between {MIN_EVERY:g}s and 366d, e.g. 1d; or --{kind} off",
        )
    return seconds


@dataclass(frozen=True)
class Last:
    """The last success of each kind (unix time; None: never), and the last failed attempt
    since it. A full backup counts as a differential too: a diff is due only a
    diff-interval after the newest of either."""

    full: float | None
    diff: float | None
    verify: float | None
    failed: dict[str, float] = field(default_factory=dict)

    def since(self, kind: str, created_at: float) -> float:
        """When `kind` last succeeded; never: the database's creation (whose first full
        backup is taken at create)."""
        if kind == "diff":
            at = max((t for t in (self.full, self.diff) if t is not None), default=None)
        else:
            at = self.full if kind == "full" else self.verify
        return at if at is not None else created_at


def retry_after(every: float) -> float:
    """A failed run is tried again this much later, not at every tick."""
    return min(max(MIN_EVERY, every / 4), 600.0)


def due(schedule: Schedule, last: Last, now: float, created_at: float) -> str | None:
    """The one thing to run now, most important first: a full backup, a differential, then
    a verification (which proves the newest backup, so it follows them)."""
    for kind in KINDS:
        every = schedule.every(kind)
        if every is None or now - last.since(kind, created_at) < every:
            continue
        failed = last.failed.get(kind)
        if failed is not None and now - failed < retry_after(every):
            continue
        return kind
    return None


def overdue(schedule: Schedule, last: Last, now: float, created_at: float) -> list[str]:
    """The kinds that did not happen on time (the alert's `databases_failing`)."""
    late = []
    for kind in KINDS:
        every = schedule.every(kind)
        if every is not None and now - last.since(kind, created_at) > every + grace(every):
            late.append(kind)
    return late


def grace(every: float) -> float:
    return max(MIN_GRACE, GRACE * every)
