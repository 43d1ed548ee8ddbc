"""Per-instance log files: JSON lines {"t": time, "s": stream, "m": text}, rotated by size.

Used by the shim (writing) and the daemon (reading); standard library only so the shim
starts fast."""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from pathlib import Path

LOG_NAME = "output.log"


class LogWriter:
    def __init__(self, directory: Path, max_bytes: int, keep: int) -> None:
        self.path = directory / LOG_NAME
        self.max_bytes = max_bytes
        self.keep = keep
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - long-lived handle

    def write(self, at: float, stream: str, text: str) -> None:
        line = json.dumps({"t": round(at, 6), "s": stream, "m": text}, ensure_ascii=False)
        self.file.write(line + "\n")
        self.file.flush()
        if self.file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self.file.close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{LOG_NAME}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{LOG_NAME}.{index + 1}"))
        if self.keep > 0:
            os.replace(self.path, self.path.with_name(f"{LOG_NAME}.1"))
        else:
            self.path.unlink()
        self.file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        self.file.close()


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
