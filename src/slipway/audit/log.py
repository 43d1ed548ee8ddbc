"""A tamper-evident, append-only audit log: JSON lines chained by a keyed MAC.

Each entry holds `prev` (the previous entry's `mac`) and `mac = HMAC-SHA256(audit.key,
canonical JSON of the entry without mac)`: editing, deleting or reordering an entry breaks
the chain, and nobody without the key can recompute it, as anyone able to write the file
could with a plain hash chain. Whoever can read the key (root, the daemon's user) can forge.

Cutting off the newest entries leaves a valid chain, so `audit.head` anchors the last seq
and mac, signed with the key. An older copy of the head put back cannot be told from the
real one: copy `audit.head` off the machine now and then for a stronger anchor.

Callers must never put secret values in `target` or `detail`: the log is kept for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
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
OUTCOMES = ("accepted", "ok", "denied", "failed", "refused")  # accepted: before acting
_TEXT = ("who", "role", "action", "target", "source", "outcome", "prev", "mac")


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


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


def _gap(lineno: int, seq: int, last: int) -> str:
    if last == 0:
        return f"line {lineno}: the log starts at seq {seq}: the first entries were deleted"
    if seq <= last:
        return f"line {lineno}: seq {seq} follows seq {last}: entries were reordered or copied"
    missing = "an entry was" if seq == last + 2 else f"{seq - last - 1} entries were"
    return f"line {lineno}: seq {seq} follows seq {last}: {missing} deleted or reordered"


class AuditLog:
    """audit.log (the entries), audit.head (the anchor) and audit.key inside `folder`."""

    def __init__(self, folder: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.folder, self._clock = folder, clock
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
        small JSON dict, never a secret value.
        """
        what = f"audit entry for {action} of {target}"
        if outcome not in OUTCOMES:
            raise _refused(f"unknown outcome {outcome!r}", what, "use " + ", ".join(OUTCOMES))
        try:
            detail = json.loads(canonical(detail))  # stored exactly as it will read back
        except (TypeError, ValueError) as exc:
            raise _refused(f"the detail is not JSON ({exc})", what, "pass a small dict") from None
        record = dict(who=who, role=role, action=action, target=target, source=source)
        with self._lock:
            try:
                return self._append({**record, "outcome": outcome, "detail": detail})
            except (OSError, ValueError) as exc:
                fix = f"check the free disk space and the permissions of {self.folder}"
                raise _refused(
                    f"the audit log could not be written: {exc}", self.path, fix
                ) from exc

    def entries(self, since: float | None = None) -> list[Entry]:
        """Entries at or after `since`, oldest first; damaged lines are left to verify()."""
        found = []
        with self._lock, self._reading():
            for _, raw in self._lines():
                with contextlib.suppress(ValueError):
                    record = _load(raw)
                    if raw.endswith(b"\n") and (since is None or record["at"] >= since):
                        found.append(Entry(**record))
        return found

    def verify(self) -> VerifyResult:
        problems: list[str] = []
        count, last = 0, None
        with self._lock, self._reading():
            key = self._key(create=False)
            for lineno, raw in self._lines():
                try:
                    if not raw.endswith(b"\n"):
                        raise ValueError("a partial entry (no newline at the end)")
                    record = _load(raw)
                except ValueError as exc:
                    problems.append(f"line {lineno} is {exc}")
                    continue
                count += 1
                where = f"line {lineno} (seq {record['seq']})"
                if key and not hmac.compare_digest(record["mac"], entry_mac(key, record)):
                    problems.append(f"{where}: edited — its mac does not match")
                previous = last["seq"] if last else 0
                if record["seq"] != previous + 1:
                    problems.append(_gap(lineno, record["seq"], previous))
                elif record["prev"] != (last["mac"] if last else GENESIS):
                    problems.append(f"{where}: its prev is not the mac of seq {previous}")
                last = record
            if key is None and count:
                problems.insert(0, f"{KEY_NAME} is missing: no mac can be checked")
            problems += self._check_head(key, last)
        return VerifyResult(ok=not problems, entries=count, problems=problems)

    def _append(self, record: dict[str, Any]) -> Entry:
        self.folder.mkdir(parents=True, exist_ok=True)
        last = self._last_line()
        key = self._key(create=last is None)  # a new key for a non-empty log would void it
        if key is None:
            fix = f"restore it from a backup, or move {LOG_NAME} and {HEAD_NAME} aside"
            raise _refused("the audit key is missing but the log has entries", self.key_path, fix)
        seq, prev = self._chain_end(key, last)
        record.update(seq=seq + 1, at=float(self._clock()), prev=prev)
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

    def _chain_end(self, key: bytes, last: bytes | None) -> tuple[int, str]:
        """The seq and mac to chain onto: the later of the head and the log's last line."""
        verify = "run `slipway audit verify`"
        try:
            head = self._read_head(key)
        except ValueError as exc:
            raise _refused(str(exc), self.head_path, f"{verify}; then delete the head") from None
        if last is None:
            return head or (0, GENESIS)  # a head with no log keeps the deletion visible
        if not last.endswith(b"\n"):
            # refuse rather than chain past damage silently; a crash mid-write is the
            # only innocent cause, and then deleting the partial line is the fix
            fix = f"{verify}; if that is its only problem: sed -i '$ d' {self.path}"
            raise _refused("the audit log ends with a partial entry", self.path, fix)
        try:
            entry = _load(last)
        except ValueError as exc:
            if head is None:
                reason = f"the last line of the audit log is {exc}"
                raise _refused(reason, self.path, f"{verify}; restore the log") from None
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
        if head is None:
            return [f"{HEAD_NAME} is missing: a cut-off end cannot be detected"] if seq else []
        said = f"(head says seq {head[0]}, the log ends at seq {seq})"
        if head[0] > seq:
            count = "entry was" if head[0] == seq + 1 else f"{head[0] - seq} entries were"
            return [f"the newest {count} removed {said}"]
        if head[0] < seq - 1:
            return [f"{HEAD_NAME} is older than the log {said}: it was replaced"]
        if last is None or head[1] != last["mac" if head[0] == seq else "prev"]:
            return [f"{HEAD_NAME} does not match the entry with seq {head[0]}"]
        return []

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """Numbered lines, split on b"\\n" only (never U+2028); no log, no lines."""
        try:
            with open(self.path, "rb") as log:
                yield from enumerate(log, 1)
        except FileNotFoundError:
            return

    def _last_line(self) -> bytes | None:
        """The last line, read backwards from the end; None for a missing or empty log."""
        try:
            with open(self.path, "rb") as log:
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

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            fix = f"check the permissions of {self.folder} and the files in it"
            raise AuditError(
                f"the audit log could not be read: {exc}", where=str(self.folder), fix=fix
            ) from exc
