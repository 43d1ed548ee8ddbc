"""Refused requests folded into one audit entry per source per minute: the first at once, the
rest counted; bounded in entries, bytes and memory whatever the sources; written by a timer
on the event loop, and kept when the log cannot be written."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from slipway.audit.denials import FOLDED, MANY, Denial, FoldedDenials
from slipway.audit.log import HEAD_NAME, AuditError, AuditLog, Entry


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def denial(host: str = "10.0.0.66", path: str = "/v1/status", **changes: Any) -> Denial:
    fields: dict[str, Any] = {
        "who": "anonymous",
        "role": "-",
        "source": host,
        "host": host,
        "method": "GET",
        "path": path,
        "status": 401,
        "reason": "no credentials",
    }
    return Denial(**(fields | changes))


def folded(tmp_path: Path, **options: Any) -> tuple[FoldedDenials, AuditLog, Clock]:
    clock = Clock()
    audit = AuditLog(tmp_path, clock=clock)
    return FoldedDenials(audit, clock=clock, **options), audit, clock


def test_the_first_refusal_is_written_at_once_and_the_rest_folded(tmp_path: Path) -> None:
    denials, audit, clock = folded(tmp_path)
    denials.record(denial())
    (first,) = audit.entries()
    assert (first.who, first.source, first.action, first.target) == (
        "anonymous",
        "10.0.0.66",
        "GET",
        "/v1/status",
    )  # the path once: the action is the method
    assert (first.outcome, first.detail) == ("denied", {"status": 401, "reason": "no credentials"})
    for i in range(99):
        clock.t += 0.5
        path = "/wp-admin" if i % 2 else "/" + "x" * 5000
        denials.record(denial(path=path, status=429 if i > 50 else 401, reason="throttled"))
    assert len(audit.entries()) == 1 and denials.pending() == 99
    clock.t = first.at + 60  # the minute is over: the next refusal writes the tally
    denials.record(denial(path="/.env"))
    entries = audit.entries()
    assert len(entries) == 2 and denials.pending() == 1
    tally = entries[1]
    assert (tally.action, tally.target, tally.source, tally.outcome) == (
        FOLDED,
        "99 requests",
        "10.0.0.66",
        "denied",
    )
    assert tally.detail["count"] == 99
    assert tally.detail["first"] == first.at + 0.5 and tally.detail["last"] == first.at + 49.5
    assert tally.detail["reasons"] == {"throttled": 99}
    assert tally.detail["statuses"] == {"401": 51, "429": 48}
    assert tally.detail["paths"] == ["/" + "x" * 79 + "…[4921 more characters]", "/wp-admin"]
    assert audit.verify().ok


def test_a_continuing_attack_writes_one_entry_a_minute(tmp_path: Path) -> None:
    denials, audit, clock = folded(tmp_path)
    for _ in range(10 * 60):  # ten minutes, a refusal a second
        denials.record(denial())
        clock.t += 1
    entries = audit.entries()
    assert len(entries) == 10  # the first at once, then one tally a minute
    assert entries[0].action == "GET"
    assert [e.action for e in entries[1:]] == [FOLDED] * 9
    assert sum(e.detail["count"] for e in entries[1:]) + 1 + denials.pending() == 600
    clock.t += 120  # quiet: the source is forgotten, and its next refusal is written at once
    denials.flush()
    assert denials.pending() == 0 and len(audit.entries()) == 11
    denials.record(denial())
    assert audit.entries()[-1].action == "GET"


def test_each_source_and_each_token_is_its_own_tally(tmp_path: Path) -> None:
    denials, audit, _ = folded(tmp_path)
    for _ in range(3):
        denials.record(denial("10.0.0.1"))
        denials.record(denial("10.0.0.2"))
        denials.record(denial("10.0.0.1", who="ci", role="viewer", source="10.0.0.1:5000"))
    assert [(e.source, e.who) for e in audit.entries()] == [
        ("10.0.0.1", "anonymous"),
        ("10.0.0.2", "anonymous"),
        ("10.0.0.1:5000", "ci"),
    ]
    denials.flush()
    tallies = [(e.source, e.who, e.detail["count"]) for e in audit.entries()[3:]]
    assert tallies == [("10.0.0.1", "anonymous", 2), ("10.0.0.2", "anonymous", 2),
                       ("10.0.0.1", "ci", 2)]  # fmt: skip


def test_many_sources_are_bounded_in_entries_and_memory(tmp_path: Path) -> None:
    denials, audit, _ = folded(tmp_path, max_sources=5, at_once=3)
    for i in range(2000):
        denials.record(denial(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", reason=f"r{i}"))
    assert len(audit.entries()) == 3  # at most `at_once` written at once per minute
    assert len(denials._tallies) == 6  # five sources, and one for all the others
    denials.flush()
    entries = audit.entries()
    assert len(entries) == 3 + 2 + 1  # two sources were folded from the start; the rest shared
    many = entries[-1]
    assert (many.who, many.source) == (MANY[1], MANY[0])
    assert many.detail["count"] == 1995 and many.detail["sources"] == 1000  # counted up to 1000
    assert len(many.detail["sample_sources"]) == 3
    assert len(many.detail["reasons"]) == 9 and many.detail["reasons"]["other"] == 1995 - 8
    assert sum(e.detail.get("count", 1) for e in entries) == 2000
    assert audit.path.stat().st_size < 5000


def test_huge_paths_cost_a_few_hundred_bytes(tmp_path: Path) -> None:
    denials, audit, clock = folded(tmp_path)
    for i in range(1000):
        denials.record(denial(path=f"/{i}" + "a" * 50_000))
        clock.t += 0.05
    denials.flush()
    assert [e.detail.get("count", 1) for e in audit.entries()] == [1, 999]
    assert audit.path.stat().st_size < 2000
    assert audit.verify().ok


def test_a_refusal_that_cannot_be_written_is_kept_for_later(tmp_path: Path) -> None:
    denials, audit, clock = folded(tmp_path)
    denials.record(denial("10.0.0.1"))
    blocker = tmp_path / f"{HEAD_NAME}.tmp"
    blocker.mkdir()  # every append fails now
    with pytest.raises(AuditError):
        denials.record(denial("10.0.0.2"))  # its first: the Guard answers 503
    denials.record(denial("10.0.0.2"))
    denials.record(denial("10.0.0.1"))
    clock.t += 61
    denials.flush()  # cannot be written: logged, kept
    assert denials.pending() == 3 and len(audit.entries()) == 1
    blocker.rmdir()
    clock.t += 61
    denials.flush()
    counts = {e.source: e.detail.get("count", 1) for e in audit.entries()[1:]}
    assert counts == {"10.0.0.2": 2, "10.0.0.1": 1} and denials.pending() == 0
    assert audit.verify().ok


def entries_when(audit: AuditLog, count: int, timeout: float) -> list[Entry]:
    deadline = time.monotonic() + timeout
    while len(found := audit.entries()) < count:
        assert time.monotonic() < deadline, f"{len(found)} entries, not {count}, after {timeout}s"
        time.sleep(0.01)
    return found


def test_tallies_are_written_by_a_timer_on_the_event_loop(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path)
    denials = FoldedDenials(audit, window=0.2)

    async def attack() -> list[Entry]:
        for _ in range(5):
            denials.record(denial())
        deadline = time.monotonic() + 5
        while len(audit.entries()) < 2:  # nobody calls record() or flush() again
            assert time.monotonic() < deadline, "the tally was never written"
            await asyncio.sleep(0.02)
        return audit.entries()

    first, tally = asyncio.run(attack())
    assert first.action == "GET" and tally.detail["count"] == 4
    assert denials.pending() == 0
