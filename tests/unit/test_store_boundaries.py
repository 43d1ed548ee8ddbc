"""Every SQL statement lives in `slipway.store`: the rest of slipway calls its typed functions
and never sees a connection, a cursor or a column name. This scan keeps that true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
STORE = SRC / "slipway" / "store"
# what runs SQL, or reaches for a Store's connection or its helpers for the store's modules
ATTRIBUTES = {"execute", "executemany", "executescript", "conn", "fetch_one", "fetch_all"}
# the same as text, for what the syntax tree does not show (a string given to getattr, ...)
TEXTS = (".execute(", ".executemany(", "sqlite3", "store.conn")


def outside_store() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if STORE not in p.parents)


def violations(source: str, name: str) -> list[str]:
    """Where a module's source runs SQL itself, imports sqlite3 or uses a Store's insides."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            if any(m.split(".")[0] == "sqlite3" for m in modules):
                found.append(f"{name}:{node.lineno}: imports sqlite3")
        elif isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
            found.append(f"{name}:{node.lineno}: .{node.attr}")
    for number, line in enumerate(source.splitlines(), start=1):
        found.extend(f"{name}:{number}: {text!r}" for text in TEXTS if text in line)
    return found


def test_the_scan_sees_the_modules_outside_the_store_and_only_those() -> None:
    modules = outside_store()
    assert SRC / "slipway" / "alerts" / "engine.py" in modules
    assert SRC / "slipway" / "metrics" / "history.py" in modules
    assert SRC / "slipway" / "store" / "store.py" not in modules


def test_no_module_outside_the_store_touches_sqlite() -> None:
    found = [
        v
        for path in outside_store()
        for v in violations(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)))
    ]
    assert not found, "SQL outside src/slipway/store/ (move it into a store module):\n" + (
        "\n".join(found)
    )


@pytest.mark.parametrize(
    "source",
    [
        "store.conn.execute('SELECT 1')",
        "db = service.store.conn",
        "import sqlite3",
        "from sqlite3 import Row",
        "import sqlite3.dbapi2 as db",
        "c.executemany('INSERT INTO t VALUES (?)', rows)",
        "c.executescript('DELETE FROM t')",
        "rows = store.fetch_all('SELECT 1')",
        "row = store.fetch_one('SELECT 1')",
        "run = getattr(db, 'execute')  # db.execute(",
        "x = 'sqlite3'",
    ],
)
def test_the_scan_catches(source: str) -> None:
    assert violations(source, "probe.py")


def test_the_scan_lets_store_calls_through() -> None:
    source = "from slipway.store import alerts\nrows = alerts.alerts(store, 'web')\n"
    assert violations(source, "probe.py") == []
