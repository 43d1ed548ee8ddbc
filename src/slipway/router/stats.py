"""Parsing HAProxy's runtime answers. Pure."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerStat:
    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", ...
    weight: int
    scur: int
    qcur: int
    check_status: str
    req_tot: int

    @property
    def up(self) -> bool:
        return self.status.startswith("UP") or self.status.startswith("DRAIN")

    @property
    def checked_ok(self) -> bool:
        """Up and its last health check passed (L7OK): safe to give traffic."""
        # "* L7OK" means a new check is in progress and the last one passed.
        return self.status == "UP" and self.check_status.lstrip("* ").startswith("L7OK")

    @property
    def agrees(self) -> bool:
        """HAProxy does not contradict our own probes: its last check passed, or it has not
        checked yet (its first check comes at a random point of the first interval, up to a
        second away). A server that failed a check must pass again first."""
        status = self.check_status.lstrip("* ")
        return self.status.startswith("UP") and (status.startswith("L7OK") or status == "INI")

    @property
    def idle(self) -> bool:
        return self.scur == 0 and self.qcur == 0


def parse_show_stat(text: str, backend: str) -> dict[str, ServerStat]:
    """`show stat` CSV (header starts with '# ') → the servers of one backend."""
    body = text.lstrip("# ")
    servers: dict[str, ServerStat] = {}
    for row in csv.DictReader(io.StringIO(body)):
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        servers[row["svname"]] = ServerStat(
            name=row["svname"],
            status=row.get("status", ""),
            weight=_int(row.get("weight")),
            scur=_int(row.get("scur")),
            qcur=_int(row.get("qcur")),
            check_status=row.get("check_status", ""),
            req_tot=_int(row.get("req_tot") or row.get("stot")),
        )
    return servers


@dataclass(frozen=True)
class CacheCounters:
    """A backend's cache: lookups (requests that could be answered from it) and hits."""

    lookups: int = 0
    hits: int = 0

    @property
    def ratio(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None


def parse_cache_counters(text: str, backend: str) -> CacheCounters:
    """The BACKEND row of `show stat` (cache_lookups, cache_hits)."""
    body = text.lstrip("# ")
    for row in csv.DictReader(io.StringIO(body)):
        if row.get("pxname") == backend and row.get("svname") == "BACKEND":
            return CacheCounters(_int(row.get("cache_lookups")), _int(row.get("cache_hits")))
    return CacheCounters()


@dataclass(frozen=True)
class ProcInfo:
    master_pid: int
    reloads: int
    failed: int
    workers: tuple[int, ...]


def parse_show_proc(text: str) -> ProcInfo:
    """The master CLI's `show proc`: reload and failure counts, current workers."""
    master_pid = reloads = failed = 0
    workers: list[int] = []
    section = "master"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("# workers"):
            section = "workers"
            continue
        if stripped.startswith("# old workers") or stripped.startswith("# programs"):
            section = "other"
            continue
        if not stripped or stripped.startswith("#"):
            continue
        parts = stripped.split()
        if section == "master" and len(parts) >= 3 and parts[1] == "master":
            master_pid, reloads = int(parts[0]), int(parts[2])
            if "[failed:" in stripped:
                failed = int(stripped.split("[failed:")[1].split("]")[0])
        elif section == "workers" and parts[0].isdigit():
            workers.append(int(parts[0]))
    return ProcInfo(master_pid, reloads, failed, tuple(workers))


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
