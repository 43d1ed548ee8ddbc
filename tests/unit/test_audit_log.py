"""The audit log: a keyed hash chain in JSON lines that shows any edit, deletion or cut."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from slipway.audit.log import (
    GENESIS,
    HEAD_NAME,
    KEY_NAME,
    LOG_NAME,
    MAX_DETAIL,
    MAX_TEXT,
    RETENTION,
    AuditError,
    AuditLog,
    Entry,
    canonical,
)


def clock(start: float = 1_700_000_000.0) -> Any:
    ticks = itertools.count()
    return lambda: start + next(ticks)


def record(log: AuditLog, n: int = 1, **overrides: Any) -> list[Entry]:
    fields: dict[str, Any] = {
        "who": "token:ci",
        "role": "deployer",
        "action": "deploy",
        "target": "app hello",
        "source": "10.0.0.7",
        "outcome": "ok",
        "detail": {"release": "r1"},
    }
    fields.update(overrides)
    return [log.append(**fields) for _ in range(n)]


def filled(tmp_path: Path, n: int = 5) -> AuditLog:
    log = AuditLog(tmp_path, clock=clock())
    record(log, n)
    assert log.verify().ok
    return log


def lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def write_lines(log: AuditLog, new: list[bytes]) -> None:
    log.path.write_bytes(b"".join(new))


def problems(log: AuditLog) -> list[str]:
    result = log.verify()
    assert not result.ok
    return result.problems


def test_appends_form_a_chain_that_verifies(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    first, second = record(log, 2)
    assert (first.seq, first.prev, first.at) == (1, GENESIS, 1_700_000_000.0)
    assert (second.seq, second.prev) == (2, first.mac)
    assert log.entries() == [first, second]
    on_disk = json.loads(lines(log)[0])
    assert on_disk["who"] == "token:ci" and on_disk["detail"] == {"release": "r1"}
    result = log.verify()
    assert (result.ok, result.entries, result.problems) == (True, 2, [])


def test_files_are_private(tmp_path: Path) -> None:
    filled(tmp_path, 1)
    for name in (LOG_NAME, HEAD_NAME, KEY_NAME):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert len((tmp_path / KEY_NAME).read_bytes()) == 32


def test_a_restart_continues_the_chain(tmp_path: Path) -> None:
    before = filled(tmp_path, 3).entries()
    after = AuditLog(tmp_path, clock=clock(1_800_000_000.0))
    (entry,) = record(after)
    assert (entry.seq, entry.prev) == (4, before[-1].mac)
    assert after.entries()[:3] == before
    assert after.verify().ok


def test_an_edited_entry_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    old = lines(log)
    entry = json.loads(old[2])
    entry["outcome"] = "denied"
    write_lines(log, [*old[:2], canonical(entry).encode() + b"\n", *old[3:]])
    assert problems(log) == ["audit.log line 3 (seq 3): edited — its mac does not match"]


def test_a_recomputed_plain_hash_does_not_pass_for_a_mac(tmp_path: Path) -> None:
    log = filled(tmp_path)
    old = lines(log)
    entry = json.loads(old[2])
    entry["who"] = "token:someone-else"
    del entry["mac"]
    entry["mac"] = hashlib.sha256(canonical(entry).encode()).hexdigest()
    write_lines(log, [*old[:2], canonical(entry).encode() + b"\n", *old[3:]])
    assert problems(log) == [
        "audit.log line 3 (seq 3): edited — its mac does not match",
        "audit.log line 4 (seq 4): its prev is not the mac of seq 3",
    ]


def test_a_deleted_middle_entry_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    old = lines(log)
    write_lines(log, [*old[:2], *old[3:]])
    assert problems(log) == [
        "audit.log line 3: seq 4 follows seq 2: an entry was deleted or reordered"
    ]


def test_a_deleted_first_entry_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    write_lines(log, lines(log)[1:])
    assert problems(log) == [
        "audit.log line 1: the log starts at seq 2: the first entries were deleted",
    ]


def test_swapped_entries_are_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    old = lines(log)
    write_lines(log, [old[0], old[2], old[1], *old[3:]])
    assert problems(log) == [
        "audit.log line 2: seq 3 follows seq 1: an entry was deleted or reordered",
        "audit.log line 3: seq 2 follows seq 3: entries were reordered or copied",
        "audit.log line 4: seq 4 follows seq 2: an entry was deleted or reordered",
    ]


def test_removed_newest_entries_are_detected_through_the_head(tmp_path: Path) -> None:
    log = filled(tmp_path)
    write_lines(log, lines(log)[:3])
    assert problems(log) == [
        "the newest 2 entries were removed (head says seq 5, the log ends at seq 3)"
    ]
    # appending chains onto the head, so the gap stays in the log for good
    (entry,) = record(log)
    assert entry.seq == 6
    assert problems(log) == [
        "audit.log line 4: seq 6 follows seq 3: 2 entries were deleted or reordered"
    ]


def test_a_deleted_log_is_detected_and_stays_visible(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    log.path.unlink()
    assert problems(log) == [
        "the newest 2 entries were removed (head says seq 2, the log ends at seq 0)"
    ]
    (entry,) = record(log)
    assert entry.seq == 3
    assert not log.verify().ok


def test_an_edited_head_is_detected_and_stops_appends(tmp_path: Path) -> None:
    log = filled(tmp_path)
    head = json.loads(log.head_path.read_text())
    head["seq"] = 3
    log.head_path.write_text(json.dumps(head))
    assert problems(log) == [f"{HEAD_NAME} is damaged or was altered: its signature is wrong"]
    with pytest.raises(AuditError, match="signature is wrong") as caught:
        record(log)
    assert "slipway audit verify" in str(caught.value.fix)


def test_a_head_forged_from_the_log_does_not_hide_a_cut(tmp_path: Path) -> None:
    log = filled(tmp_path)
    kept = lines(log)[:3]
    write_lines(log, kept)
    last = json.loads(kept[-1])
    log.head_path.write_text(json.dumps({"seq": 3, "mac": last["mac"], "sig": last["mac"]}))
    assert problems(log) == [f"{HEAD_NAME} is damaged or was altered: its signature is wrong"]


def test_an_older_head_put_back_is_detected(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    record(log, 2)
    old_head = log.head_path.read_bytes()
    record(log, 3)
    log.head_path.write_bytes(old_head)
    assert problems(log) == [
        f"{HEAD_NAME} is older than the log (head says seq 2, the log ends at seq 5): "
        "it was replaced"
    ]


def test_a_head_one_entry_behind_is_a_crash_not_tampering(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    record(log, 2)
    old_head = log.head_path.read_bytes()
    record(log)
    log.head_path.write_bytes(old_head)  # as if the daemon died before the rename
    assert log.verify().ok
    (entry,) = record(log)  # continues from the log, not the lagging head
    assert entry.seq == 4
    assert log.verify().ok


def test_a_missing_head_is_reported_and_appends_continue_from_the_log(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    log.head_path.unlink()
    assert problems(log) == [f"{HEAD_NAME} is missing: a cut-off end cannot be detected"]
    (entry,) = record(log)
    assert entry.seq == 4
    assert log.verify().ok


def test_a_line_that_is_not_json_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    old = lines(log)
    write_lines(log, [*old[:2], b"rm -rf / # oops\n", *old[2:]])
    assert problems(log) == ["audit.log line 3 is not valid JSON"]


def test_a_partial_last_line_is_reported_and_refused(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    with open(log.path, "ab") as f:
        f.write(b'{"seq":4,"at":17')
    assert problems(log) == ["audit.log line 4 is a partial entry (no newline at the end)"]
    before = log.path.read_bytes()
    with pytest.raises(AuditError, match="ends with a partial entry") as caught:
        record(log)
    assert "sed -i '$ d'" in str(caught.value.fix)
    assert log.path.read_bytes() == before
    assert len(log.entries()) == 3
    write_lines(log, lines(log)[:3])  # what the suggested `sed -i '$ d'` does
    (entry,) = record(log)
    assert entry.seq == 4
    assert log.verify().ok


def test_an_unwritable_log_refuses_and_writes_nothing(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    head = log.head_path.read_bytes()
    log.path.unlink()
    log.path.mkdir()  # chmod would not stop root; a directory stops everyone
    with pytest.raises(AuditError, match="could not be written") as caught:
        record(log)
    error = caught.value
    assert (error.kind, error.http_status) == ("audit", 503)
    assert error.where == str(log.path)
    assert "action was refused" in error.message and "disk" in str(error.fix)
    assert log.head_path.read_bytes() == head


def test_a_folder_that_is_a_file_refuses(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    folder.write_text("not a folder")
    with pytest.raises(AuditError, match="could not be written"):
        record(AuditLog(folder))


def test_a_failed_head_write_takes_the_entry_back(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    before = (log.path.read_bytes(), log.head_path.read_bytes())
    (tmp_path / f"{HEAD_NAME}.tmp").mkdir()
    with pytest.raises(AuditError, match="could not be written"):
        record(log)
    assert (log.path.read_bytes(), log.head_path.read_bytes()) == before
    (tmp_path / f"{HEAD_NAME}.tmp").rmdir()
    (entry,) = record(log)
    assert entry.seq == 3
    assert log.verify().ok


def test_entries_since_filters_by_time(tmp_path: Path) -> None:
    log = filled(tmp_path, 5)  # at = 1_700_000_000 + 0..4
    assert [e.seq for e in log.entries(since=1_700_000_002.0)] == [3, 4, 5]
    assert log.entries(since=1_800_000_000.0) == []
    assert AuditLog(tmp_path / "empty").entries() == []


def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    log = filled(tmp_path, 1)
    os.chmod(log.key_path, 0o644)
    for action in (lambda: record(log), log.verify):
        with pytest.raises(AuditError, match="other users") as caught:
            action()
        assert caught.value.fix == f"chmod 600 {log.key_path}"


def test_a_missing_key_for_an_existing_log_is_refused(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    log.key_path.unlink()
    with pytest.raises(AuditError, match="key is missing"):
        record(log)
    assert not log.key_path.exists()
    assert problems(log) == [f"{KEY_NAME} is missing: no mac can be checked"]


def test_a_different_key_fails_every_entry(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    log.key_path.write_bytes(b"k" * 32)
    found = problems(log)
    assert found[:2] == [
        "audit.log line 1 (seq 1): edited — its mac does not match",
        "audit.log line 2 (seq 2): edited — its mac does not match",
    ]


def test_details_round_trip_and_bad_ones_are_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    (entry,) = record(log, detail={"note": "line\u2028sep é 🚀", "ids": (1, 2)})
    assert entry.detail == {"note": "line\u2028sep é 🚀", "ids": [1, 2]}
    (numbered,) = record(log, detail={3: "three"})  # stored as it will read back
    assert numbered.detail == {"3": "three"}
    assert log.entries() == [entry, numbered]
    assert log.verify().ok
    with pytest.raises(AuditError, match="not JSON"):
        record(log, detail={"s": {1, 2}})
    with pytest.raises(AuditError, match="unknown outcome"):
        record(log, outcome="fine")
    assert len(log.entries()) == 2


def test_concurrent_appends_from_threads_keep_one_chain(tmp_path: Path) -> None:
    log = AuditLog(tmp_path)

    def work() -> None:
        record(log, 5)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.seq for e in log.entries()] == list(range(1, 21))
    assert log.verify().ok


def test_a_replaced_log_file_is_followed(tmp_path: Path) -> None:
    log = filled(tmp_path, 2)
    shutil.copy(log.path, tmp_path / "copy")
    os.replace(tmp_path / "copy", log.path)  # e.g. restored from a backup
    (entry,) = record(log)
    assert entry.seq == 3
    assert len(lines(log)) == 3
    assert log.verify().ok


GONE = (
    f"the audit log is gone: no entry in {LOG_NAME} (or any {LOG_NAME}.N) and no {HEAD_NAME}, "
    f"but {KEY_NAME} exists, which is made with the first entry: the log and its head were "
    "deleted"
)


def test_a_wiped_log_with_its_key_left_is_reported(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    log.path.unlink()
    log.head_path.unlink()
    result = log.verify()
    assert (result.ok, result.entries, result.problems) == (False, 0, [GONE])
    # a new chain from seq 1 would verify as the whole log: appends are refused instead
    with pytest.raises(AuditError, match="log and its head are gone") as caught:
        record(log)
    assert f"move {KEY_NAME} aside" in str(caught.value.fix)
    assert not log.path.exists() and not log.head_path.exists()
    assert problems(log) == [GONE]
    log.head_path.write_bytes(b"")  # an emptied head is no better
    assert problems(log) == [f"{HEAD_NAME} is damaged or was altered: its signature is wrong"]
    log.head_path.unlink()
    log.key_path.rename(tmp_path / "old.key")  # what the fix says, to start a new log
    (entry,) = record(log)
    assert (entry.seq, entry.prev) == (1, GENESIS) and log.verify().ok


def test_an_emptied_log_without_its_head_is_reported(tmp_path: Path) -> None:
    log = filled(tmp_path, 3)
    log.path.write_bytes(b"")
    log.head_path.unlink()
    assert problems(log) == [GONE]


def test_a_new_home_verifies_and_a_failed_first_entry_takes_its_key_back(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    assert log.verify() == log.verify() and log.verify().ok  # nothing yet: nothing wrong
    (tmp_path / f"{HEAD_NAME}.tmp").mkdir()  # the first entry cannot be anchored
    with pytest.raises(AuditError, match="could not be written"):
        record(log)
    assert not log.key_path.exists(), "a key without an entry would read as a wiped log"
    assert log.verify().ok
    (tmp_path / f"{HEAD_NAME}.tmp").rmdir()
    (entry,) = record(log)
    assert entry.seq == 1 and log.verify().ok


def test_what_a_request_carried_is_clipped(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, clock=clock())
    path = "/" + "a" * 50_000
    (entry,) = record(
        log,
        action=f"GET {path}",
        target=path,
        who="w" * 1000,
        source="s" * 1000,
        detail={"path": path, "k" * 1000: 1, "many": list(range(5000))},
    )
    for text in (entry.action, entry.target, entry.who, entry.source):
        assert len(text) < MAX_TEXT + 40
        assert text.endswith(" more characters]")
    assert entry.target == "/" + "a" * (MAX_TEXT - 1) + "…[49745 more characters]"
    assert list(entry.detail) == ["clipped"] and len(entry.detail["clipped"]) < MAX_DETAIL + 40
    (small,) = record(log, detail={"path": path})
    assert small.detail == {"path": "/" + "a" * (MAX_TEXT - 1) + "…[49745 more characters]"}
    assert len(log.path.read_bytes()) < 4 * (MAX_DETAIL + 6 * MAX_TEXT)
    assert log.entries() == [entry, small] and log.verify().ok


# segments ------------------------------------------------------------------------------------

ENTRY_BYTES = 310  # what record() writes, give or take a digit


def segmented(tmp_path: Path, keep: int = 100) -> AuditLog:
    """Three entries a segment (record()'s; a retention entry is longer)."""
    return AuditLog(tmp_path, clock=clock(), segment_bytes=3 * ENTRY_BYTES, keep_segments=keep)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(LOG_NAME))


def archived(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{LOG_NAME}.*"), key=lambda p: int(p.suffix[1:]))


def seqs(path: Path) -> list[int]:
    return [json.loads(line)["seq"] for line in path.read_bytes().splitlines()]


def test_the_log_rotates_into_segments_that_chain_and_verify(tmp_path: Path) -> None:
    log = segmented(tmp_path)
    written = record(log, 20)
    assert names(tmp_path) == [LOG_NAME, *(f"{LOG_NAME}.{n}" for n in range(1, 7))]
    assert [seqs(p) for p in archived(tmp_path)][:2] == [[1, 2, 3], [4, 5, 6]]
    assert seqs(log.path) == [19, 20]
    assert log.segments() == [*archived(tmp_path), log.path]
    assert log.entries() == written
    first_of_log = json.loads(lines(log)[0])
    last_archived = json.loads((tmp_path / f"{LOG_NAME}.6").read_bytes().splitlines()[-1])
    assert first_of_log["prev"] == last_archived["mac"]
    result = log.verify()
    assert (result.ok, result.entries, result.files) == (True, 20, 7)
    assert [e.seq for e in log.entries(since=written[-3].at)] == [18, 19, 20]
    for path in tmp_path.glob(f"{LOG_NAME}*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_after_a_rotation_the_chain_continues_from_the_archived_segment(tmp_path: Path) -> None:
    log = segmented(tmp_path)
    record(log, 3)
    os.rename(log.path, tmp_path / f"{LOG_NAME}.1")  # as a rotation leaves it
    assert log.verify().ok
    log.head_path.unlink()  # and without the head, the archived segment is the chain's end
    (entry,) = record(segmented(tmp_path))
    assert entry.seq == 4
    assert log.verify().ok


def test_retention_removes_the_oldest_segments_and_says_so_in_the_chain(tmp_path: Path) -> None:
    log = segmented(tmp_path, keep=2)
    record(log, 30)
    kept = archived(tmp_path)
    newest = int(kept[-1].suffix[1:])
    assert [p.name for p in kept] == [f"{LOG_NAME}.{newest - 1}", f"{LOG_NAME}.{newest}"]
    entries = log.entries()
    cuts = [e for e in entries if e.action == RETENTION]
    assert cuts[-1].who == "slipway" and cuts[-1].outcome == "ok"
    assert cuts[-1].detail["removed"] == cuts[-1].target == f"{LOG_NAME}.{newest - 2}"
    assert entries[0].seq == cuts[-1].detail["through_seq"] + 1
    assert entries[0].prev == cuts[-1].detail["through_mac"]
    assert entries[-1].seq == 30 + newest - 2  # one retention entry per removed segment
    result = log.verify()
    assert (result.ok, result.entries, result.files) == (True, len(entries), 3)


def test_a_segment_removed_by_retention_but_still_there_is_accepted(tmp_path: Path) -> None:
    log = segmented(tmp_path, keep=1)
    while True:  # until retention removes a segment; then put it back
        oldest = archived(tmp_path)[:1]
        saved = oldest[0].read_bytes() if oldest else b""
        record(log)
        if oldest and not oldest[0].exists():
            break
    oldest[0].write_bytes(saved)  # the daemon stopped between the retention entry and unlink
    oldest[0].chmod(0o600)
    assert log.verify().ok
    record(log, 12)  # the next rotations remove it again, and the rest as usual
    assert not oldest[0].exists() and len(archived(tmp_path)) == 1
    assert log.verify().ok


@pytest.mark.parametrize("which", ["oldest", "middle", "newest"])
def test_a_segment_deleted_by_hand_is_reported(tmp_path: Path, which: str) -> None:
    log = segmented(tmp_path, keep=4)
    record(log, 25)
    before = archived(tmp_path)
    assert len(before) == 4 and log.verify().ok
    index = {"oldest": 0, "middle": 1, "newest": 3}[which]
    victim, after = before[index], [*before, log.path][index + 1]
    gone, next_first = seqs(victim), seqs(after)[0]
    victim.unlink()
    found = problems(log)
    if which == "oldest":
        assert found == [
            f"{after.name} line 1: the log starts at seq {next_first}, but retention removed "
            f"only the entries before seq {gone[0]}: entries {gone[0]}–{next_first - 1} were "
            "deleted by hand"
        ]
    else:
        missing = [f"{victim.name} is missing: a segment was deleted"] if which == "middle" else []
        assert found == [
            *missing,
            f"{after.name} line 1: seq {next_first} follows seq {gone[0] - 1} at the end of "
            f"{before[index - 1].name}: {len(gone)} entries were deleted",
        ]


def test_every_segment_deleted_by_hand_is_reported(tmp_path: Path) -> None:
    log = segmented(tmp_path)
    record(log, 10)
    for path in tmp_path.glob(f"{LOG_NAME}.*"):
        path.unlink()
    first = json.loads(lines(log)[0])["seq"]
    assert problems(log) == [
        f"{LOG_NAME} line 1: the log starts at seq {first}: the first entries were deleted"
    ]
    log.path.unlink()  # and the current one: the head still remembers
    assert problems(log) == ["the newest 10 entries were removed (head says seq 10, the log "
                             "ends at seq 0)"]  # fmt: skip


def test_a_retention_entry_without_the_key_does_not_excuse_a_deletion(tmp_path: Path) -> None:
    log = segmented(tmp_path)
    record(log, 10)
    oldest = tmp_path / f"{LOG_NAME}.1"
    end = json.loads(oldest.read_bytes().splitlines()[-1])
    oldest.unlink()
    # a forged entry claiming retention removed it: its mac cannot be made without the key
    last = json.loads(lines(log)[-1])
    fake = {
        "seq": last["seq"] + 1, "at": last["at"] + 1, "who": "slipway", "role": "-",
        "action": RETENTION, "target": oldest.name, "source": "daemon", "outcome": "ok",
        "detail": {"removed": oldest.name, "through_seq": end["seq"], "through_mac": end["mac"]},
        "prev": last["mac"],
    }  # fmt: skip
    fake["mac"] = hashlib.sha256(canonical(fake).encode()).hexdigest()
    with open(log.path, "ab") as f:
        f.write(canonical(fake).encode() + b"\n")
    found = problems(log)
    assert found[0] == (
        f"{LOG_NAME}.2 line 1: the log starts at seq {end['seq'] + 1}: the first entries were "
        "deleted"
    )
    assert "edited — its mac does not match" in found[1]


def test_a_damaged_segment_is_kept_rather_than_removed(tmp_path: Path) -> None:
    log = segmented(tmp_path, keep=1)
    record(log, 4)
    oldest = tmp_path / f"{LOG_NAME}.1"
    assert seqs(oldest) == [1, 2, 3]
    oldest.write_bytes(oldest.read_bytes() + b"garbage")
    record(log, 8)
    assert oldest.exists()
    assert f"{LOG_NAME}.1 line 4 is a partial entry (no newline at the end)" in problems(log)


def test_numbered_names_that_are_not_segments_are_ignored(tmp_path: Path) -> None:
    log = segmented(tmp_path)
    record(log, 5)
    for name in (f"{LOG_NAME}.01", f"{LOG_NAME}.tmp", f"{LOG_NAME}.١"):
        (tmp_path / name).write_text("not a segment")
    assert [p.name for p in log.segments()] == [f"{LOG_NAME}.1", LOG_NAME]
    assert log.verify().ok
