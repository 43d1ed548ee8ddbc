"""`slipway tokens`: API tokens with a role (viewer, deployer, admin) for the CLI on other
hosts (SLIPWAY_TOKEN), the dashboard's login and Prometheus."""

from __future__ import annotations

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import ago, clock, emit_json, escape, out, table


@click.group()
def tokens() -> None:
    """API tokens: create, list, revoke (admins only)."""


@tokens.command()
@click.option("--name", required=True, help="Who or what uses it, e.g. ci or alice@example.")
@click.option(
    "--role",
    type=click.Choice(["viewer", "deployer", "admin"]),
    default="viewer",
    show_default=True,
)
@click.option("--expires", metavar="AGE", help="Valid for this long, e.g. 30d (default: no end).")
@json_option
@click.pass_context
def create(ctx: click.Context, name: str, role: str, expires: str | None, as_json: bool) -> None:
    """A new token; it is shown once and only its hash is kept."""
    payload = {"name": name, "role": role, "expires": expires}
    result = Client(home_of(ctx)).post("/tokens", payload)
    if as_json:
        emit_json(result)
        return
    until = f", until {clock(result['expires_at'])}" if result["expires_at"] else ""
    out.print(f"[green]token {result['id']}[/green] for {escape(name)} ({role}{until}):")
    click.echo(result["token"])
    out.print(
        "[dim]shown once: store it now (e.g. SLIPWAY_TOKEN); slipway keeps only its hash[/dim]"
    )


@tokens.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every token: id, name, role, state, last use; never the token itself."""
    data = Client(home_of(ctx)).get("/tokens")
    if as_json:
        emit_json(data)
        return
    grid = table("ID", "NAME", "ROLE", "STATE", "CREATED", "BY", "EXPIRES", "LAST USED")
    for t in data:
        grid.add_row(
            t["id"],
            escape(t["name"]),
            t["role"],
            t["state"],
            ago(t["created_at"]),
            escape(t["created_by"]),
            clock(t["expires_at"]) if t["expires_at"] else "-",
            ago(t["last_used_at"]),
        )
    out.print(grid)


@tokens.command()
@click.argument("token_id")
@json_option
@click.pass_context
def revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke TOKEN_ID at once (sessions using it end too)."""
    result = Client(home_of(ctx)).request("DELETE", f"/tokens/{token_id}")
    if as_json:
        emit_json(result)
    else:
        out.print(f"[green]revoked[/green] token {result['id']} ({escape(result['name'])})")


COMMANDS = [tokens]
