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


def read_from(path: Path, offset: int) -> tuple[list[dict[str, object]], int]:
    """Complete lines written after `offset`, and the offset after the last of them."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    records = []
    for raw in data[:end].decode("utf-8", "replace").splitlines():
        record = _parse(raw)
        if record is not None:
            records.append(record)
    return records, offset + end
