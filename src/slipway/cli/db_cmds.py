"""`slipway db`: managed PostgreSQL databases on the fleet's hosts, with their backups."""

from __future__ import annotations

import sys
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import ago, clock, duration, emit_json, escape, out, table
from slipway.config.durations import format_duration, parse_duration
from slipway.errors import UsageError

LONG = 6 * 3600 + 120  # a backup or a verification of a large database takes its time


def size(value: int | None) -> str:
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


def run_cell(run: dict[str, Any] | None) -> str:
    if not run:
        return "-"
    if run["ok"]:
        return f"[green]ok[/green] {ago(run['at'])}"
    return f"[red]FAILED[/red] {ago(run['at'])}: {escape(str(run.get('error') or ''))[:80]}"


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def db(ctx: click.Context, as_json: bool) -> None:
    """Managed PostgreSQL databases, with encrypted backups proven by restoring them."""
    if ctx.invoked_subcommand is not None:
        return
    views: list[dict[str, Any]] = Client(home_of(ctx)).get("/databases")
    if as_json:
        emit_json(views)
        return
    if not views:
        out.print("no databases (create one: slipway db create NAME [--host HOST] --app APP)")
        return
    grid = table("database", "host", "port", "state", "size", "backups", "apps",
                 "last backup", "last verification")  # fmt: skip
    for view in views:
        color = {"running": "green", "creating": "yellow", "starting": "yellow"}.get(
            view["state"], "red"
        )
        state = f"[{color}]{view['state']}[/{color}]"
        if view.get("error"):
            state += f" ({escape(view['error'])[:60]})"
        if view.get("overdue"):
            state += f" [red]late: {', '.join(view['overdue'])}[/red]"
        grid.add_row(
            view["name"], view["host"], str(view["port"]), state, size(view["size"]),
            size(view["backup_size"]), ",".join(view["apps"]) or "-",
            run_cell(view["last_backup"]), run_cell(view["last_verify"]),
        )  # fmt: skip
    out.print(grid)


@db.command()
@click.argument("name")
@click.option("--host", default="local", show_default=True, help="The fleet host it runs on.")
@click.option(
    "--app", "apps", multiple=True, help="An app that gets DATABASE_URL as a secret (repeat)."
)
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, host: str, apps: tuple[str, ...], as_json: bool) -> None:
    """Create database NAME: PostgreSQL 15 on HOST, a role and a database named NAME with a
    generated password, WAL archiving and a first full backup (encrypted). Run it again
    to finish a create that was cut off."""
    client = Client(home_of(ctx), timeout=960)
    view = client.post("/databases", {"name": name, "host": host, "apps": list(apps)})
    if as_json:
        emit_json(view)
        return
    out.print(
        f"[green]database {name} is running[/green] on {view['host']} port {view['port']}"
        + (f"; DATABASE_URL is a secret of {', '.join(view['apps'])}" if view["apps"] else "")
    )
    if not apps:
        out.print(f"give it to an app: slipway db attach {name} --app APP")


@db.command()
@click.argument("name")
@click.option("--app", required=True, help="The app that gets the URL as a secret.")
@click.option("--as", "variable", default="DATABASE_URL", show_default=True,
              help="The secret's (environment variable's) name.")  # fmt: skip
@click.pass_context
def attach(ctx: click.Context, name: str, app: str, variable: str) -> None:
    """Give APP the database's URL (with its password) as an encrypted secret."""
    done = Client(home_of(ctx), timeout=60).post(
        f"/databases/{name}/attach", {"app": app, "variable": variable}
    )
    redeploy = f" (deployment {done['deployment']} runs it)" if done["deployment"] else ""
    out.print(f"{app} gets {variable} from database {name}{redeploy}")


@db.command()
@click.argument("name")
@click.option("--yes", "confirmed", default=None, metavar="NAME",
              help="Confirm without a prompt by giving the name again.")  # fmt: skip
@click.pass_context
def drop(ctx: click.Context, name: str, confirmed: str | None) -> None:
    """Stop database NAME and delete its data AND its backups, for good."""
    if confirmed is None:
        if not sys.stdin.isatty():
            raise UsageError(
                f"dropping {name} deletes its data and every backup: confirm with its name",
                fix=f"slipway db drop {name} --yes {name}",
            )
        confirmed = click.prompt(
            f"This deletes database {name}, its data and all its backups. Type its name"
        )
    if confirmed != name:
        raise UsageError(f'"{confirmed}" is not "{name}": nothing was dropped', fix="type it again")
    Client(home_of(ctx), timeout=180).request("DELETE", f"/databases/{name}", {"confirm": name})
    out.print(f"database {name} dropped")


@db.command()
@click.argument("name")
@click.option("--type", "kind", type=click.Choice(["full", "diff", "incr"]), default="full",
              show_default=True)  # fmt: skip
@json_option
@click.pass_context
def backup(ctx: click.Context, name: str, kind: str, as_json: bool) -> None:
    """Take a backup of NAME now."""
    done = Client(home_of(ctx), timeout=LONG).post(f"/databases/{name}/backups", {"type": kind})
    if as_json:
        emit_json(done)
        return
    out.print(f"[green]{kind} backup {done['backup']}[/green] of {name} in {done['seconds']:.1f}s")


@db.command()
@click.argument("name")
@json_option
@click.pass_context
def backups(ctx: click.Context, name: str, as_json: bool) -> None:
    """NAME's backups (pgBackRest's catalogue) with the last verification of each."""
    found = Client(home_of(ctx), timeout=90).get(f"/databases/{name}/backups")
    if as_json:
        emit_json(found)
        return
    grid = table("backup", "type", "started", "took", "size", "stored", "WAL", "verified")
    for item in found["backups"]:
        grid.add_row(
            item["label"], item["type"], clock(item["started_at"]), duration(item["seconds"]),
            size(item["size"]), size(item["stored"]),
            f"{item['wal_start']}..{item['wal_stop']}", run_cell(item["verified"]),
        )  # fmt: skip
    out.print(grid)
    out.print(
        f"repository: {escape(found['status'])}, encryption {found['cipher']}, WAL archived "
        f"{found['wal_min']}..{found['wal_max']}"
    )


def every(kind: str, value: str | None) -> dict[str, float | None]:
    if value is None:
        return {}
    if value == "off":
        return {kind: None}
    try:
        return {kind: parse_duration(value)}
    except ValueError as exc:
        raise UsageError(f"--{kind}: {exc}", fix=f"e.g. --{kind} 1d, or --{kind} off") from None


def schedule_text(plan: dict[str, float | None]) -> str:
    return ", ".join(
        f"{kind} every {format_duration(value)}" if value else f"{kind} off"
        for kind, value in plan.items()
    )


@db.command()
@click.argument("name")
@click.option("--full", help="Time between full backups, e.g. 7d; off: none scheduled.")
@click.option("--diff", help="Time between differential backups, e.g. 1d; off.")
@click.option("--verify", help="Time between verifications, e.g. 1d; off.")
@click.pass_context
def schedule(
    ctx: click.Context, name: str, full: str | None, diff: str | None, verify: str | None
) -> None:
    """Show or change when NAME's backups and verifications run (default: full every 7d,
    diff and verify every 1d). A run later than its interval plus a grace (half of it, at
    least 10m) fires the database alert."""
    client = Client(home_of(ctx))
    changes = every("full", full) | every("diff", diff) | every("verify", verify)
    if changes:
        plan = client.request("PUT", f"/databases/{name}/schedule", changes)
    else:
        plan = client.get(f"/databases/{name}")["schedule"]
    out.print(f"{name}: {schedule_text(plan)}")


@db.command()
@click.argument("name")
@click.option("--query", default=None, help="A check query instead of the row counts.")
@json_option
@click.pass_context
def verify(ctx: click.Context, name: str, query: str | None, as_json: bool) -> None:
    """Restore NAME's newest backup into a scratch cluster, check it, then remove it."""
    result = Client(home_of(ctx), timeout=LONG).post(f"/databases/{name}/verify", {"query": query})
    if as_json:
        emit_json(result)
    elif result["ok"]:
        check = result.get("check") or {}
        tables = check.get("tables")
        said = (
            f"{len(tables)} tables, {sum(tables.values())} rows"
            if tables is not None
            else f"{len(check.get('output', []))} lines"
        )
        out.print(
            f"[green]backup {result['backup']} verified[/green]: restored in "
            f"{result['restore_seconds']:.1f}s, {said} ({result['seconds']:.1f}s in all)"
        )
    else:
        out.print(f"[red]verification of {name} FAILED[/red]: {escape(str(result.get('error')))}")
    if not result["ok"]:
        ctx.exit(1)


COMMANDS = [db]
