"""`slipway audit`: who did what, when, from where, and with what outcome; `audit verify`
checks that no entry was edited, deleted or reordered. Both read every segment of the log
(audit.log.1, .2, … then audit.log), oldest first."""

from __future__ import annotations

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import clock, emit_json, escape, out, table

OUTCOME_STYLE = {"ok": "green", "accepted": "dim", "denied": "red", "failed": "red"}


@click.group(invoke_without_command=True)
@click.option("--since", metavar="AGE", help="Only entries newer than this: 15m, 24h, 7d.")
@json_option
@click.pass_context
def audit(ctx: click.Context, since: str | None, as_json: bool) -> None:
    """The audit log: every change and every denied request (admins only)."""
    if ctx.invoked_subcommand is not None:
        return
    params = {"since": since} if since else {}
    entries = Client(home_of(ctx)).get("/audit", **params)
    if as_json:
        emit_json(entries)
        return
    grid = table("#", "WHEN", "WHO", "FROM", "ACTION", "TARGET", "OUTCOME")
    for e in entries:
        style = OUTCOME_STYLE.get(e["outcome"], "")
        grid.add_row(
            str(e["seq"]),
            clock(e["at"]),
            escape(f"{e['who']} ({e['role']})"),
            escape(e["source"]),
            escape(e["action"]),
            escape(e["target"]),
            f"[{style}]{e['outcome']}[/{style}]" if style else e["outcome"],
        )
    out.print(grid)


@audit.command()
@json_option
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Check the chain: exit 1 if any entry or segment was edited, deleted or reordered."""
    result = Client(home_of(ctx)).get("/audit/verify")
    files = result.get("files", 1)
    where = f" in {files} files" if files > 1 else ""
    if as_json:
        emit_json(result)
    elif result["ok"]:
        out.print(f"[green]ok[/green]: {result['entries']} entries{where}, the chain is intact")
    else:
        out.print(f"[red]the audit log was tampered with[/red] ({result['entries']} entries):")
        for problem in result["problems"]:
            out.print(f"  [red]✗[/red] {escape(problem)}")
    if not result["ok"]:
        raise click.exceptions.Exit(1)


COMMANDS = [audit]
