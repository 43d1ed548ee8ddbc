"""Managed databases as the API sees them: create, list, attach to an app, drop, back up,
list backups, verify. The database lives on a host of the fleet and every action goes to
that host's agent (the local host's in this process, the others' over SSH).

Write the intention, then act: a database is recorded (`creating`) before its host is
asked, and every agent step can run again, so a daemon killed in between finishes the
create at its next start (resume)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

from slipway import faults
from slipway.daemon import secret_ops
from slipway.databases import backups, model, render, schedule
from slipway.errors import Conflict, SlipwayError, UsageError
from slipway.hosts.model import LOCAL_ADDRESS, Host
from slipway.store import databases as stored
from slipway.store import security

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.daemon")
PASSWORD, CIPHER_PASS = "PASSWORD", "BACKUP_PASSPHRASE"
CREATE_TIMEOUT = 900.0  # initdb, start, stanza, check, and a first full backup
BACKUP_TIMEOUT = 6 * 3600.0
VERIFY_TIMEOUT = 6 * 3600.0
MAX_QUERY = 4096
URL_VARIABLE = "DATABASE_URL"


def listen_addresses(host: Host) -> list[str]:
    """Where the server listens: the host's fleet address (apps on other hosts), and the
    loopback (apps on the same host)."""
    return sorted({host.address, LOCAL_ADDRESS})


def kept(service: Service, name: str, key: str) -> str | None:
    place = model.secrets_place(name)
    if key not in security.current_versions(service.store, place):
        return None
    return service.secrets.reveal(place, key)


def keep(service: Service, name: str, key: str, value: str, who: str) -> str:
    service.secrets.set(model.secrets_place(name), key, value, who)
    return value


# create, attach, drop ----------------------------------------------------------------------


async def create(service: Service, name: str, host_name: str, apps: list[str], who: str) -> Any:
    model.check_name(name)
    for app in apps:
        secret_ops.check_place(app, URL_VARIABLE)
    host = service.fleet.host(host_name)
    found = stored.find(service.store, name)
    resumable = found is not None and found.state in ("creating", "failed")
    if found is not None and not (resumable and found.host == host.name):
        raise Conflict(
            f"a database named {name} exists on host {found.host} ({found.state})",
            fix=f"pick another name, or `slipway db drop {name}` first",
        )
    transport = service.fleet.transport(host.name)
    if found is None:
        port = int(await transport.call("free_port", address=host.address))
        # the secrets first: a crash after them leaves unused secrets, never a database
        # without its password or passphrase
        keep(service, name, PASSWORD, secrets.token_urlsafe(model.PASSWORD_BYTES), who)
        keep(service, name, CIPHER_PASS, secrets.token_urlsafe(model.CIPHER_PASS_BYTES), who)
        found = stored.add(service.store, name, "postgres", host.name, port, who)
    faults.crash_at("db-create-recorded")
    await build(service, found.name, host, found.port)
    for app in apps:
        await attach(service, name, app, who)
    return await view(service, stored.get(service.store, name))


async def build(service: Service, name: str, host: Host, port: int) -> None:
    """Ask the host for the cluster (again, after a crash: every step is idempotent)."""
    password, cipher = kept(service, name, PASSWORD), kept(service, name, CIPHER_PASS)
    if password is None or cipher is None:
        raise SlipwayError(
            f"database {name}'s secrets are missing from the secrets store",
            fix=f"`slipway db drop {name}` and create it again",
        )
    stored.set_state(service.store, name, "creating")
    try:
        await service.fleet.transport(host.name).call(
            "db.create",
            _timeout=CREATE_TIMEOUT,
            name=name,
            port=port,
            listen=listen_addresses(host),
            verifier=render.scram_verifier(password),
            cipher_pass=cipher,
        )
    except SlipwayError as exc:
        stored.set_state(service.store, name, "failed", exc.message)
        raise SlipwayError(
            f"database {name} could not be created on host {host.name}: {exc.message}",
            where=f"host {host.name}",
            fix=f"fix the cause, then `slipway db create {name} --host {host.name}` resumes; "
            f"or `slipway db drop {name}`",
        ) from None
    stored.set_state(service.store, name, "ready")


def url_of(service: Service, name: str) -> str:
    record = stored.get(service.store, name)
    password = kept(service, name, PASSWORD)
    if password is None:
        raise SlipwayError(f"database {name} has no password stored", fix="report this")
    address = service.fleet.host(record.host).address
    return model.database_url(name, password, address, record.port)


async def attach(
    service: Service, name: str, app: str, who: str, variable: str = URL_VARIABLE
) -> dict[str, Any]:
    """The app's secret `variable` (DATABASE_URL) set to the database's URL: sealed like
    every secret, given to the app's instances in their environment only."""
    secret_ops.check_place(app, variable)
    record = stored.get(service.store, name)
    if record.state != "ready":
        raise Conflict(f"database {name} is {record.state}", fix="see `slipway db`")
    result = secret_ops.set_secret(service, app, variable, url_of(service, name), who)
    stored.set_apps(service.store, name, [*record.apps, app])
    return result


async def drop(service: Service, name: str, who: str) -> None:
    record = stored.get(service.store, name)
    stored.set_state(service.store, name, "dropping")
    faults.crash_at("db-drop-recorded")
    await service.fleet.transport(record.host).call("db.drop", _timeout=120.0, name=name)
    place = model.secrets_place(name)
    for key in security.current_versions(service.store, place):
        service.secrets.unset(place, key, who)
    stored.remove(service.store, name)
    log.warning("database %s dropped by %s", name, who)


# what there is -----------------------------------------------------------------------------


async def views(service: Service) -> list[dict[str, Any]]:
    records = stored.every(service.store)
    return list(await asyncio.gather(*(view(service, r) for r in records)))


async def view(service: Service, record: stored.DatabaseRecord) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    problem = record.error if record.state == "failed" else None
    try:
        described = await service.fleet.transport(record.host).call(
            "db.describe", _timeout=10.0, names=[record.name]
        )
        seen = described.get(record.name, {})
    except SlipwayError as exc:
        problem = f"host {record.host} does not answer: {exc.message}"
    state = record.state
    if state == "ready" and seen:
        ready = seen.get("ready", seen.get("running"))  # an older agent says running only
        state = "running" if ready else "starting" if seen.get("running") else "stopped"
    elif state == "ready":
        state = "unknown"
    backup = stored.last_finished(service.store, record.name, "backup")
    verify = stored.last_finished(service.store, record.name, "verify")
    late = overdue(service, record, time.time()) if record.state == "ready" else []
    return {
        "name": record.name,
        "engine": record.engine,
        "host": record.host,
        "port": record.port,
        "state": state,
        "size": seen.get("size"),
        "backup_size": seen.get("backup_size"),
        "apps": list(record.apps),
        "created_at": record.created_at,
        "error": problem,
        "last_backup": run_view(backup) if backup else None,
        "last_verify": run_view(verify) if verify else None,
        "schedule": schedule.Schedule.from_dict(record.schedule).to_dict(),
        "overdue": late,
    }


def run_view(run: stored.RunRecord) -> dict[str, Any]:
    return {
        "kind": run.kind,
        "at": run.started_at,
        "ok": run.ok,
        "seconds": run.seconds,
        "backup": run.backup,
        "restore_seconds": run.restore_seconds,
        "error": run.detail.get("error"),
    }


# backups and verification ----------------------------------------------------------------


def ready(service: Service, name: str) -> stored.DatabaseRecord:
    model.check_name(name)
    record = stored.get(service.store, name)
    if record.state != "ready":
        raise Conflict(
            f"database {name} is {record.state}",
            fix=f"`slipway db create {name} --host {record.host}` finishes an interrupted create",
        )
    return record


async def backup(service: Service, name: str, kind: str, who: str) -> dict[str, Any]:
    model.check_backup_type(kind)
    record = ready(service, name)
    run = stored.start_run(service.store, name, "backup")
    started = time.monotonic()
    try:
        info = await service.fleet.transport(record.host).call(
            "db.backup", _timeout=BACKUP_TIMEOUT + 30, name=name, kind=kind, timeout=BACKUP_TIMEOUT
        )
    except SlipwayError as exc:
        seconds = time.monotonic() - started
        stored.finish_run(service.store, run, False, seconds, {"error": exc.message, "type": kind})
        failed(service, record, f"{kind} backup failed: {exc.message}")
        raise
    newest = backups.newest(backups.parse_info(info, name))
    label = newest.label if newest else None
    seconds = time.monotonic() - started
    stored.finish_run(service.store, run, True, seconds, {"type": kind, "by": who}, label)
    return {"name": name, "type": kind, "backup": label, "seconds": round(seconds, 2)}


async def backup_list(service: Service, name: str) -> dict[str, Any]:
    record = stored.get(service.store, name)
    info = await service.fleet.transport(record.host).call("db.info", _timeout=60.0, name=name)
    state = backups.parse_info(info, name)
    verified: dict[str, stored.RunRecord] = {}
    for run in reversed(stored.runs(service.store, name, "verify")):
        if run.backup and run.ok is not None:
            verified[run.backup] = run  # the newest wins
    return {
        "name": name,
        "host": record.host,
        "ok": state.ok,
        "status": state.message,
        "cipher": state.cipher,
        "wal_min": state.wal_min,
        "wal_max": state.wal_max,
        "backups": [
            {
                "label": b.label,
                "type": b.type,
                "started_at": b.started_at,
                "seconds": b.seconds,
                "size": b.size,
                "stored": b.stored,
                "wal_start": b.wal_start,
                "wal_stop": b.wal_stop,
                "error": b.error,
                "verified": run_view(verified[b.label]) if b.label in verified else None,
            }
            for b in state.backups
        ],
    }


async def verify(service: Service, name: str, query: str | None, who: str) -> dict[str, Any]:
    if query is not None and (not query.strip() or len(query) > MAX_QUERY or "\0" in query):
        raise UsageError(
            f"the check query must be 1 to {MAX_QUERY} characters, without NUL",
            fix='e.g. --query "SELECT count(*) FROM orders"',
        )
    record = ready(service, name)
    run = stored.start_run(service.store, name, "verify")
    started = time.monotonic()
    try:
        result: dict[str, Any] = await service.fleet.transport(record.host).call(
            "db.verify", _timeout=VERIFY_TIMEOUT + 60, name=name, query=query,
            timeout=VERIFY_TIMEOUT,
        )  # fmt: skip
    except SlipwayError as exc:  # the host itself failed us: the verification did too
        result = {"ok": False, "error": exc.message}
    seconds = time.monotonic() - started
    detail = {"error": result.get("error"), "check": result.get("check"), "by": who}
    stored.finish_run(
        service.store, run, bool(result.get("ok")), seconds, detail,
        result.get("backup"), result.get("restore_seconds"),
    )  # fmt: skip
    if not result.get("ok"):
        failed(service, record, f"verification failed: {result.get('error')}")
    return {"name": name, "seconds": round(seconds, 2)} | result


# alerts ------------------------------------------------------------------------------------


def failed(service: Service, record: stored.DatabaseRecord, message: str) -> None:
    """An event on every app that uses the database; their `database failing` alert fires
    on its next evaluation (alerts/rules.py), through the apps' notifiers."""
    log.error("database %s: %s", record.name, message)
    for app in record.apps:
        if service.store.find_app(app):
            service.store.add_event(app, None, "database", "failed", f"{record.name}: {message}")


def failing(service: Service, app: str) -> tuple[str, ...]:
    """The databases `app` uses whose newest backup or verification failed, or which
    missed their schedule ("did not happen on time")."""
    found = []
    now = time.time()
    for record in stored.every(service.store):
        if app not in record.apps or record.state != "ready":
            continue
        failed = any(
            run is not None and run.ok is False
            for run in (stored.last_finished(service.store, record.name, kind)
                        for kind in ("backup", "verify"))
        )  # fmt: skip
        if failed or overdue(service, record, now):
            found.append(record.name)
    return tuple(found)


def last(service: Service, name: str) -> schedule.Last:
    ok, failed = stored.last_times(service.store, name)
    return schedule.Last(ok.get("full"), ok.get("diff"), ok.get("verify"), failed)


def overdue(service: Service, record: stored.DatabaseRecord, now: float) -> list[str]:
    plan = schedule.Schedule.from_dict(record.schedule)
    return schedule.overdue(plan, last(service, record.name), now, record.created_at)


def set_schedule(service: Service, name: str, changes: dict[str, float | None]) -> Any:
    """Change some of full/diff/verify (seconds; None: off); the others stay."""
    record = stored.get(service.store, model.check_name(name))
    plan = schedule.Schedule.from_dict(record.schedule).to_dict()
    for kind, every in changes.items():
        if kind not in schedule.KINDS:
            raise UsageError(f"no schedule '{kind}'", fix="full, diff or verify")
        plan[kind] = schedule.check_every(kind, every)
    stored.set_schedule(service.store, name, plan)
    return plan


# the daemon's start and `slipway down --all` -------------------------------------------------


async def resume(service: Service) -> None:
    """At start: finish creates and drops cut off by a crash; start every ready database
    again (after `slipway down --all`, or a reboot of the host)."""
    for record in stored.every(service.store):
        try:
            if record.state == "creating":
                await build(service, record.name, service.fleet.host(record.host), record.port)
            elif record.state == "dropping":
                await drop(service, record.name, "slipway (resumed)")
            elif record.state == "ready":
                await service.fleet.transport(record.host).call(
                    "db.start", _timeout=120.0, name=record.name
                )
        except SlipwayError as exc:
            log.error("database %s: %s", record.name, exc.message)


async def stop_all(service: Service) -> list[str]:
    problems = []
    for record in stored.every(service.store):
        try:
            await service.fleet.transport(record.host).call(
                "db.stop", _timeout=60.0, name=record.name
            )
        except SlipwayError as exc:
            problems.append(f"database {record.name}: {exc.message}")
    return problems
