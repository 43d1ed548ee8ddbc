"""Per-instance log files: JSON lines {"t": time, "s": stream, "m": text}, rotated by size.

Used by the shim (writing) and the daemon (reading); standard library only so the shim
starts fast."""

from __future__ import annotations

import contextlib
import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path

LOG_NAME = "output.log"


class LogWriter:
    """Appends whole lines or nothing. Writing never fails: when the disk is full (or the file
    cannot be written for any reason) lines are dropped and counted, and the first line
    written afterwards says how many were lost. The app must never die, or block on a full
    pipe, because its output cannot be kept."""

    def __init__(self, directory: Path, max_bytes: int, keep: int) -> None:
        self.path = directory / LOG_NAME
        self.max_bytes = max_bytes
        self.keep = keep
        self.fd: int | None = None
        self.dropped = 0  # lines lost since the writer started
        self.unreported = 0  # of which not yet noted in the file
        self.error: str | None = None  # why lines are being dropped right now
        self._open()

    def write(self, at: float, stream: str, text: str) -> bool:
        """True if the line was kept."""
        if self.unreported:
            if not self._append(self._lost_note(at)):
                self._drop()
                return False
            self.unreported = 0
        if self._append(_encode(at, stream, text)):
            return True
        self._drop()
        return False

    def _lost_note(self, at: float) -> bytes:
        note = f"{self.unreported} output line(s) were dropped: the log could not be written"
        return _encode(at, "slipway", f"{note} ({self.error or 'unknown error'})")

    def _drop(self) -> None:
        self.dropped += 1
        self.unreported += 1

    def _append(self, data: bytes) -> bool:
        if self.fd is None and not self._open():
            return False
        assert self.fd is not None
        try:
            size = os.fstat(self.fd).st_size
            written = os.write(self.fd, data)
            if written != len(data):  # a nearly full disk: take the partial line back
                os.ftruncate(self.fd, size)
                raise OSError(28, "No space left on device (partial write)")
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            return False
        self.error = None
        if size + written >= self.max_bytes:
            self._rotate()
        return True

    def _open(self) -> bool:
        try:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
            self.fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            self.fd, self.error = None, exc.strerror or str(exc)
            return False
        return True

    def _rotate(self) -> None:
        self.close()
        try:
            for index in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{LOG_NAME}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{LOG_NAME}.{index + 1}"))
            if self.keep > 0:
                os.replace(self.path, self.path.with_name(f"{LOG_NAME}.1"))
            else:
                self.path.unlink()
        except OSError as exc:
            self.error = exc.strerror or str(exc)
        self._open()

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def _encode(at: float, stream: str, text: str) -> bytes:
    line = json.dumps({"t": round(at, 6), "s": stream, "m": text}, ensure_ascii=False)
    return (line + "\n").encode("utf-8", "replace")


def log_files(directory: Path) -> list[Path]:
    """Oldest first."""
    rotated = sorted(
        directory.glob(f"{LOG_NAME}.*"),
        key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
        reverse=True,
    )
    current = directory / LOG_NAME
    return [*rotated, current] if current.exists() else rotated


def read_lines(directory: Path) -> Iterator[dict[str, object]]:
    for path in log_files(directory):
        with open(path, encoding="utf-8", errors="replace") as handle:
            for raw in handle:
                record = _parse(raw)
                if record is not None:
                    yield record


def tail(directory: Path, count: int) -> list[dict[str, object]]:
    return list(deque(read_lines(directory), maxlen=count))


def _parse(raw: str) -> dict[str, object] | None:
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def read_from(
    path: Path, offset: int, max_bytes: int | None = None
) -> tuple[list[dict[str, object]], int]:
    """Complete lines written after `offset` (at most `max_bytes` of them, unless one line is
    longer), and the offset after the last of them."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read() if max_bytes is None else handle.read(max_bytes)
        if max_bytes is not None and len(data) == max_bytes and b"\n" not in data:
            data += handle.readline()  # one line longer than a page: whole, never cut
    end = data.rfind(b"\n") + 1
    records = []
    for raw in data[:end].decode("utf-8", "replace").splitlines():
        record = _parse(raw)
        if record is not None:
            records.append(record)
    return records, offset + end


def size(directory: Path) -> int:
    """Where the current file ends: what a reader follows from."""
    try:
        return os.stat(directory / LOG_NAME).st_size
    except OSError:
        return 0


def last(directory: Path, count: int) -> tuple[list[dict[str, object]], int]:
    """The newest `count` records, and where the current file ended before they were read."""
    end = size(directory)
    return tail(directory, count), end


def after(directory: Path, offset: int, max_bytes: int) -> tuple[list[dict[str, object]], int]:
    """What was written to the current file after `offset` (from its start if it was rotated
    since: it is shorter than the offset), at most `max_bytes` at a time."""
    path = directory / LOG_NAME
    now = size(directory)
    if now < offset:
        offset = 0
    if now == offset:
        return [], offset
    try:
        return read_from(path, offset, max_bytes)
    except OSError:
        return [], offset


Cursor = tuple[int, int]  # (file: 0 is the current one, n is output.log.n; offset in it)


def page(
    directory: Path, cursor: Cursor | None, since: float | None, max_bytes: int
) -> tuple[list[dict[str, object]], Cursor | None, int]:
    """Every record, oldest first, a page of at most about `max_bytes` at a time: the records,
    the cursor of the next page (None after the last) and where the current file ended.
    Without a cursor the reading starts at the oldest file that can hold lines at or after
    `since` (an older file was last written before it)."""
    if cursor is None:
        cursor = (_first_file(directory, since), 0)
    index, offset = cursor
    path = directory / (LOG_NAME if index == 0 else f"{LOG_NAME}.{index}")
    try:
        records, end = read_from(path, offset, max_bytes)
        at_end = end >= os.stat(path).st_size
    except OSError:  # rotated away meanwhile: go on with the next newer file
        records, end, at_end = [], offset, True
    if not at_end:
        return records, (index, end), end if index == 0 else 0
    if index == 0:
        return records, None, end
    return records, (index - 1, 0), 0


def _first_file(directory: Path, since: float | None) -> int:
    indexes = [0]
    for path in directory.glob(f"{LOG_NAME}.*"):
        suffix = path.suffix[1:]
        if suffix.isdigit():
            with contextlib.suppress(OSError):
                if since is None or path.stat().st_mtime >= since:
                    indexes.append(int(suffix))
    return max(indexes)
