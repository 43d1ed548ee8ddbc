"""`slipway secrets`: encrypted values given to the app as environment variables.

A value is read from stdin (piped) or a hidden prompt, never from the command line, where it
would land in the shell history and in `ps` for every user to see."""

from __future__ import annotations

import sys
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, follow, home_of, json_option, resolve_app
from slipway.cli.output import ago, emit_json, escape, out, table
from slipway.errors import UsageError


@click.group()
def secrets() -> None:
    """Encrypted secrets: set, unset, list, get --reveal, rotate-key."""


def read_value(name: str) -> str:
    if sys.stdin.isatty():
        value: str = click.prompt(f"value of {name}", hide_input=True, confirmation_prompt=True)
        return value
    data = sys.stdin.read()
    # One trailing newline is dropped: `echo value |` adds it. A value that must end with a
    # newline is piped with one more.
    return data.removesuffix("\n")


@secrets.command("set")
@click.argument("name")
@app_option
@click.option("--detach", is_flag=True, help="Do not wait for the new release to deploy.")
@json_option
@click.pass_context
def set_(ctx: click.Context, name: str, app: str | None, detach: bool, as_json: bool) -> None:
    """Set secret NAME from stdin or a prompt (never an argument); a new version.

    If the serving release uses NAME, a new release with the new value is deployed."""
    if "=" in name:
        raise UsageError(
            "give the name only; the value is read from stdin or a prompt",
            fix=f'printf %s "$VALUE" | slipway secrets set {name.split("=")[0]}',
        )
    client = Client(home_of(ctx))
    app_name = resolve_app(client, app)
    value = read_value(name)
    result = client.request("PUT", f"/apps/{app_name}/secrets/{name}", {"value": value})
    _report(client, result, as_json, detach, f"{name} set (version {result['version']})")


@secrets.command("unset")
@click.argument("name")
@app_option
@json_option
@click.pass_context
def unset(ctx: click.Context, name: str, app: str | None, as_json: bool) -> None:
    """Remove secret NAME (its old versions stay for releases that ran with them)."""
    client = Client(home_of(ctx))
    app_name = resolve_app(client, app)
    result = client.request("DELETE", f"/apps/{app_name}/secrets/{name}")
    _report(client, result, as_json, True, f"{name} unset (version {result['version']})")


def _report(client: Client, result: dict[str, Any], as_json: bool, detach: bool, done: str) -> None:
    deployment = result.get("deployment")
    if as_json and (detach or not deployment):
        emit_json(result)
        return
    if not as_json:
        out.print(f"[green]{done}[/green]")
    if deployment and not detach:
        follow(client, deployment, as_json, f"deploying {deployment['to_release']} with it")
    elif deployment:
        out.print(f"deploying {deployment['to_release']} (deployment #{deployment['id']})")


@secrets.command("list")
@app_option
@json_option
@click.pass_context
def list_(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """Names, versions, who set them and when; never values."""
    client = Client(home_of(ctx))
    data = client.get(f"/apps/{resolve_app(client, app)}/secrets")
    if as_json:
        emit_json(data)
        return
    grid = table("NAME", "VERSION", "STATE", "BY", "WHEN")
    for s in data:
        state = "set" if s["set"] else "[dim]unset[/dim]"
        grid.add_row(
            s["name"], str(s["version"]), state, escape(s["created_by"]), ago(s["created_at"])
        )
    out.print(grid)


@secrets.command("get")
@click.argument("name")
@app_option
@click.option("--reveal", is_flag=True, help="Required: print the value (admins only).")
@click.pass_context
def get(ctx: click.Context, name: str, app: str | None, reveal: bool) -> None:
    """Print the current value of NAME (with --reveal; recorded in the audit log)."""
    if not reveal:
        raise UsageError(
            "printing a secret needs --reveal", fix=f"slipway secrets get {name} --reveal"
        )
    client = Client(home_of(ctx))
    result = client.post(f"/apps/{resolve_app(client, app)}/secrets/{name}/reveal")
    # Exactly the value when piped (round-trips); a newline after it on a terminal.
    click.echo(result["value"], nl=sys.stdout.isatty())


@secrets.command("rotate-key")
@json_option
@click.pass_context
def rotate_key(ctx: click.Context, as_json: bool) -> None:
    """A new encryption key; every stored value is re-encrypted with it."""
    result = Client(home_of(ctx)).post("/secrets/rotate-key")
    if as_json:
        emit_json(result)
        return
    out.print(
        f"[green]rotated[/green] key {result['old_key']} → {result['new_key']}: "
        f"{result['reencrypted']} value(s) re-encrypted in {result['seconds']:.2f}s"
    )


COMMANDS = [secrets]
