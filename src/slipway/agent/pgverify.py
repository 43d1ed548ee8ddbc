"""Proving a backup by restoring it: the newest backup into a scratch cluster (its own folder,
another port, no TCP, archiving off so it never writes into the repository), started and
promoted, pgBackRest's own `verify` of the repository, and a check query; then the scratch
cluster is removed. Every outcome is returned as data (ok or not, and why): a failed
verification is a result to record and alert on, not an exception. Standard library only."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path
from typing import Any

from slipway.agent import pgrun
from slipway.agent.postgres import Postgres, backup_labels, pgbackrest
from slipway.databases import render
from slipway.databases.render import Layout
from slipway.errors import SlipwayError

RECOVERY_TIMEOUT = 600.0
MAX_CHECK_LINES = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify(postgres: Postgres, name: str, query: str | None, timeout: float) -> dict[str, Any]:
    layout = postgres.layout(name)
    scratch = layout.scratch
    started = time.monotonic()
    result: dict[str, Any] = {"ok": False, "backup": None, "restore_seconds": None}
    try:
        result["backup"] = newest_backup(layout, name)
        port = restore(postgres, layout, name, scratch)
        result["restore_seconds"] = round(time.monotonic() - started, 2)
        pgbackrest(layout, name, "verify", timeout=timeout)
        result["check"] = check(postgres, scratch, port, name, query)
        result["ok"] = True
    except SlipwayError as exc:
        result["error"] = exc.message
    except (OSError, ValueError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        postgres.stop_now(scratch / "data")
        shutil.rmtree(scratch, ignore_errors=True)
        result["seconds"] = round(time.monotonic() - started, 2)
    return result


def newest_backup(layout: Layout, name: str) -> str:
    labels = backup_labels(layout, name)
    if not labels:
        raise SlipwayError(
            f"database {name} has no backup to verify", fix=f"slipway db backup {name}"
        )
    return str(labels[-1])


def restore(postgres: Postgres, layout: Layout, name: str, scratch: Path) -> int:
    """The newest backup, restored and promoted in `scratch`; returns the port it runs on."""
    postgres.stop_now(scratch / "data")  # the leftover of a verification cut short
    shutil.rmtree(scratch, ignore_errors=True)
    for folder in (scratch, scratch / "data", scratch / "run"):
        pgrun.own(folder)
    # up to the end of the backup only (immediate), then promoted: the backup itself is
    # what is proven, independent of WAL archived since
    target = f"--pg1-path={scratch / 'data'}"
    # (no retries: a local repository has no passing network trouble, and a damaged file
    # is not mended by trying again 15 s later)
    pgbackrest(layout, name, "restore", target, "--type=immediate", "--target-action=promote",
               "--archive-mode=off", "--job-retry=0", timeout=RECOVERY_TIMEOUT)  # fmt: skip
    port = free_port()
    overrides = (
        "\n# slipway verification: a scratch copy, never serving, never archiving\n"
        f"port = {port}\nunix_socket_directories = '{scratch / 'run'}'\n"
        "listen_addresses = ''\narchive_mode = off\n"
    )
    auto = scratch / "data" / "postgresql.auto.conf"
    with auto.open("a") as handle:
        handle.write(overrides)
    pgrun.run(
        [str(pgrun.BIN / "pg_ctl"), "-D", str(scratch / "data"), "-l", str(scratch / "pg.log"),
         "-w", "-t", str(int(RECOVERY_TIMEOUT)), "-s", "start"],
        RECOVERY_TIMEOUT + 10,
    )  # fmt: skip
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while not promoted(postgres, scratch, port):
        if time.monotonic() > deadline:
            raise SlipwayError(
                f"the restored copy was still recovering after {RECOVERY_TIMEOUT:.0f}s",
                fix=f"see {scratch / 'pg.log'}",
            )
        time.sleep(0.2)
    return port


def promoted(postgres: Postgres, scratch: Path, port: int) -> bool:
    try:
        said = postgres.psql(scratch / "run", port, "postgres", "SELECT pg_is_in_recovery()\n")
        return said == "f\n"
    except SlipwayError:  # still starting up
        return False


def check(
    postgres: Postgres, scratch: Path, port: int, name: str, query: str | None
) -> dict[str, Any]:
    """The tables and their row counts (default) or the user's query, on the restored copy."""
    if query is None:
        text = postgres.psql(scratch / "run", port, name, render.TABLE_COUNTS_SQL + ";\n")
        return {"tables": render.parse_counts(text)}
    sql = "SET statement_timeout = '60s';\n" + query.rstrip().rstrip(";") + ";\n"
    text = postgres.psql(scratch / "run", port, name, sql)
    return {"output": text.splitlines()[:MAX_CHECK_LINES]}
