"""`slipway hosts`: the fleet. One host (this one) until others are added."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.markup import escape

from slipway.cli.client import Client
from slipway.cli.common import follow, home_of, json_option
from slipway.cli.output import emit_json, out, table
from slipway.errors import UsageError

ROLE = click.Choice(["app", "lb"])


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def hosts(ctx: click.Context, as_json: bool) -> None:
    """The fleet's hosts: roles, agent, reachability, load, instances."""
    if ctx.invoked_subcommand is not None:
        return
    views: list[dict[str, Any]] = Client(home_of(ctx)).get("/hosts")
    if as_json:
        emit_json(views)
        return
    grid = table("host", "address", "roles", "agent", "state", "load", "instances")
    for view in views:
        state = (
            "[green]ready[/green]"
            if view["reachable"]
            else f"[red]{escape(view['error'] or 'down')}[/red]"
        )
        load = "-" if view["load"] is None else f"{view['load']:.2f}/{view['cores']}"
        grid.add_row(
            view["name"],
            view["address"],
            ",".join(view["roles"]) or "-",
            view["agent"] or "-",
            state,
            load,
            str(view["instances"]),
        )
    out.print(grid)


@hosts.command()
@click.argument("name")
@click.option("--address", required=True, help="Its private address: instances listen there.")
@click.option("--role", "roles", type=ROLE, multiple=True, required=True, help="app and/or lb.")
@click.option(
    "--key", type=click.Path(dir_okay=False), help="SSH private key (default: ssh-agent)."
)
@click.option("--fingerprint", help="Its SSH host key, SHA256:… (default: shown, to confirm).")
@click.option("--ssh-address", help="Where to reach it over SSH, if not --address.")
@click.option("--port", default=22, show_default=True, help="SSH port.")
@click.option("--user", default="root", show_default=True, help="SSH user.")
@click.option("--remote-home", default="/var/lib/slipway", show_default=True, help="Agent's home.")
@click.option("--python", default="/usr/bin/python3", show_default=True, help="Its Python 3.11+.")
@click.option("--yes", is_flag=True, help="Trust the host key it offers without asking.")
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    name: str,
    address: str,
    roles: tuple[str, ...],
    key: str | None,
    fingerprint: str | None,
    ssh_address: str | None,
    port: int,
    user: str,
    remote_home: str,
    python: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Add a host: pin its host key, check it, install and start its agent."""
    client = Client(home_of(ctx), timeout=300)
    if fingerprint is None:
        offered = client.get("/hosts/scan", address=ssh_address or address, port=str(port))
        fingerprint = str(offered["fingerprint"])
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    f"{name} offers host key {fingerprint}",
                    fix="check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)"
                    " and pass --fingerprint, or --yes to trust it",
                )
            click.confirm(f"{name} offers host key {fingerprint}. Trust it?", abort=True)
    request = {
        "name": name,
        "address": address,
        "roles": list(roles),
        "fingerprint": fingerprint,
        "ssh_address": ssh_address,
        "port": port,
        "user": user,
        "key": key,
        "home": remote_home,
        "python": python,
    }
    added = client.post("/hosts/add", request)
    if as_json:
        emit_json(added)
        return
    facts = added["facts"]
    out.print(
        f"[green]{name} is ready[/green]: agent {added['agent']}, Python {facts.get('python')}, "
        f"{facts.get('cores')} cores"
    )


@hosts.command()
@click.argument("name")
@click.argument("roles", nargs=-1, type=ROLE)
@click.pass_context
def roles(ctx: click.Context, name: str, roles: tuple[str, ...]) -> None:
    """Set a host's roles (none: it takes no new instances and leaves the lb tier)."""
    changed = Client(home_of(ctx)).request("PUT", f"/hosts/{name}", {"roles": list(roles)})
    out.print(f"{name}: {','.join(changed['roles']) or 'no roles'}")


@hosts.command()
@click.argument("name")
@click.pass_context
def upgrade(ctx: click.Context, name: str) -> None:
    """Install this slipway's agent on the host again (its instances run on)."""
    upgraded = Client(home_of(ctx), timeout=300).post(f"/hosts/{name}/upgrade")
    out.print(f"[green]{name}[/green] runs agent {upgraded['agent']}")


@hosts.command()
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Drain a host, then remove it: its roles go, each app's instances move to other hosts
    (with the usual zero-downtime path), then it leaves the fleet."""
    client = Client(home_of(ctx), timeout=300)
    client.request("PUT", f"/hosts/{name}", {"roles": []})
    for app in sorted({i["app"] for i in client.get("/instances") if i.get("host") == name}):
        status = client.get(f"/apps/{app}")
        counts = dict(status["formation"])
        deployment = client.post(f"/apps/{app}/scale", {"counts": counts})
        follow(client, deployment, False, f"moving {app} off {name}")
    deadline = time.monotonic() + 60
    while any(i.get("host") == name for i in client.get("/instances")):
        if time.monotonic() > deadline:
            raise UsageError(f"instances still on {name} after 60s", fix="see `slipway ps`")
        time.sleep(0.5)
    client.request("DELETE", f"/hosts/{name}")
    out.print(f"[green]{name} left the fleet[/green]")


COMMANDS = [hosts]
