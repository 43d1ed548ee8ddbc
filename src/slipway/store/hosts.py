"""The hosts of the fleet, in the state database. The local host always exists."""

from __future__ import annotations

import json
import sqlite3
import time

from slipway.errors import NotFound
from slipway.hosts.model import LOCAL, LOCAL_ADDRESS, ROLES, Host, SshTarget
from slipway.store.store import Store


def ensure_local(store: Store) -> None:
    """A fleet of one until hosts are added: the control host, with every role."""
    with store.tx() as c:
        c.execute(
            "INSERT OR IGNORE INTO hosts (name, address, roles, ssh, added_at) "
            "VALUES (?, ?, ?, NULL, ?)",
            (LOCAL, LOCAL_ADDRESS, json.dumps(list(ROLES)), time.time()),
        )


def update_facts(store: Store, name: str, **facts: object) -> Host:
    """Merge `facts` into what is known of host `name` (None: forget that fact)."""
    known = host(store, name)
    merged = {k: v for k, v in (known.facts | facts).items() if v is not None}
    changed = Host(known.name, known.address, known.roles, known.ssh, known.agent_version, merged)
    save(store, changed)
    return changed


def hosts(store: Store) -> list[Host]:
    rows = store.conn.execute("SELECT * FROM hosts ORDER BY name = 'local' DESC, name")
    return [_host(r) for r in rows.fetchall()]


def find(store: Store, name: str) -> Host | None:
    row = store.conn.execute("SELECT * FROM hosts WHERE name = ?", (name,)).fetchone()
    return _host(row) if row else None


def host(store: Store, name: str) -> Host:
    found = find(store, name)
    if found is None:
        known = ", ".join(h.name for h in hosts(store))
        raise NotFound(f"no host named '{name}'", fix=f"hosts: {known} (see `slipway hosts`)")
    return found


def save(store: Store, host: Host) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO hosts (name, address, roles, ssh, added_at, agent_version, facts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET address = "
            "excluded.address, roles = excluded.roles, ssh = excluded.ssh, "
            "agent_version = excluded.agent_version, facts = excluded.facts",
            (
                host.name,
                host.address,
                json.dumps(sorted(host.roles)),
                json.dumps(host.ssh.to_dict()) if host.ssh else None,
                time.time(),
                host.agent_version,
                json.dumps(host.facts),
            ),
        )


def remove(store: Store, name: str) -> None:
    with store.tx() as c:
        c.execute("DELETE FROM hosts WHERE name = ?", (name,))


def _host(row: sqlite3.Row) -> Host:
    ssh = json.loads(row["ssh"]) if row["ssh"] else None
    return Host(
        name=row["name"],
        address=row["address"],
        roles=frozenset(json.loads(row["roles"])),
        ssh=SshTarget.from_dict(ssh) if ssh else None,
        agent_version=row["agent_version"],
        facts=json.loads(row["facts"]),
    )


def vip(store: Store) -> dict[str, object] | None:
    """The lb tier's virtual address, if one is set (`slipway hosts vip`)."""
    row = store.conn.execute("SELECT value FROM meta WHERE key = 'vip'").fetchone()
    return dict(json.loads(row["value"])) if row else None


def generation(store: Store) -> int:
    """Which control plane this is: 1 at first, one more at every restore. Agents refuse a
    control plane older than the newest that reached them (two never drive one fleet)."""
    row = store.conn.execute("SELECT value FROM meta WHERE key = 'control_generation'").fetchone()
    return int(row["value"]) if row else 1


def set_generation(store: Store, value: int) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('control_generation', ?)",
            (str(value),),
        )


def set_vip(store: Store, value: dict[str, object] | None) -> None:
    with store.tx() as c:
        if value is None:
            c.execute("DELETE FROM meta WHERE key = 'vip'")
        else:
            c.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('vip', ?)", (json.dumps(value),)
            )
