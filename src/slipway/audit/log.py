"""A tamper-evident, append-only audit log: JSON lines chained by a keyed MAC.

Each entry holds `prev` (the previous entry's `mac`) and `mac = HMAC-SHA256(audit.key,
canonical JSON of the entry without mac)`: editing, deleting or reordering an entry breaks
the chain, and nobody without the key can recompute it, as anyone able to write the file
could with a plain hash chain. Whoever can read the key (root, the daemon's user) can forge.

Cutting off the newest entries leaves a valid chain, so `audit.head` anchors the last seq
and mac, signed with the key. An older copy of the head put back cannot be told from the
real one: copy `audit.head` off the machine now and then for a stronger anchor. The key is
made with the first entry, so a key with no log and no head means the log was deleted.

The log is written in segments: once `audit.log` reaches `segment_bytes` it is renamed to
the next `audit.log.N` and a new `audit.log` continues the same chain (its first entry's
prev is the mac of the archived segment's last one). Beyond `keep_segments` archived
segments the oldest is removed, after an entry recording the removal (the seq and mac it
ended with) was appended: that entry is in the chain, so only the key can make one, and
verify() tells a segment retention removed from one deleted by hand.

Every text an entry holds is capped (`MAX_TEXT`, `MAX_DETAIL`): callers pass what a request
carried, and a 50 kB path must not become a 50 kB entry. Callers must never put secret
values in `target` or `detail`: the log is kept until retention removes its segment.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from slipway.errors import SlipwayError

LOG_NAME, HEAD_NAME, KEY_NAME = "audit.log", "audit.head", "audit.key"
GENESIS = "0" * 64
KEY_BYTES = 32
SEGMENT_BYTES = 10 * 1024 * 1024  # audit.log is archived as audit.log.N from this size on
KEEP_SEGMENTS = 50  # archived segments kept (about 500 MB); older ones are removed
RETENTION = "audit retention"  # the action of the entry that records a removed segment
_RETENTION_MARK = b'"action":"audit retention"'  # as canonical JSON writes it
MAX_TEXT = 256  # characters kept of who, role, action, target, source and each detail string
MAX_DETAIL = 2048  # characters kept of a detail's JSON
OUTCOMES = ("accepted", "ok", "denied", "failed", "refused")  # accepted: before acting
_TEXT = ("who", "role", "action", "target", "source", "outcome", "prev", "mac")


log = logging.getLogger("slipway.audit")


class AuditError(SlipwayError):
    kind = "audit"
    http_status = 503


@dataclass(frozen=True)
class Entry:
    seq: int
    at: float
    who: str
    role: str
    action: str
    target: str
    source: str
    outcome: str
    detail: Any
    prev: str
    mac: str


_FIELDS = frozenset(f.name for f in fields(Entry))


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    problems: list[str]
    files: int = 0  # the segments read (audit.log.1 … and audit.log)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """`text` cut to `limit` characters, saying how many were left off."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[{len(text) - limit} more characters]"


def _clipped(value: Any) -> Any:
    """A JSON value with every string (and key) clipped."""
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, dict):
        return {clip(k): _clipped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clipped(v) for v in value]
    return value


def bounded_detail(detail: Any) -> Any:
    """`detail` as it will read back from the log, within MAX_DETAIL characters of JSON;
    TypeError or ValueError if it is not JSON."""
    value = _clipped(json.loads(canonical(detail)))
    text = canonical(value)
    return value if len(text) <= MAX_DETAIL else {"clipped": clip(text, MAX_DETAIL)}


def _sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def entry_mac(key: bytes, record: dict[str, Any]) -> str:
    return _sign(key, canonical({k: v for k, v in record.items() if k != "mac"}))


def _head_sig(key: bytes, seq: int, mac: str) -> str:
    return _sign(key, f"{HEAD_NAME} {seq} {mac}")  # no canonical entry looks like this


def _write(fd: int, data: bytes) -> None:
    if os.write(fd, data) != len(data):
        raise OSError("only part of the data was written (is the disk full?)")
    os.fsync(fd)


def _refused(reason: str, where: Path | str, fix: str) -> AuditError:
    return AuditError(f"{reason}, so the action was refused", where=str(where), fix=fix)


def _load(raw: bytes) -> dict[str, Any]:
    """The entry on one line; ValueError says why it is not one."""
    try:
        record = json.loads(raw)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(record, dict) or set(record) != _FIELDS:
        raise ValueError("not an audit entry (its fields differ)")
    typed = all(isinstance(record[name], str) for name in _TEXT)
    if not typed or type(record["seq"]) is not int or type(record["at"]) is not float:
        raise ValueError("not an audit entry (a field has the wrong type)")
    return record


def _gap(where: str, seq: int, last: int, after: str) -> str:
    """Why `seq` cannot follow `last` (which ended `after`, the segment before, if not this)."""
    if seq <= last:
        return f"{where}: seq {seq} follows seq {last}: entries were reordered or copied"
    missing = "an entry was" if seq == last + 2 else f"{seq - last - 1} entries were"
    if after:
        return f"{where}: seq {seq} follows seq {last} at the end of {after}: {missing} deleted"
    return f"{where}: seq {seq} follows seq {last}: {missing} deleted or reordered"


def _start_problem(where: str, record: dict[str, Any], start: tuple[int, str]) -> str | None:
    """Whether the first entry found is where the chain may begin: seq 1, or the entry after
    the last one retention removed."""
    seq, first = record["seq"], start[0]
    if seq < first:  # a segment retention removed, still there: the daemon stopped in between
        return None
    if seq > first and first == 1:
        return f"{where}: the log starts at seq {seq}: the first entries were deleted"
    if seq > first:
        return (
            f"{where}: the log starts at seq {seq}, but retention removed only the entries "
            f"before seq {first}: entries {first}–{seq - 1} were deleted by hand"
        )
    if record["prev"] != start[1]:
        return f"{where} (seq {seq}): its prev is not the mac of seq {seq - 1}"
    return None


def _missing_segments(archived: list[tuple[int, Path]]) -> list[str]:
    """Retention removes the oldest segment only, so the numbers kept have no hole."""
    problems = []
    for (before, _), (after, _) in itertools.pairwise(archived):
        if after == before + 2:
            problems.append(f"{LOG_NAME}.{before + 1} is missing: a segment was deleted")
        elif after > before + 2:
            names = f"{LOG_NAME}.{before + 1} to .{after - 1}"
            problems.append(f"{names} are missing: {after - before - 1} segments were deleted")
    return problems


def _last_line(path: Path) -> bytes | None:
    """The last line, read backwards from the end; None for a missing or empty file."""
    try:
        with open(path, "rb") as log:
            pos = log.seek(0, os.SEEK_END)
            tail = b""
            while pos > 0 and tail.rfind(b"\n", 0, len(tail) - 1) < 0:
                step = min(4096, pos)
                pos -= step
                log.seek(pos)
                tail = log.read(step) + tail
    except FileNotFoundError:
        return None
    return tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :] or None


def _file_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Numbered lines, split on b"\\n" only (never U+2028); no file, no lines."""
    try:
        log = open(path, "rb")  # noqa: SIM115 (closed below; a missing file is no error)
    except FileNotFoundError:
        return
    with log:
        yield from enumerate(log, 1)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    """audit.log (the entries; older ones in audit.log.1, .2, …), audit.head (the anchor)
    and audit.key inside `folder`."""

    def __init__(
        self,
        folder: Path,
        *,
        clock: Callable[[], float] = time.time,
        segment_bytes: int = SEGMENT_BYTES,
        keep_segments: int = KEEP_SEGMENTS,
    ) -> None:
        if segment_bytes < 1 or keep_segments < 0:
            raise ValueError("segment_bytes must be at least 1 and keep_segments at least 0")
        self.folder, self._clock = folder, clock
        self.segment_bytes, self.keep_segments = segment_bytes, keep_segments
        self.path, self.head_path = folder / LOG_NAME, folder / HEAD_NAME
        self.key_path = folder / KEY_NAME
        self._lock = threading.Lock()

    def append(
        self,
        *,
        who: str,
        role: str,
        action: str,
        target: str,
        source: str,
        outcome: str,
        detail: Any = None,
    ) -> Entry:
        """Record one action durably, or raise AuditError having written nothing.

        On AuditError the caller must refuse the action. `detail` is a short string or a
        small JSON dict, never a secret value. Texts are clipped (MAX_TEXT, MAX_DETAIL).
        """
        what = f"audit entry for {clip(action, 80)} of {clip(target, 80)}"
        if outcome not in OUTCOMES:
            raise _refused(f"unknown outcome {outcome!r}", what, "use " + ", ".join(OUTCOMES))
        try:
            detail = bounded_detail(detail)  # stored exactly as it will read back
        except (TypeError, ValueError) as exc:
            raise _refused(f"the detail is not JSON ({exc})", what, "pass a small dict") from None
        texts = dict(who=who, role=role, action=action, target=target, source=source)
        record: dict[str, Any] = {name: clip(text) for name, text in texts.items()}
        with self._lock:
            try:
                return self._append({**record, "outcome": outcome, "detail": detail})
            except (OSError, ValueError) as exc:
                fix = f"check the free disk space and the permissions of {self.folder}"
                raise _refused(
                    f"the audit log could not be written: {exc}", self.path, fix
                ) from exc

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Nothing is appended meanwhile: a copy of the files taken inside is one chain."""
        with self._lock:
            yield

    def segments(self) -> list[Path]:
        """The archived segments, oldest first, then audit.log (which may not exist yet)."""
        return [path for _, path in self._archived()] + [self.path]

    def entries(self, since: float | None = None) -> list[Entry]:
        """Entries at or after `since`, oldest first, across the segments; damaged lines are
        left to verify()."""
        found = []
        with self._lock, self._reading():
            for path in self.segments():
                if since is not None and path != self.path and self._ends_before(path, since):
                    continue
                for _, raw in _file_lines(path):
                    with contextlib.suppress(ValueError):
                        record = _load(raw)
                        if raw.endswith(b"\n") and (since is None or record["at"] >= since):
                            found.append(Entry(**record))
        return found

    def verify(self) -> VerifyResult:
        """Every segment in order: each entry's mac, the chain from one entry to the next and
        across segments, where it starts (seq 1, or where retention cut it) and the head."""
        with self._lock, self._reading():
            key = self._key(create=False)
            start = self._start(key)
            archived = self._archived()
            problems = _missing_segments(archived)
            count, files, last, last_file = 0, 0, None, ""
            for path in [p for _, p in archived] + [self.path]:
                files += path.exists()
                for lineno, raw in _file_lines(path):
                    where = f"{path.name} line {lineno}"
                    try:
                        if not raw.endswith(b"\n"):
                            raise ValueError("a partial entry (no newline at the end)")
                        record = _load(raw)
                    except ValueError as exc:
                        problems.append(f"{where} is {exc}")
                        continue
                    count += 1
                    entry_at = f"{where} (seq {record['seq']})"
                    if key and not hmac.compare_digest(record["mac"], entry_mac(key, record)):
                        problems.append(f"{entry_at}: edited — its mac does not match")
                    if last is None:
                        problem = _start_problem(where, record, start)
                    elif record["seq"] != last["seq"] + 1:
                        after = last_file if last_file != path.name else ""
                        problem = _gap(where, record["seq"], last["seq"], after)
                    elif record["prev"] != last["mac"]:
                        problem = f"{entry_at}: its prev is not the mac of seq {last['seq']}"
                    else:
                        problem = None
                    if problem:
                        problems.append(problem)
                    last, last_file = record, path.name
            if key is None and count:
                problems.insert(0, f"{KEY_NAME} is missing: no mac can be checked")
            problems += self._check_head(key, last)
        return VerifyResult(ok=not problems, entries=count, problems=problems, files=files)

    def _append(self, record: dict[str, Any]) -> Entry:
        self.folder.mkdir(parents=True, exist_ok=True)
        tail = self._tail()
        fresh = tail is None and not self.key_path.exists()
        try:
            key = self._key(create=tail is None)  # a new key for a non-empty log would void it
            if key is None:
                fix = (
                    f"restore it from a backup, or move the {LOG_NAME}* files and {HEAD_NAME} aside"
                )
                raise _refused(
                    "the audit key is missing but the log has entries", self.key_path, fix
                )
            seq, prev = self._chain_end(key, tail, new_key=fresh)
            seq, prev = self._rotate(key, seq, prev)
            return self._write_entry(key, record, seq, prev)
        except BaseException:
            # the key is made with the first entry, so that a key without a log reads as a
            # deleted log: a first entry that failed takes its new key back
            with contextlib.suppress(OSError):
                if fresh and self._tail() is None:
                    self.key_path.unlink(missing_ok=True)
            raise

    def _write_entry(self, key: bytes, record: dict[str, Any], seq: int, prev: str) -> Entry:
        """Append the entry after (seq, prev) to audit.log and anchor it in the head; all or
        nothing."""
        record = {**record, "seq": seq + 1, "at": float(self._clock()), "prev": prev}
        entry = Entry(**record, mac=entry_mac(key, record))
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)  # re-opened each time: follows a replaced file
        try:
            size = os.fstat(fd).st_size
            try:
                _write(fd, (canonical(asdict(entry)) + "\n").encode())
                self._write_head(key, entry.seq, entry.mac)
            except BaseException:
                with contextlib.suppress(OSError):  # all or nothing: take the line back
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                raise
        finally:
            os.close(fd)
        return entry

    def _rotate(self, key: bytes, seq: int, prev: str) -> tuple[int, str]:
        """Once audit.log has reached the segment size, archive it as the next audit.log.N
        and remove the oldest segments beyond those kept. Returns the chain's new end."""
        try:
            if os.stat(self.path).st_size < self.segment_bytes:
                return seq, prev
        except FileNotFoundError:
            return seq, prev
        archived = self._archived()
        number = archived[-1][0] + 1 if archived else 1
        segment = self.folder / f"{LOG_NAME}.{number}"
        os.rename(self.path, segment)  # the next entry creates audit.log, chained onto this
        _sync_dir(self.folder)  # never an entry in the new audit.log before the rename
        archived.append((number, segment))
        while len(archived) > self.keep_segments:
            _, oldest = archived.pop(0)
            retired = self._retire(key, oldest, seq, prev)
            if retired is None:
                break
            seq, prev = retired
        return seq, prev

    def _retire(self, key: bytes, segment: Path, seq: int, prev: str) -> tuple[int, str] | None:
        """Record the removal of `segment` in the chain, then remove it. A damaged segment is
        kept: what it ended with is unknown, and it is evidence."""
        last = _last_line(segment)
        try:
            if last is None or not last.endswith(b"\n"):
                raise ValueError("it is empty or ends with a partial entry")
            end = _load(last)
        except ValueError as exc:
            log.error("audit segment %s is kept, not removed: %s; run `slipway audit verify`",
                      segment, exc)  # fmt: skip
            return None
        detail = {"removed": segment.name, "through_seq": end["seq"], "through_mac": end["mac"]}
        record: dict[str, Any] = {"who": "slipway", "role": "-", "action": RETENTION}
        record |= {"target": segment.name, "source": "daemon", "outcome": "ok", "detail": detail}
        entry = self._write_entry(key, record, seq, prev)
        # removed after the entry: a crash in between leaves a segment verify() accepts
        segment.unlink()
        return entry.seq, entry.mac

    def _start(self, key: bytes | None) -> tuple[int, str]:
        """Where the chain may begin: (1, GENESIS), or after the last entry retention removed,
        as the genuine retention entries say (the furthest one: a segment left behind by a
        crash and removed again is recorded twice)."""
        start = (1, GENESIS)
        for _, _, raw in self._lines():
            if _RETENTION_MARK not in raw:
                continue
            try:
                record = _load(raw)
                detail = record["detail"]
                through = detail["through_seq"], detail["through_mac"]
            except (ValueError, TypeError, KeyError):
                continue
            genuine = key is None or hmac.compare_digest(record["mac"], entry_mac(key, record))
            kind_ok = type(through[0]) is int and isinstance(through[1], str)
            if record["action"] == RETENTION and genuine and kind_ok and through[0] >= start[0]:
                start = (through[0] + 1, through[1])
        return start

    def _chain_end(
        self, key: bytes, tail: tuple[Path, bytes] | None, *, new_key: bool
    ) -> tuple[int, str]:
        """The seq and mac to chain onto: the later of the head and the log's last line."""
        verify = "run `slipway audit verify`"
        try:
            head = self._read_head(key)
        except ValueError as exc:
            raise _refused(str(exc), self.head_path, f"{verify}; then delete the head") from None
        if tail is None and head is None and not new_key:
            # the key is made with the first entry: a new chain from seq 1 would pass for
            # the whole log and hide that the old one was deleted
            fix = (
                f"restore {LOG_NAME} (and any {LOG_NAME}.N) and {HEAD_NAME} from a backup; or, "
                f"to start a new log, move {KEY_NAME} aside (keep it: it verifies old copies)"
            )
            raise _refused(
                f"the audit log and its head are gone but {KEY_NAME} exists", self.path, fix
            )
        if tail is None:
            return head or (0, GENESIS)  # a head with no log keeps the deletion visible
        path, last = tail
        if not last.endswith(b"\n"):
            # refuse rather than chain past damage silently; a crash mid-write is the
            # only innocent cause, and then deleting the partial line is the fix
            fix = f"{verify}; if that is its only problem: sed -i '$ d' {path}"
            raise _refused("the audit log ends with a partial entry", path, fix)
        try:
            entry = _load(last)
        except ValueError as exc:
            if head is None:
                reason = f"the last line of the audit log is {exc}"
                raise _refused(reason, path, f"{verify}; restore the log") from None
            return head
        # the head lags by one after a crash between the two writes; it is ahead when
        # the newest entries were cut off, and chaining on it keeps that gap visible
        if head is not None and head[0] > entry["seq"]:
            return head
        return entry["seq"], entry["mac"]

    def _key(self, *, create: bool) -> bytes | None:
        try:
            mode = os.stat(self.key_path).st_mode & 0o777
        except FileNotFoundError:
            if not create:
                return None
            key = secrets.token_bytes(KEY_BYTES)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            fd = os.open(self.key_path, flags, 0o600)
            try:
                _write(fd, key)
            except BaseException:
                self.key_path.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
            return key
        where = str(self.key_path)
        if mode & 0o077:
            reason = f"the audit key can be read or changed by other users (mode {mode:o})"
            raise AuditError(reason, where=where, fix=f"chmod 600 {where}")
        key = self.key_path.read_bytes()
        if len(key) != KEY_BYTES:
            fix = f"restore {KEY_NAME} from a backup; without it no entry can be verified"
            raise AuditError(f"the key is {len(key)} bytes, not {KEY_BYTES}", where=where, fix=fix)
        return key

    def _read_head(self, key: bytes | None) -> tuple[int, str] | None:
        """The anchored (seq, mac); ValueError if the head is damaged or was altered."""
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            head = json.loads(raw)
            seq, mac = int(head["seq"]), str(head["mac"])
            genuine = key is None or hmac.compare_digest(head["sig"], _head_sig(key, seq, mac))
        except (ValueError, TypeError, KeyError):
            genuine = False
        if not genuine:
            raise ValueError(f"{HEAD_NAME} is damaged or was altered: its signature is wrong")
        return seq, mac

    def _write_head(self, key: bytes, seq: int, mac: str) -> None:
        head = canonical({"seq": seq, "mac": mac, "sig": _head_sig(key, seq, mac)}) + "\n"
        tmp = self.head_path.with_name(HEAD_NAME + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write(fd, head.encode())
        finally:
            os.close(fd)
        # no directory fsync: a rename lost in a crash leaves the head one entry behind,
        # which verify() accepts
        os.replace(tmp, self.head_path)

    def _check_head(self, key: bytes | None, last: dict[str, Any] | None) -> list[str]:
        try:
            head = self._read_head(key)
        except ValueError as exc:
            return [str(exc)]
        seq = last["seq"] if last else 0
        if head is None and seq:
            return [f"{HEAD_NAME} is missing: a cut-off end cannot be detected"]
        if head is None and key is not None:
            # the key is only made with the first entry: there was a log
            return [
                f"the audit log is gone: no entry in {LOG_NAME} (or any {LOG_NAME}.N) and no "
                f"{HEAD_NAME}, but {KEY_NAME} exists, which is made with the first entry: "
                "the log and its head were deleted"
            ]
        if head is None:
            return []
        said = f"(head says seq {head[0]}, the log ends at seq {seq})"
        if head[0] > seq:
            count = "entry was" if head[0] == seq + 1 else f"{head[0] - seq} entries were"
            return [f"the newest {count} removed {said}"]
        if head[0] < seq - 1:
            return [f"{HEAD_NAME} is older than the log {said}: it was replaced"]
        if last is None or head[1] != last["mac" if head[0] == seq else "prev"]:
            return [f"{HEAD_NAME} does not match the entry with seq {head[0]}"]
        return []

    def _lines(self) -> Iterator[tuple[str, int, bytes]]:
        """(segment name, line number, line) of every segment in order."""
        for path in self.segments():
            for lineno, raw in _file_lines(path):
                yield path.name, lineno, raw

    def _archived(self) -> list[tuple[int, Path]]:
        """(N, path) of each audit.log.N, oldest (lowest N) first."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        prefix, found = LOG_NAME + ".", []
        for name in names:
            number = name[len(prefix) :] if name.startswith(prefix) else ""
            if number.isascii() and number.isdigit() and not number.startswith("0"):
                found.append((int(number), self.folder / name))
        return sorted(found)

    def _tail(self) -> tuple[Path, bytes] | None:
        """The newest segment with an entry and its last line; None when there is none."""
        for path in reversed(self.segments()):
            last = _last_line(path)
            if last is not None:
                return path, last
        return None

    def _ends_before(self, segment: Path, since: float) -> bool:
        """Whether every entry of an archived segment is older than `since`."""
        try:
            return bool(_load(_last_line(segment) or b"")["at"] < since)
        except ValueError:
            return False

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            fix = f"check the permissions of {self.folder} and the files in it"
            raise AuditError(
                f"the audit log could not be read: {exc}", where=str(self.folder), fix=fix
            ) from exc
