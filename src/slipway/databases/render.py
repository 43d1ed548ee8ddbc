"""The files and statements a managed PostgreSQL runs with: slipway's settings (included from
postgresql.conf), pg_hba.conf, pgbackrest.conf, and a role's password as a SCRAM verifier.
Pure: values in, text out; standard library only (the agent imports it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from slipway.databases.model import ARCHIVE_TIMEOUT, RETENTION_FULL

PGBACKREST = "/usr/bin/pgbackrest"
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default


@dataclass(frozen=True)
class Layout:
    """One database's folders on its host. The cluster folder is the postgres user's own;
    the repository is kept apart from it, so dropping a cluster's data never touches a
    backup by accident."""

    root: Path  # <home>/databases/<name>
    repo: Path  # <home>/backups/<name>

    @classmethod
    def of(cls, home: Path, name: str) -> Layout:
        return cls(home / "databases" / name, home / "backups" / name)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def run(self) -> Path:
        return self.root / "run"  # its own unix socket folder: never Debian's shared one

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def server_log(self) -> Path:
        return self.log / "postgres.log"

    @property
    def backrest_conf(self) -> Path:
        return self.root / "pgbackrest.conf"

    @property
    def wanted(self) -> Path:
        """Present while the agent is to keep the server running."""
        return self.root / "wanted"

    @property
    def initialised(self) -> Path:
        """Written after initdb and the first configuration: a cluster without it is the
        leftover of an interrupted create, and is made again from nothing."""
        return self.root / "initialised"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"


def server_settings(name: str, layout: Layout, port: int, listen: list[str]) -> str:
    """slipway.conf, included at the end of postgresql.conf (so it wins)."""
    archive = f"{PGBACKREST} --config={layout.backrest_conf} --stanza={name} archive-push %p"
    lines = [
        "# written by slipway; changed by slipway only",
        f"listen_addresses = '{','.join(listen)}'",
        f"port = {port}",
        f"unix_socket_directories = '{layout.run}'",
        "unix_socket_permissions = 0700",  # only the postgres user (and root) gets in here
        "password_encryption = 'scram-sha-256'",
        "wal_level = replica",
        "archive_mode = on",
        f"archive_command = '{archive}'",
        # a quiet database still sends its last changes to the repository this often
        f"archive_timeout = {ARCHIVE_TIMEOUT}",
        "max_wal_senders = 3",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "log_statement = 'none'",  # statements may carry values; never logged
    ]
    return "\n".join(lines) + "\n"


def hba(name: str) -> str:
    """Local socket: trust, as the socket folder admits only the postgres user. Over TCP:
    the database's own role, by password (SCRAM), to its own database only."""
    return (
        "# written by slipway\n"
        "local   all     all                     trust\n"
        f"host    {name}  {name}  0.0.0.0/0       scram-sha-256\n"
        f"host    {name}  {name}  ::/0            scram-sha-256\n"
    )


def backrest_conf(name: str, layout: Layout, port: int, cipher_pass: str) -> str:
    """pgBackRest for one database with its repository on the same host. Paths are all
    explicit: without Debian's service nothing creates /var/log/pgbackrest and friends."""
    return (
        "# written by slipway; holds the repository's passphrase: keep it 0600\n"
        "[global]\n"
        f"repo1-path={layout.repo}\n"
        f"repo1-retention-full={RETENTION_FULL}\n"
        "repo1-cipher-type=aes-256-cbc\n"
        f"repo1-cipher-pass={cipher_pass}\n"
        f"log-path={layout.log}\n"
        f"lock-path={layout.root / 'lock'}\n"
        f"spool-path={layout.root / 'spool'}\n"
        "log-level-console=warn\n"
        "log-level-file=info\n"
        "start-fast=y\n"
        "compress-type=lz4\n"
        "archive-async=n\n"
        f"\n[{name}]\n"
        f"pg1-path={layout.data}\n"
        f"pg1-socket-path={layout.run}\n"
        f"pg1-port={port}\n"
    )


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """What PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802/7677). The server is
    given this, never the password: it cannot reach a log or a statement's text."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def role_sql(name: str, verifier: str) -> str:
    """Make the role and its database if missing, set the password: safe to run again.
    `name` is checked (model.NAME), `verifier` is base64 and '$:', so no quoting issue."""
    return (
        "SELECT format('CREATE ROLE %I LOGIN', :'name') "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'name') \\gexec\n"
        f"ALTER ROLE {name} LOGIN PASSWORD '{verifier}';\n"
        "SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') "
        "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'name') \\gexec\n"
        f"REVOKE CONNECT ON DATABASE {name} FROM PUBLIC;\n"
    )


# Every table of the database with its exact row count: the default check of a restored
# backup (a table that went missing, or lost its rows, shows here).
TABLE_COUNTS_SQL = (
    "SELECT table_schema || '.' || table_name, "
    "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "table_schema, table_name), false, true, '')))[1]::text::bigint "
    "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
    "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
)


def parse_counts(text: str) -> dict[str, int]:
    """psql -At output of TABLE_COUNTS_SQL ("schema.table|count" lines)."""
    counts = {}
    for line in text.splitlines():
        table, _, count = line.rpartition("|")
        if table and count.strip().isdigit():
            counts[table] = int(count)
    return counts
