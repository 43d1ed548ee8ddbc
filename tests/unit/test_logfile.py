"""Per-instance log files: size rotation, oldest-first listing, tail, incremental reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

from slipway.runtime.logfile import (
    LOG_NAME,
    Cursor,
    LogWriter,
    after,
    log_files,
    page,
    read_from,
    tail,
)


def write_lines(directory: Path, count: int, max_bytes: int, keep: int) -> None:
    writer = LogWriter(directory, max_bytes=max_bytes, keep=keep)
    try:
        for n in range(count):
            writer.write(1000.0 + n, "out", f"line {n:03d}")
    finally:
        writer.close()


def messages(records: list[dict[str, object]]) -> list[object]:
    return [r["m"] for r in records]


def test_writer_writes_json_lines(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, max_bytes=1_000_000, keep=3)
    writer.write(1700000000.1234567, "err", 'héllo "world"')
    writer.close()
    (line,) = (tmp_path / LOG_NAME).read_text(encoding="utf-8").splitlines()
    assert json.loads(line) == {"t": 1700000000.123457, "s": "err", "m": 'héllo "world"'}


def test_writer_appends_to_an_existing_file(tmp_path: Path) -> None:
    write_lines(tmp_path, 2, max_bytes=1_000_000, keep=3)
    write_lines(tmp_path, 1, max_bytes=1_000_000, keep=3)
    assert messages(tail(tmp_path, 10)) == ["line 000", "line 001", "line 000"]


def test_rotation_by_size_keeps_n_files(tmp_path: Path) -> None:
    line_size = len(json.dumps({"t": 1000.0, "s": "out", "m": "line 000"})) + 1
    # three lines per file, 40 lines: many more rotations than files kept
    write_lines(tmp_path, 40, max_bytes=3 * line_size, keep=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [LOG_NAME, f"{LOG_NAME}.1", f"{LOG_NAME}.2"]
    for name in (f"{LOG_NAME}.1", f"{LOG_NAME}.2"):
        assert (tmp_path / name).stat().st_size >= 3 * line_size
    # the newest lines survive; the oldest ones were rotated away
    kept = [str(m) for m in messages(tail(tmp_path, 100))]
    assert kept[-1] == "line 039"
    assert "line 000" not in kept
    assert kept == sorted(kept)


def test_rotation_with_keep_zero_discards_old_lines(tmp_path: Path) -> None:
    write_lines(tmp_path, 10, max_bytes=50, keep=0)
    assert [p.name for p in tmp_path.iterdir()] == [LOG_NAME]


def test_log_files_are_listed_oldest_first(tmp_path: Path) -> None:
    for name in (LOG_NAME, f"{LOG_NAME}.1", f"{LOG_NAME}.2", f"{LOG_NAME}.10"):
        (tmp_path / name).write_text("")
    assert [p.name for p in log_files(tmp_path)] == [
        f"{LOG_NAME}.10",
        f"{LOG_NAME}.2",
        f"{LOG_NAME}.1",
        LOG_NAME,
    ]


def test_log_files_without_current_file(tmp_path: Path) -> None:
    (tmp_path / f"{LOG_NAME}.1").write_text("")
    assert log_files(tmp_path) == [tmp_path / f"{LOG_NAME}.1"]


def test_log_files_of_empty_folder(tmp_path: Path) -> None:
    assert log_files(tmp_path) == []


def test_tail_reads_across_rotated_files_in_order(tmp_path: Path) -> None:
    write_lines(tmp_path, 12, max_bytes=100, keep=10)
    assert len(log_files(tmp_path)) > 2
    assert messages(tail(tmp_path, 5)) == [f"line {n:03d}" for n in range(7, 12)]
    assert messages(tail(tmp_path, 100)) == [f"line {n:03d}" for n in range(12)]


def test_tail_skips_lines_that_are_not_json_objects(tmp_path: Path) -> None:
    (tmp_path / LOG_NAME).write_text(
        '{"t": 1, "s": "out", "m": "a"}\nnot json\n[1, 2]\n{"t": 2, "s": "out", "m": "b"}\n'
    )
    assert messages(tail(tmp_path, 10)) == ["a", "b"]


def test_tail_of_empty_folder(tmp_path: Path) -> None:
    assert tail(tmp_path, 10) == []


def test_read_from_returns_complete_lines_and_new_offset(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    first = '{"t": 1, "s": "out", "m": "a"}\n'
    second = '{"t": 2, "s": "out", "m": "b"}\n'
    partial = '{"t": 3, "s": "out", "m": "c'
    path.write_text(first + second + partial)

    records, offset = read_from(path, 0)
    assert messages(records) == ["a", "b"]
    assert offset == len(first) + len(second)  # stops before the partial line

    records, offset2 = read_from(path, offset)
    assert records == [] and offset2 == offset  # nothing complete yet

    with open(path, "a") as handle:
        handle.write('"}\n')
    records, offset3 = read_from(path, offset2)
    assert messages(records) == ["c"]
    assert offset3 == path.stat().st_size


def test_read_from_middle_offset_and_multibyte_text(tmp_path: Path) -> None:
    path = tmp_path / LOG_NAME
    writer = LogWriter(tmp_path, max_bytes=1_000_000, keep=1)
    writer.write(1.0, "out", "naïve ☃")
    middle = path.stat().st_size
    writer.write(2.0, "out", "second")
    writer.close()
    records, offset = read_from(path, middle)
    assert messages(records) == ["second"]
    assert offset == path.stat().st_size
    records, _ = read_from(path, 0)
    assert messages(records) == ["naïve ☃", "second"]


def test_a_full_disk_drops_lines_counts_them_and_says_so_afterwards(tmp_path: Path) -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does."""
    (tmp_path / LOG_NAME).symlink_to("/dev/full")
    writer = LogWriter(tmp_path, max_bytes=1_000_000, keep=3)
    try:
        assert not writer.write(1000.0, "out", "lost 1")
        assert not writer.write(1001.0, "out", "lost 2")
        assert writer.dropped == 2
        assert writer.error == "No space left on device"
        writer.close()
        (tmp_path / LOG_NAME).unlink()  # the disk has room again
        assert writer.write(1002.0, "out", "kept")
    finally:
        writer.close()
    records = tail(tmp_path, 10)
    assert [r["s"] for r in records] == ["slipway", "out"]
    assert str(records[0]["m"]).startswith("2 output line(s) were dropped")
    assert "No space left on device" in str(records[0]["m"])
    assert records[1]["m"] == "kept"
    assert writer.dropped == 2 and writer.error is None


def read_all_pages(
    directory: Path, since: float | None = None, max_bytes: int = 64
) -> tuple[list[object], int, int]:
    """Every message a paged reading gives, where it says the current file ends, and pages."""
    seen: list[object] = []
    cursor: Cursor | None = None
    pages = 0
    while True:
        records, cursor, end = page(directory, cursor, since, max_bytes)
        seen.extend(messages(records))
        pages += 1
        assert pages < 1000
        if cursor is None:
            return seen, end, pages


def test_pages_give_every_line_once_in_order_across_rotated_files(tmp_path: Path) -> None:
    write_lines(tmp_path, 40, max_bytes=150, keep=5)  # a few lines per file
    seen, end, pages = read_all_pages(tmp_path)
    assert seen == messages(tail(tmp_path, 1000))  # the same as reading it all at once
    assert end == (tmp_path / LOG_NAME).stat().st_size  # where following starts
    assert pages > len(log_files(tmp_path))  # small pages: several per file


def test_pages_since_skip_files_last_written_before_it(tmp_path: Path) -> None:
    write_lines(tmp_path, 40, max_bytes=150, keep=5)
    newest_rotated = tmp_path / f"{LOG_NAME}.1"
    os.utime(tmp_path / f"{LOG_NAME}.2", (100.0, 100.0))
    for index in range(3, 6):
        os.utime(tmp_path / f"{LOG_NAME}.{index}", (50.0, 50.0))
    seen, _, _ = read_all_pages(tmp_path, since=200.0)
    expected = messages([*read_from(newest_rotated, 0)[0], *read_from(tmp_path / LOG_NAME, 0)[0]])
    assert seen == expected


def test_a_line_longer_than_a_page_is_read_whole(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, max_bytes=1_000_000, keep=1)
    writer.write(1.0, "out", "x" * 500)
    writer.write(2.0, "out", "short")
    writer.close()
    seen, _, _ = read_all_pages(tmp_path, max_bytes=64)
    assert seen == ["x" * 500, "short"]


def test_after_reads_new_lines_and_starts_over_after_a_rotation(tmp_path: Path) -> None:
    write_lines(tmp_path, 2, max_bytes=1_000_000, keep=1)
    records, end = after(tmp_path, 0, max_bytes=1 << 20)
    assert messages(records) == ["line 000", "line 001"]
    assert after(tmp_path, end, max_bytes=1 << 20) == ([], end)
    (tmp_path / LOG_NAME).rename(tmp_path / f"{LOG_NAME}.1")  # rotated
    write_lines(tmp_path, 1, max_bytes=1_000_000, keep=1)
    records, _ = after(tmp_path, end, max_bytes=1 << 20)
    assert messages(records) == ["line 000"]


def test_after_on_a_folder_without_logs_is_empty(tmp_path: Path) -> None:
    assert after(tmp_path / "gone", 0, max_bytes=100) == ([], 0)
