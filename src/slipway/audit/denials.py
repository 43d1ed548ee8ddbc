"""Refused requests, folded: one audit entry per source per minute instead of one per request.

Every refused request used to be its own fsync'd entry, so anyone able to reach the listener
could write the disk full with unauthenticated requests (and a full disk refuses every change,
since a change is refused when its audit entry cannot be written). Now the first refusal of a
source (its address, and the token's name and role if it had a valid one) is written at once,
so an attack shows immediately; the rest of that source's refusals are counted and written as
one entry when its minute ends: the count, the first and last time, the reasons and statuses,
and a few sample paths. A source still refused a minute later carries on in the same tally
without a new immediate entry.

Bounds, whatever the number of sources: at most `max_sources` tallies (the rest fold into one
tally of many sources) and at most `at_once` immediate entries per window across all sources.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slipway.audit.log import AuditError, AuditLog, clip

log = logging.getLogger("slipway.audit")
WINDOW = 60.0  # seconds a tally collects before it is written
MAX_SOURCES = 100  # tallies kept at once; further sources share one
AT_ONCE = 60  # first refusals written at once per window, across all sources
SAMPLE_PATHS = 3  # distinct paths kept per tally, each clipped to PATH_CHARS
PATH_CHARS = 80
MAX_KINDS = 8  # distinct reasons (or statuses) counted by name; the rest as "other"
MAX_SEEN = 1000  # distinct addresses counted in the tally of many sources
FOLDED = "requests denied"  # the action of a folded entry
MANY = ("(many sources)", "(various)", "-")  # (host, who, role) of the shared tally


@dataclass(frozen=True)
class Denial:
    who: str
    role: str
    source: str  # as an immediate entry records it ("ip", or "ip:port" with a token)
    host: str  # the address it is counted against
    method: str
    path: str
    status: int
    reason: str


def _count(kinds: dict[str, int], kind: str) -> None:
    if kind not in kinds and len(kinds) >= MAX_KINDS:
        kind = "other"
    kinds[kind] = kinds.get(kind, 0) + 1


@dataclass
class Tally:
    host: str
    who: str
    role: str
    opened: float  # when its window began
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # the tally of many sources only

    def add(self, denial: Denial, now: float) -> None:
        if not self.count:
            self.first = now
        self.count, self.last = self.count + 1, now
        _count(self.reasons, denial.reason)
        _count(self.statuses, str(denial.status))
        path = clip(denial.path, PATH_CHARS)
        if path not in self.paths and len(self.paths) < SAMPLE_PATHS:
            self.paths.append(path)
        if (self.host, self.who, self.role) == MANY and len(self.seen) < MAX_SEEN:
            self.seen.add(denial.host)

    def entry(self) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "count": self.count,
            "first": round(self.first, 3),
            "last": round(self.last, 3),
            "reasons": self.reasons,
            "statuses": self.statuses,
            "paths": self.paths,
        }
        if self.seen:
            detail["sources"] = len(self.seen)  # MAX_SEEN means "at least"
            detail["sample_sources"] = sorted(self.seen)[:SAMPLE_PATHS]
        return {
            "who": self.who,
            "role": self.role,
            "action": FOLDED,
            "target": f"{self.count} requests",
            "source": self.host,
            "outcome": "denied",
            "detail": detail,
        }

    def restart(self, now: float) -> None:
        """A new window for the same source, after its entry was written."""
        self.opened, self.count = now, 0
        self.reasons, self.statuses, self.paths, self.seen = {}, {}, [], set()


class FoldedDenials:
    """Audits refused requests into `audit`; call `record` for each, `flush` before reading."""

    def __init__(
        self,
        audit: AuditLog,
        *,
        window: float = WINDOW,
        max_sources: int = MAX_SOURCES,
        at_once: int = AT_ONCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.audit, self.window, self.clock = audit, window, clock
        self.max_sources, self.at_once = max_sources, at_once
        self._tallies: dict[tuple[str, str, str], Tally] = {}
        self._written = (0.0, 0)  # (window start, immediate entries written in it)
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def record(self, denial: Denial) -> None:
        """Audit one refused request: at once if it is its source's first, else folded.
        Raises AuditError when an immediate entry cannot be written (the request is then
        answered 503); the refusal is still counted in its tally."""
        with self._lock:
            now = self.clock()
            self._expire(now, everything=False)
            key = (denial.host, denial.who, denial.role)
            tally = self._tallies.get(key)
            immediate = False
            if tally is None and len(self._tallies) - (MANY in self._tallies) < self.max_sources:
                tally = self._tallies[key] = Tally(*key, opened=now)
                immediate = self._may_write_now(now)
            elif tally is None:  # too many sources at once: they share one tally
                tally = self._tallies.get(MANY)
                if tally is None:
                    tally = self._tallies[MANY] = Tally(*MANY, opened=now)
            try:
                if immediate:
                    self.audit.append(
                        who=denial.who,
                        role=denial.role,
                        action=denial.method,
                        target=denial.path,
                        source=denial.source,
                        outcome="denied",
                        detail={"status": denial.status, "reason": denial.reason},
                    )
            except AuditError:
                tally.add(denial, now)  # written with the tally, once the log can be
                raise
            finally:
                self._schedule(now)
            if not immediate:
                tally.add(denial, now)

    def flush(self) -> None:
        """Write every tally now (before the audit log is read), whether its window has
        ended or not; one that cannot be written is kept for later."""
        with self._lock:
            self._expire(self.clock(), everything=True)

    def pending(self) -> int:
        """Refusals counted but not yet written."""
        with self._lock:
            return sum(t.count for t in self._tallies.values())

    def _may_write_now(self, now: float) -> bool:
        start, written = self._written
        if not start <= now < start + self.window:
            start, written = now, 0
        allowed = written < self.at_once
        self._written = (start, written + 1 if allowed else written)
        return allowed

    def _expire(self, now: float, *, everything: bool) -> None:
        """Write the tallies whose window ended (or all), forget sources gone quiet."""
        for key, tally in list(self._tallies.items()):
            ended = not tally.opened <= now < tally.opened + self.window  # or the clock went back
            if not (ended or everything):
                continue
            if not tally.count:
                if ended:
                    del self._tallies[key]
                continue
            try:
                self.audit.append(**tally.entry())
            except AuditError as exc:
                # kept, counts and all, and tried again a window later (never in a loop)
                log.error("%d refused requests from %s are not audited yet: %s",
                          tally.count, tally.host, exc)  # fmt: skip
                tally.opened = now
                continue
            if ended and not now < tally.last + self.window:
                del self._tallies[key]  # quiet for a window: its next refusal shows at once
            else:
                tally.restart(now)  # still going: the next minute folds too

    def _schedule(self, now: float) -> None:
        """Wake up when the oldest window ends, on the running event loop; without one (a
        test, a script), windows end on the next record() or flush()."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None and self._timer_loop is loop:
            return
        if not self._tallies:
            return
        due = min(t.opened for t in self._tallies.values()) + self.window
        self._timer_loop = loop
        self._timer = loop.call_later(max(due - now, 0.0) + 0.01, self._tick)

    def _tick(self) -> None:
        with self._lock:
            self._timer = self._timer_loop = None
            now = self.clock()
            self._expire(now, everything=False)
            self._schedule(now)
