"""Vulnerability lookup in the OSV format (https://ossf.github.io/osv-schema/).

The dependency-audit gate matches a release's installed Python packages against an OSV
export the user keeps offline (osv.dev's PyPI/all.zip, zipped or unzipped) or against an
OSV-compatible server. Only `PyPI` entries count; versions compare as PEP 440 and names as
PEP 503, so the answer is the one pip would give. A package whose version cannot be
compared raises CouldNotCheck, and a bad database or server raises OsvError: the gate fails
closed rather than passing a release it could not check. A record's own unreadable version
skips that one event or listed version (an unreadable "fixed" leaves the range open)."""

from __future__ import annotations

import asyncio
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ECOSYSTEM = "PyPI"
BATCH = 1000  # the OSV API accepts at most 1000 queries per querybatch
RANGE_TYPES = ("ECOSYSTEM", "SEMVER")  # GIT ranges need the commit graph: ignored
EXPORT_HINT = (
    "point database at an OSV export, e.g. https://osv-vulnerabilities.storage.googleapis.com"
    "/PyPI/all.zip (the .zip itself or the folder it unzips to)"
)
SERVER_HINT = "check the URL and that the OSV server is running (e.g. https://api.osv.dev)"

Record = dict[str, Any]


@dataclass(frozen=True)
class Vulnerability:
    id: str
    aliases: tuple[str, ...]
    summary: str  # the record's "summary", else the first line of "details"; may be ""
    fixed: tuple[str, ...]  # versions newer than the checked one that fix it, oldest first


class OsvError(Exception):
    """The database or server cannot be used; the message names it and how to fix it."""


class CouldNotCheck(Exception):
    """A package's version is not PEP 440, so no advisory range can be compared with it."""


def _list(value: Any) -> list[Any]:
    """A field that should be a JSON list; anything else counts as absent, not as a crash."""
    return value if isinstance(value, list) else []


@lru_cache(maxsize=65536)  # real records repeat the same version strings many times
def _parse(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _checked_version(name: str, version: str) -> Version:
    parsed = _parse(version)
    if parsed is None:
        raise CouldNotCheck(
            f"{name} {version!r}: not a PEP 440 version, so advisories cannot be compared "
            "with it; install a release with a standard version number"
        )
    return parsed


def _in_range(v: Version, events: list[Any]) -> bool:
    """One range per the spec's IncludedInRanges; an event with a bad version is skipped."""
    limits: list[Version] = []
    steps: list[tuple[tuple[int, Version, int], str]] = []
    for event in events:
        if not isinstance(event, dict):
            continue
        for kind, value in event.items():
            at = _parse(str(value))
            if kind == "introduced" and value == "0":
                steps.append(((0, Version("0"), 0), kind))  # before every version
            elif at is None:
                continue  # "*" limit (no limit) or a version PEP 440 cannot read
            elif kind == "limit":
                limits.append(at)
            elif kind in ("introduced", "fixed", "last_affected"):
                # at equal versions "introduced" goes first, so introduced=fixed=X is empty
                steps.append(((1, at, 0 if kind == "introduced" else 1), kind))
    if limits and not any(v < lim for lim in limits):
        return False
    vulnerable = False
    for (rank, at, _), kind in sorted(steps, key=lambda step: step[0]):
        if kind == "introduced" and (rank == 0 or v >= at):
            vulnerable = True
        elif (kind == "fixed" and v >= at) or (kind == "last_affected" and v > at):
            vulnerable = False
    return vulnerable


def _ranges(entry: Record) -> Iterator[list[Any]]:
    for rng in _list(entry.get("ranges")):
        if isinstance(rng, dict) and rng.get("type") in RANGE_TYPES:
            yield _list(rng.get("events"))


def _pypi(record: Record) -> Iterator[tuple[str, Record]]:
    """(canonical name, entry) for each PyPI entry of the record's `affected[]`."""
    for entry in _list(record.get("affected")):
        package = entry.get("package") if isinstance(entry, dict) else None
        if isinstance(package, dict) and package.get("ecosystem") == ECOSYSTEM:
            yield canonicalize_name(str(package.get("name", ""))), entry


def _entries(record: Record, canonical: str) -> list[Record]:
    return [entry for name, entry in _pypi(record) if name == canonical]


def _affects(entry: Record, v: Version) -> bool:
    if any(_in_range(v, events) for events in _ranges(entry)):
        return True
    return any(_parse(str(listed)) == v for listed in _list(entry.get("versions")))


def _fixed(entries: list[Record], v: Version) -> tuple[str, ...]:
    """Fixing versions newer than v: from the ranges that include v, else from all ranges."""
    ranges = [events for entry in entries for events in _ranges(entry)]
    fixed: dict[Version, str] = {}
    for events in [events for events in ranges if _in_range(v, events)] or ranges:
        for event in events:
            if isinstance(event, dict) and "fixed" in event:
                at = _parse(str(event["fixed"]))
                if at is not None and at > v:
                    fixed.setdefault(at, str(event["fixed"]))
    return tuple(fixed[k] for k in sorted(fixed))


def _vulnerability(record: Record, entries: list[Record], v: Version) -> Vulnerability:
    vid = str(record["id"])
    aliases = dict.fromkeys(str(a) for a in _list(record.get("aliases")) if str(a) != vid)
    summary = str(record.get("summary") or "").strip()
    if not summary:
        summary = next(iter(str(record.get("details") or "").strip().splitlines()), "")
    return Vulnerability(vid, tuple(aliases), summary, _fixed(entries, v))


@dataclass
class OsvDatabase:
    source: str  # path or URL, for messages
    records: int
    newest_modified: datetime | None  # tells the gate how stale the offline export is
    _index: dict[str, list[Record]] = field(default_factory=dict, repr=False)

    def vulnerabilities(self, name: str, version: str) -> list[Vulnerability]:
        v = _checked_version(name, version)
        canonical = canonicalize_name(name)
        found: dict[str, Vulnerability] = {}
        for record in self._index.get(canonical, []):
            entries = _entries(record, canonical)
            if record["id"] not in found and any(_affects(e, v) for e in entries):
                found[record["id"]] = _vulnerability(record, entries, v)
        return sorted(found.values(), key=lambda vuln: vuln.id)


def _decode(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise OsvError(
            f"{where}: invalid JSON ({e}); each .json file must hold one OSV record or a "
            "list of them: fix or delete the file, or download the export again"
        ) from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise OsvError(
            f"{path}: cannot read it ({e.strerror}); check that it exists and you may read it"
        ) from None


def _documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, parsed JSON) for each file of a folder, a zip, or a single file."""
    if path.is_dir():
        for file in sorted(f for f in path.rglob("*.json") if not f.is_dir()):
            yield str(file), _decode(_read(file), str(file))
    elif path.is_file() and path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                for member in archive.infolist():
                    if not member.is_dir() and member.filename.endswith(".json"):
                        where = f"{path} (member {member.filename})"
                        yield where, _decode(archive.read(member), where)
        except (zipfile.BadZipFile, OSError) as e:
            raise OsvError(f"{path}: not a readable zip file ({e}); {EXPORT_HINT}") from None
    elif path.is_file():
        yield str(path), _decode(_read(path), str(path))
    else:
        raise OsvError(f"{path}: does not exist; {EXPORT_HINT}")


def _modified(record: Any, where: str) -> datetime:
    """Checks the fields every OSV record must have; returns its "modified" time in UTC."""
    fix = 'every OSV record is a JSON object with string "id" and "modified" fields'
    if not isinstance(record, dict):
        raise OsvError(
            f"{where}: expected an OSV record, got a JSON {type(record).__name__}; {fix}"
        )
    for key in ("id", "modified"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise OsvError(f"{where}: OSV record without {key!r}; {fix}")
    try:
        stamp = datetime.fromisoformat(record["modified"])
    except ValueError:
        raise OsvError(
            f'{where}: record {record["id"]}: "modified" {record["modified"]!r} is not an '
            "RFC 3339 timestamp such as 2026-01-31T12:00:00Z"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def load_database(path: Path) -> OsvDatabase:
    """Loads an OSV export and indexes it by canonical package name for fast lookups."""
    latest: dict[str, tuple[Record, datetime]] = {}  # a repeated id keeps its newest version
    for where, document in _documents(path):
        items = document if isinstance(document, list) else [document]
        for i, record in enumerate(items):
            stamp = _modified(record, f"{where}[{i}]" if isinstance(document, list) else where)
            if record["id"] not in latest or stamp >= latest[record["id"]][1]:
                latest[record["id"]] = (record, stamp)
    if not latest:
        raise OsvError(f"{path}: is empty (no OSV records); {EXPORT_HINT}")
    index: dict[str, list[Record]] = {}
    for record, _ in latest.values():
        if not record.get("withdrawn"):
            for name in {name for name, _ in _pypi(record)}:
                index.setdefault(name, []).append(record)
    newest = max(stamp for _, stamp in latest.values())
    return OsvDatabase(str(path), len(latest), newest, index)


def installed_packages(venv: Path) -> list[tuple[str, str]]:
    """(name, version) of each distribution in the virtualenv, sorted by canonical name."""
    sites = sorted(p for p in venv.glob("lib/python*/site-packages") if p.is_dir())
    if not sites:
        raise OsvError(
            f"{venv}: no lib/python*/site-packages in it; point it at a virtualenv folder "
            "(the one holding bin/python)"
        )
    every: set[tuple[str, str]] = set()
    for dist in metadata.distributions(path=[str(site) for site in sites]):
        name: str | None = dist.metadata["Name"]
        if name:  # a dist-info without a name cannot be looked up or reported
            every.add((name, dist.version or ""))  # "" is not PEP 440: the gate fails closed
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for name, version in sorted(every):  # sorted: the same spelling wins for duplicates
        found.setdefault((canonicalize_name(name), version), (name, version))
    return [found[key] for key in sorted(found)]


async def _call(client: httpx.AsyncClient, method: str, url: str, body: Any = None) -> Any:
    try:
        response = await client.request(method, url, json=body)
    except httpx.TimeoutException:
        raise OsvError(f"{url}: no answer in time; {SERVER_HINT}") from None
    except httpx.HTTPError as e:
        raise OsvError(f"{url}: {type(e).__name__}: {e}; {SERVER_HINT}") from None
    if response.status_code != 200:
        raise OsvError(f"{url}: HTTP {response.status_code}; {SERVER_HINT}")
    try:
        return response.json()
    except ValueError:
        raise OsvError(f"{url}: the answer is not JSON; is this an OSV API server?") from None


async def _query_ids(
    client: httpx.AsyncClient, base: str, packages: list[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """The advisory ids the server lists for each package, following its page tokens."""
    ids: dict[tuple[str, str], list[str]] = {pkg: [] for pkg in packages}
    where = f"{base}/v1/querybatch"
    todo: list[tuple[tuple[str, str], str | None]] = [(pkg, None) for pkg in packages]
    while todo:
        queries = [
            {"package": {"name": n, "ecosystem": ECOSYSTEM}, "version": v}
            | ({"page_token": token} if token else {})
            for (n, v), token in todo
        ]
        answer = await _call(client, "POST", where, {"queries": queries})
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(todo):
            raise OsvError(f"{where}: the answer lacks one result per query; {SERVER_HINT}")
        pages: list[tuple[tuple[str, str], str | None]] = []
        for (pkg, _), result in zip(todo, results, strict=True):
            found = _list(result.get("vulns")) if isinstance(result, dict) else []
            ids[pkg].extend(str(v["id"]) for v in found if isinstance(v, dict) and "id" in v)
            if isinstance(result, dict) and result.get("next_page_token"):
                pages.append((pkg, str(result["next_page_token"])))
        todo = pages
    return ids


async def query_server(
    url: str, packages: list[tuple[str, str]], timeout: float
) -> dict[tuple[str, str], list[Vulnerability]]:
    """Asks an OSV API server; every input package is a key, [] when it is clean.

    `timeout` bounds each request. Raises CouldNotCheck before any request if a version is
    not PEP 440."""
    versions = {pkg: _checked_version(*pkg) for pkg in packages}
    base, unique = url.rstrip("/"), list(versions)
    ids: dict[tuple[str, str], list[str]] = {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        for start in range(0, len(unique), BATCH):
            ids |= await _query_ids(client, base, unique[start : start + BATCH])
        limit = asyncio.Semaphore(16)

        async def fetch(vid: str) -> Any:
            async with limit:
                return await _call(client, "GET", f"{base}/v1/vulns/{quote(vid, safe='')}")

        try:
            async with asyncio.TaskGroup() as group:
                distinct = {vid for found in ids.values() for vid in found}
                tasks = {vid: group.create_task(fetch(vid)) for vid in distinct}
        except ExceptionGroup as errors:  # report the first failure, not a group of them
            raise errors.exceptions[0] from None
    out: dict[tuple[str, str], list[Vulnerability]] = {}
    for pkg, found in ids.items():
        matches: dict[str, Vulnerability] = {}
        for vid in found:
            record = tasks[vid].result()
            if not isinstance(record, dict) or "id" not in record:
                raise OsvError(f"{base}/v1/vulns/{vid}: not an OSV record; {SERVER_HINT}")
            if not record.get("withdrawn"):
                entries = _entries(record, canonicalize_name(pkg[0]))
                matches.setdefault(vid, _vulnerability(record, entries, versions[pkg]))
        out[pkg] = sorted(matches.values(), key=lambda vuln: vuln.id)
    return out
