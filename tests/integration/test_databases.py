"""Managed PostgreSQL with real PostgreSQL 15 and pgBackRest 2.45 (Debian's packages): create,
connect with the generated DATABASE_URL, write rows, back up, verify; a corrupted backup
fails verification and fires the alert; no password in a log, a file or the process list;
the repository is encrypted; a daemon killed between recording a database and creating it
finishes the create when it starts again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.conftest import Slipway, stop_all, wait_for
from tests.integration.testbed import Bed

PSQL = "/usr/lib/postgresql/15/bin/psql"
MARKER = "plaintext-marker-7f3a"  # a value that must never be readable in the repository

pytestmark = pytest.mark.skipif(
    not (Path(PSQL).exists() and shutil.which("pgbackrest")),
    reason="needs postgresql-15 and pgbackrest (scripts/install-system-deps.sh --test)",
)


def passable(slipway: Slipway) -> None:
    """The postgres user passes through the test's 0700 temp folder to the home."""
    os.chmod(slipway.home.parent, 0o711)


def psql(url: str, sql: str) -> str:
    done = subprocess.run(
        [PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", url],
        input=sql,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for top, _dirs, files in os.walk(root):
        for name in files:
            path = Path(top) / name
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


def pgbackrest_running(stanza: str, command: str) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                argv = Path(f"/proc/{entry.name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"--stanza={stanza}".encode() in argv and command.encode() in argv:
                return True
    return False


def processes_holding(needle: bytes) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if needle in Path(f"/proc/{entry.name}/cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_database_from_create_to_a_verified_backup_and_a_caught_corruption(
    slipway: Slipway,
) -> None:
    passable(slipway)
    slipway.run("up")
    app = slipway.make_app()
    config = app.dir / "slipway.toml"
    name_line = 'name = "hello"\n'
    config.write_text(
        config.read_text().replace(name_line, name_line + 'secrets = ["DATABASE_URL"]\n')
    )

    created = slipway.json("db", "create", "main", "--app", "hello")
    assert created["state"] == "running" and created["apps"] == ["hello"]
    assert created["last_backup"] is None  # the first full backup is taken at create, by pgBackRest

    # the app runs with DATABASE_URL in its environment (and nowhere else in plain text)
    slipway.deploy(app)
    url = slipway.run("secrets", "get", "DATABASE_URL", "--app", "hello", "--reveal").stdout.strip()
    assert url.startswith("postgresql://main:") and f":{created['port']}/main" in url
    instance = slipway.ps("hello")[0]
    environ = Path(f"/proc/{instance['pid']}/environ").read_bytes()
    assert f"DATABASE_URL={url}".encode() in environ

    psql(url, f"CREATE TABLE orders (id int, note text); INSERT INTO orders "
              f"SELECT i, '{MARKER}' FROM generate_series(1, 1000) i;")  # fmt: skip
    assert psql(url, "SELECT count(*) FROM orders;").strip() == "1000"
    done = slipway.json("db", "backup", "main", "--type", "full")
    assert done["backup"].endswith("F")

    listing = slipway.json("db", "backups", "main")
    assert listing["ok"] and listing["cipher"] == "aes-256-cbc"
    assert [b["type"] for b in listing["backups"]] == ["full", "full"]
    newest = listing["backups"][-1]
    assert newest["label"] == done["backup"] and newest["wal_start"] and newest["stored"] > 0

    verified = slipway.json("db", "verify", "main")
    assert verified["ok"], verified
    assert verified["backup"] == done["backup"]
    assert verified["check"]["tables"] == {"public.orders": 1000}
    assert verified["restore_seconds"] > 0
    shown = slipway.json("db", "backups", "main")["backups"][-1]["verified"]
    assert shown["ok"] and shown["backup"] == done["backup"]

    # a restarted daemon: the database keeps running and archiving (archive_command must
    # still reach its config through the home)
    slipway.run("down")
    slipway.run("up")
    assert slipway.json("db", "backup", "main", "--type", "incr")["backup"].endswith("I")

    # on a schedule: a differential backup and its verification happen by themselves
    slipway.run("db", "schedule", "main", "--full", "off", "--diff", "10s", "--verify", "10s")

    def scheduled() -> bool:
        newest = slipway.json("db", "backups", "main")["backups"][-1]
        return newest["type"] == "diff" and bool(newest["verified"] and newest["verified"]["ok"])

    wait_for(scheduled, 45, "a scheduled differential backup and its verification", every=1)
    slipway.run("db", "schedule", "main", "--diff", "off", "--verify", "off")

    # PostgreSQL killed (-9) during a backup: the backup fails and is recorded, the agent
    # starts PostgreSQL again, the next backup works
    during = subprocess.Popen(
        [*slipway.cli(), "db", "backup", "main", "--type", "full"],
        env=slipway.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: pgbackrest_running("main", "backup"), 15, "pgBackRest's backup", 0.02)
        data = slipway.home / "databases" / "main" / "data"
        os.kill(int((data / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)
        said, _ = during.communicate(timeout=120)
    finally:
        if during.poll() is None:
            during.kill()
    assert during.returncode != 0, said
    assert slipway.json("db")[0]["last_backup"]["ok"] is False
    wait_for(lambda: slipway.json("db")[0]["state"] == "running", 30, "PostgreSQL started again")
    slipway.run("db", "backup", "main", "--type", "incr")
    newest_label = slipway.json("db", "backups", "main")["backups"][-1]["label"]

    # secrets: the password in no file under the home (logs, configs, state) and in no
    # process's command line; the repository holds no readable row
    password = url.split("://main:", 1)[1].split("@", 1)[0]
    assert files_holding(slipway.home, password.encode()) == []
    assert processes_holding(password.encode()) == []
    repository = slipway.home / "backups" / "main"
    assert files_holding(repository, MARKER.encode()) == []
    assert files_holding(repository, b"CREATE TABLE") == []
    stored_files = [p for p in repository.rglob("*") if p.is_file() and p.stat().st_size > 64]
    assert stored_files and all(p.read_bytes().startswith(b"Salted__") for p in stored_files)

    # a corrupted backup file: verification fails, is recorded, and the alert fires
    backup_dir = repository / "backup" / "main" / newest_label
    victim = max(backup_dir.rglob("*.lz4"), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    start = len(raw) // 2 if len(raw) > 200 else 16  # past "Salted__" and the salt
    raw[start : start + 64] = bytes(len(raw[start : start + 64]))
    victim.write_bytes(bytes(raw))
    failed = slipway.run("db", "verify", "main", check=False)
    assert failed.returncode == 1 and "FAILED" in failed.stdout, failed.stdout + failed.stderr
    view = slipway.json("db")[0]
    assert view["last_verify"]["ok"] is False and view["last_verify"]["error"]

    def firing() -> bool:
        alerts = slipway.json("alerts", "--app", "hello")["alerts"]
        return any(
            a["rule"] == "database backup failing" and a["state"] == "firing" for a in alerts
        )

    wait_for(firing, 20, "the 'database backup failing' alert to fire")
    doctor = slipway.run("doctor", "--json", check=False).stdout
    assert "ITS BACKUPS ARE ON ITS OWN HOST" in doctor and "verification of database main" in doctor

    drop = slipway.run("db", "drop", "main", check=False)  # no terminal: must confirm by name
    assert drop.returncode != 0 and "--yes main" in drop.stdout + drop.stderr
    slipway.run("db", "drop", "main", "--yes", "main")
    assert slipway.json("db") == []
    assert not (slipway.home / "databases" / "main").exists() and not repository.exists()


def test_create_cut_off_by_a_crash_is_finished_at_the_next_start(slipway: Slipway) -> None:
    passable(slipway)
    slipway.run("up", env=slipway.env(SLIPWAY_FAULT="crash-at:db-create-recorded"))
    cut = slipway.run("db", "create", "jobs", check=False)
    assert cut.returncode != 0  # the daemon died after recording it, before any initdb
    assert not (slipway.home / "databases" / "jobs" / "initialised").exists()
    slipway.run("up")

    def running() -> bool:
        views = slipway.json("db")
        return bool(views) and views[0]["state"] == "running"

    wait_for(running, 60, "the interrupted create to be finished", every=0.5)
    assert slipway.json("db", "backups", "jobs")["backups"]  # with its first backup

    # a drop cut off the same way is finished at the next start
    slipway.run("down")
    slipway.run("up", env=slipway.env(SLIPWAY_FAULT="crash-at:db-drop-recorded"))
    cut = slipway.run("db", "drop", "jobs", "--yes", "jobs", check=False)
    assert cut.returncode != 0
    assert (slipway.home / "databases" / "jobs" / "initialised").exists()  # not yet
    slipway.run("up")
    wait_for(lambda: slipway.json("db") == [], 30, "the interrupted drop to be finished", 0.5)
    assert not (slipway.home / "databases" / "jobs").exists()


def test_database_on_a_fleet_host_over_ssh() -> None:
    """The same commands for a database on another host: its agent runs PostgreSQL there
    (in that host's home), apps reach it at the host's address."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    bed = Bed(
        Path(tempfile.mkdtemp(prefix="swdb-", dir="/tmp")),
        subnet="10.209.0",
        prefix="swdb-",
        bridge="swdb0",
    )
    work = Path(tempfile.mkdtemp(prefix="swdbapp-", dir="/tmp"))
    slipway = Slipway(home=bed.folder / "control", workdir=work)
    try:
        bed.up(["db1"])
        slipway.run("up")
        host = bed.hosts["db1"]
        slipway.run(
            "hosts", "add", "db1", "--address", host.address, "--role", "app",
            "--key", str(bed.key), "--remote-home", str(host.home),
            "--fingerprint", bed.fingerprint("db1"),
        )  # fmt: skip
        created = slipway.json("db", "create", "orders", "--host", "db1", "--app", "shop")
        assert created["host"] == "db1" and created["state"] == "running"
        data = host.home / "databases" / "orders" / "data"
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        assert subprocess.run(["ip", "netns", "identify", str(postmaster)], capture_output=True,
                              text=True).stdout.strip() == host.netns  # fmt: skip
        url = slipway.run("secrets", "get", "DATABASE_URL", "--app", "shop", "--reveal").stdout
        assert f"@{host.address}:{created['port']}/orders" in url
        psql(url.strip(), "CREATE TABLE items AS SELECT generate_series(1, 250) AS id;")
        slipway.run("db", "backup", "orders", "--type", "full")
        verified = slipway.json("db", "verify", "orders")
        assert verified["ok"] and verified["check"]["tables"] == {"public.items": 250}, verified
        slipway.run("db", "drop", "orders", "--yes", "orders")
        assert not data.exists()
    finally:
        leftovers = stop_all(slipway)
        bed.down()
        shutil.rmtree(work, ignore_errors=True)
    assert not leftovers, leftovers
