"""How the daemon finds what an instance runs without trusting a recorded pid: the shim's own
record in the instance's folder, its lock, and the marker every instance process carries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from slipway.runtime import pidfile, procs


def test_a_shim_record_names_a_running_process_only_while_it_runs(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pidfile.record(tmp_path, child.pid)
        assert pidfile.running(tmp_path) == child.pid
    finally:
        child.kill()
        child.wait()
    assert pidfile.running(tmp_path) is None  # dead (a reused pid has other start ticks)


def test_a_record_with_other_start_ticks_is_not_that_process(tmp_path: Path) -> None:
    (tmp_path / pidfile.PID_NAME).write_text(f'{{"pid": {os.getpid()}, "ticks": 1}}')
    assert pidfile.running(tmp_path) is None
    (tmp_path / pidfile.PID_NAME).write_text("garbage")
    assert pidfile.running(tmp_path) is None
    assert pidfile.running(tmp_path / "missing") is None


def test_one_instance_has_one_supervisor(tmp_path: Path) -> None:
    first = pidfile.lock(tmp_path)
    assert first is not None
    try:
        assert pidfile.lock(tmp_path) is None
    finally:
        os.close(first)
    again = pidfile.lock(tmp_path)
    assert again is not None
    os.close(again)


def test_processes_of_an_instance_are_found_by_their_marker_and_killed(tmp_path: Path) -> None:
    ours = tmp_path / "r1-web-1"
    other = tmp_path / "r1-web-10"  # a prefix of ours must not match
    sleep = [sys.executable, "-c", "import time; time.sleep(30)"]
    mine = subprocess.Popen(sleep, env=os.environ | {procs.MARKER: str(ours)})
    theirs = subprocess.Popen(sleep, env=os.environ | {procs.MARKER: str(other)})
    try:
        assert procs.marked(ours) == [mine.pid]
        assert procs.kill_marked(ours, spare={mine.pid}) == []
        assert procs.kill_marked(ours) == [mine.pid]
        assert mine.wait(5) == -9
        assert theirs.poll() is None
    finally:
        for proc in (mine, theirs):
            proc.kill()
            proc.wait()


def test_the_holder_of_a_port_is_named(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        holder = procs.port_holder(port)
        assert holder is not None and holder[0] == os.getpid()
        assert "pytest" in holder[1] or "python" in holder[1]
    assert procs.port_holder(port) is None
