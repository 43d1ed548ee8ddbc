"""Copies of the state database for the control plane's replica: SQLite's online backup
(a consistent copy of a database in use, never a copy of its file), its integrity check,
and what a copy holds, said in counts."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from slipway.store.store import Store

SUMMARY = {  # what a restore reports: table -> the words for it
    "apps": "apps",
    "releases": "releases",
    "secrets": "secret versions",
    "tokens": "tokens",
    "hosts": "hosts",
    "deployments": "deployments",
}


def changes(store: Store) -> int:
    """Rows changed through the daemon's connection since it opened: a cheap test of
    whether anything changed since the last copy."""
    return store.conn.total_changes


def online_backup(source: Path, dest: Path) -> None:
    """A consistent copy of the database at `source` into `dest`, taken in one step through
    a connection of its own (a read transaction: writers carry on meanwhile, in WAL mode)."""
    dest.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=10)
    try:
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=-1)
            dst.execute("PRAGMA journal_mode=DELETE")  # one file, nothing beside it
        finally:
            dst.close()
    finally:
        src.close()


def integrity(path: Path) -> list[str]:
    """SQLite's integrity check of the database at `path`: [] when it is sound."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return [str(exc)]
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [] if rows == ["ok"] else rows[:20]


def summary(path: Path) -> dict[str, int]:
    """How many rows each table of SUMMARY holds in the database at `path`."""
    counts: dict[str, int] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for table in SUMMARY:
            with contextlib.suppress(sqlite3.Error):
                counts[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()
    return counts
