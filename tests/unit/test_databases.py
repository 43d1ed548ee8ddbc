"""Managed databases, pure parts: names, rendered settings, SCRAM verifiers, pgBackRest's
catalogue, the alert's reading."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from slipway.alerts import rules
from slipway.config.alerts import DEFAULT_RULES
from slipway.databases import backups, model, render
from slipway.errors import UsageError


@pytest.mark.parametrize("name", ["main", "a", "orders_2", "x" * 31])
def test_good_names(name: str) -> None:
    assert model.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "Main", "1db", "a-b", "x" * 32, "postgres", "template1", "pg_x", "a;b", "a b"]
)
def test_bad_names_say_what_is_allowed(name: str) -> None:
    with pytest.raises(UsageError) as raised:
        model.check_name(name)
    assert "lowercase letters" in (raised.value.fix or "")


def test_backup_types() -> None:
    assert model.check_backup_type("diff") == "diff"
    with pytest.raises(UsageError):
        model.check_backup_type("everything")


def test_url_quotes_the_password() -> None:
    url = model.database_url("main", "a/b@c", "10.0.0.5", 5433)
    assert url == "postgresql://main:a%2Fb%40c@10.0.0.5:5433/main"


def test_secrets_have_a_place_no_app_can_have() -> None:
    assert model.secrets_place("main") == "db:main"


def test_scram_verifier_is_what_postgres_checks() -> None:
    salt = b"0123456789abcdef"
    verifier = render.scram_verifier("pencil", salt)
    method, rest = verifier.split("$", 1)
    params, keys = rest.split("$")
    iterations, salt_text = params.split(":")
    stored_text, server_text = keys.split(":")
    assert method == "SCRAM-SHA-256" and iterations == "4096"
    assert base64.b64decode(salt_text) == salt
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(stored_text) == hashlib.sha256(client_key).digest()
    assert base64.b64decode(server_text) == hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    assert "pencil" not in verifier
    assert render.scram_verifier("pencil") != render.scram_verifier("pencil")  # salted


def test_settings_archive_to_the_stanza_and_keep_the_socket_private() -> None:
    layout = render.Layout.of(Path("/h"), "main")
    text = render.server_settings("main", layout, 5433, ["127.0.0.1", "10.0.0.5"])
    assert "port = 5433" in text
    assert "listen_addresses = '127.0.0.1,10.0.0.5'" in text
    assert "unix_socket_directories = '/h/databases/main/run'" in text
    assert "unix_socket_permissions = 0700" in text
    assert "archive_mode = on" in text
    assert "--config=/h/databases/main/pgbackrest.conf --stanza=main archive-push %p" in text
    assert f"archive_timeout = {model.ARCHIVE_TIMEOUT}" in text


def test_backrest_conf_encrypts_a_repository_apart_from_the_cluster() -> None:
    layout = render.Layout.of(Path("/h"), "main")
    text = render.backrest_conf("main", layout, 5433, "s3cret")
    assert "repo1-path=/h/backups/main" in text
    assert "repo1-cipher-type=aes-256-cbc" in text
    assert "repo1-cipher-pass=s3cret" in text
    assert "[main]\npg1-path=/h/databases/main/data" in text
    assert "pg1-port=5433" in text


def test_hba_admits_only_the_role_to_its_database_by_password() -> None:
    lines = [line.split() for line in render.hba("main").splitlines()[1:]]
    assert ["local", "all", "all", "trust"] in lines
    tcp = [line for line in lines if line[0] == "host"]
    assert tcp and all(
        line[1:3] == ["main", "main"] and line[-1] == "scram-sha-256" for line in tcp
    )


def test_role_sql_never_carries_a_password() -> None:
    sql = render.role_sql("main", "SCRAM-SHA-256$4096:c2FsdA==$a:b")
    assert "PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'" in sql
    assert "CREATE ROLE %I" in sql and "CREATE DATABASE %I OWNER %I" in sql


def test_table_counts_are_parsed() -> None:
    text = "public.orders|1000\npublic.empty|0\nnoise\n"
    assert render.parse_counts(text) == {"public.orders": 1000, "public.empty": 0}


INFO = [
    {
        "name": "main",
        "cipher": "aes-256-cbc",
        "status": {"code": 0, "message": "ok"},
        "archive": [
            {"id": "15-1", "min": "000000010000000000000001", "max": "00000001000000000000000A"}
        ],
        "backup": [
            {
                "label": "20261203-195334F",
                "type": "full",
                "timestamp": {"start": 1000, "stop": 1003},
                "archive": {
                    "start": "000000010000000000000002",
                    "stop": "000000010000000000000003",
                },
                "info": {
                    "size": 30000000,
                    "delta": 30000000,
                    "repository": {"size": 6000000, "delta": 6000000},
                },
                "error": False,
            },
            {
                "label": "20261203-195334F_20261203-195340I",
                "type": "incr",
                "timestamp": {"start": 1010, "stop": 1012},
                "archive": {
                    "start": "000000010000000000000004",
                    "stop": "000000010000000000000005",
                },
                "info": {
                    "size": 30000000,
                    "delta": 8192,
                    "repository": {"size": 6000000, "delta": 944},
                },
            },
        ],
    }
]


def test_info_is_read_into_backups_oldest_first() -> None:
    state = backups.parse_info(INFO, "main")
    assert state.ok and state.message == "ok" and state.cipher == "aes-256-cbc"
    assert (state.wal_min, state.wal_max) == (
        "000000010000000000000001",
        "00000001000000000000000A",
    )
    full, incr = state.backups
    assert (full.type, full.seconds, full.size, full.stored) == ("full", 3.0, 30000000, 6000000)
    assert (incr.stored, incr.wal_start, incr.error) == (944, "000000010000000000000004", False)
    assert backups.newest(state) == incr


def test_info_without_the_stanza_is_not_ok() -> None:
    assert not backups.parse_info(INFO, "other").ok
    assert not backups.parse_info({"unexpected": True}, "main").ok
    failing = [{"name": "main", "status": {"code": 2, "message": "no valid backups"}}]
    state = backups.parse_info(failing, "main")
    assert not state.ok and state.message == "no valid backups" and state.backups == ()


def test_a_failing_database_fires_the_default_rule() -> None:
    rule = next(r for r in DEFAULT_RULES if r.metric == "databases_failing")
    assert rule.severity == "critical"
    facts = rules.Facts(traffic={}, window=60, instances_down=0, restarts=0, disk_free=0.5)
    quiet = rules.read(rule, facts)
    assert quiet.value == 0 and not rule.breached(quiet.value)
    failing = rules.read(rule, rules.Facts(**{**facts.__dict__, "databases_failing": ("main",)}))
    assert failing.value == 1 and rule.breached(failing.value)
    now = 100.0
    assert rules.step(rule, rules.State("ok", 0), failing, now).state == "firing"
    assert "database main" in rules.summary(rule, failing)


def view(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "main",
        "host": "local",
        "state": "running",
        "error": None,
        "last_backup": {"ok": True, "error": None},
        "last_verify": None,
    }
    return base | changes


def test_doctor_warns_loudly_of_a_repository_on_the_same_host() -> None:
    from slipway.doctor.databases import check_databases

    (finding,) = check_databases([view()])
    assert finding.level == "warn" and "ITS BACKUPS ARE ON ITS OWN HOST" in finding.message
    assert check_databases([]) == []


def test_doctor_fails_a_stopped_database_and_a_failed_verification() -> None:
    from slipway.doctor.databases import check_databases

    failed = {"ok": False, "error": "checksum mismatch"}
    findings = check_databases([view(state="stopped", last_verify=failed)])
    fails = [f.message for f in findings if f.level == "fail"]
    assert "database main on local is stopped" in fails
    assert "the last verification of database main failed: checksum mismatch" in fails


DAY = 86400.0


def test_schedule_runs_full_then_diff_then_verify() -> None:
    from slipway.databases.schedule import Last, Schedule, due

    plan = Schedule()  # full 7d, diff 1d, verify 1d
    created = 0.0
    never = Last(None, None, None)
    assert due(plan, never, 0.5 * DAY, created) is None  # the first full is taken at create
    assert due(plan, never, 1 * DAY, created) == "diff"
    after_diff = Last(None, 1 * DAY, None)
    assert due(plan, after_diff, 1 * DAY + 60, created) == "verify"
    proven = Last(None, 1 * DAY, 1 * DAY + 60)
    assert due(plan, proven, 1.5 * DAY, created) is None
    assert due(plan, proven, 7 * DAY, created) == "full"  # the most important first
    # a full backup resets the differential's clock too
    assert due(plan, Last(7 * DAY, 1 * DAY, 7 * DAY), 7.5 * DAY, created) is None


def test_a_failed_run_is_retried_later_not_at_every_tick() -> None:
    from slipway.databases.schedule import Last, Schedule, due, retry_after

    plan = Schedule(full=None, diff=DAY, verify=None)
    failed = Last(None, None, None, failed={"diff": DAY})
    assert due(plan, failed, DAY + 5, 0.0) is None
    assert due(plan, failed, DAY + retry_after(DAY), 0.0) == "diff"
    assert retry_after(20.0) == 10.0 and retry_after(DAY) == 600.0


def test_a_run_that_did_not_happen_on_time_is_overdue() -> None:
    from slipway.databases.schedule import Last, Schedule, grace, overdue

    plan = Schedule(full=7 * DAY, diff=DAY, verify=None)
    assert grace(DAY) == 0.5 * DAY and grace(60.0) == 600.0
    fresh = Last(0.0, None, None)
    assert overdue(plan, fresh, 1.4 * DAY, 0.0) == []
    assert overdue(plan, fresh, 1.6 * DAY, 0.0) == ["diff"]
    assert overdue(plan, fresh, 11 * DAY, 0.0) == ["full", "diff"]
    assert overdue(Schedule(None, None, None), fresh, 100 * DAY, 0.0) == []


def test_schedule_bounds_and_round_trip() -> None:
    from slipway.databases.schedule import Schedule, check_every

    assert check_every("diff", 10.0) == 10.0 and check_every("diff", None) is None
    for bad in (1.0, 400 * DAY):
        with pytest.raises(UsageError) as raised:
            check_every("verify", bad)
        assert "--verify off" in (raised.value.fix or "")
    plan = Schedule(full=None, diff=3600.0, verify=7200.0)
    assert Schedule.from_dict(plan.to_dict()) == plan
    assert Schedule.from_dict(None) == Schedule()
