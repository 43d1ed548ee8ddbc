"""`slipway hosts`: the fleet. One host (this one) until others are added."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import follow, home_of, json_option
from slipway.cli.output import emit_json, escape, out, table
from slipway.config.durations import parse_size
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
    grid = table(
        "host", "address", "roles", "agent", "state", "load", "instances", "room", "firewall"
    )
    for view in views:
        state = "[green]ready[/green]"
        if not view["reachable"]:
            # down: the lb hosts see none of its instances up either; unreachable: cut off
            # from the control plane only, or for a few seconds so far
            color = "red" if view.get("state") == "down" else "yellow"
            what = view.get("state") or "unreachable"
            state = f"[{color}]{what}: {escape(view['error'] or '')}[/{color}]"
        load = "-" if view["load"] is None else f"{view['load']:.2f}/{view['cores']}"
        replica = view.get("replica")
        if replica:  # the control plane's copy is kept there
            state += f", {replica_note(replica)}"
        grid.add_row(
            view["name"],
            view["address"],
            ",".join(view["roles"]) or "-",
            view["agent"] or "-",
            state,
            load,
            str(view["instances"]),
            room_cell(view),
            firewall_cell(view.get("firewall")),
        )
    out.print(grid)
    vip: dict[str, Any] = Client(home_of(ctx)).get("/fleet/vip")
    if vip["address"]:
        out.print(vip_line(vip))


def room_cell(view: dict[str, Any]) -> str:
    """What the host's instances take of what slipway may place there: cpu, then memory."""
    used, total = view.get("used"), view.get("capacity")
    if not used or not total:
        return "-"
    gib = 1024**3
    text = (
        f"{used['cpu']:.1f}/{total['cpu']:g} cpu, "
        f"{used['memory'] / gib:.1f}/{total['memory'] / gib:.1f} GiB"
    )
    full = used["cpu"] >= total["cpu"] - 1e-9 or used["memory"] >= total["memory"]
    return f"[yellow]{text} (full)[/yellow]" if full else text


def firewall_cell(firewall: dict[str, Any] | None) -> str:
    if not firewall or firewall.get("ok") is None:
        return "-"
    if firewall["ok"]:
        public = firewall.get("public") or {}
        edge = f", public {', '.join(sorted(public))} by [edge] allow" if public else ""
        return f"[green]ok[/green] ({len(firewall['ports'])} ports{edge})"
    return f"[red]{escape(str(firewall.get('problem')))}[/red]"


def vip_line(vip: dict[str, Any]) -> str:
    holders = vip["holders"]
    if len(holders) == 1:
        held = f"held by [green]{holders[0]}[/green]"
    elif holders:
        held = f"[red]held by {', '.join(holders)} at once[/red]"
    else:
        held = "[red]held by no lb host[/red]"
    standby = sorted(n for n, s in vip["hosts"].items() if s.get("running") and not s["holds"])
    return (
        f"virtual address {vip['address']}: {held}"
        + (f"; standby {', '.join(standby)}" if standby else "")
        + f" (takes over in ~{vip['takeover_seconds']}s)"
    )


@hosts.command("vip")
@click.argument("address", required=False)
@click.option("--router-id", default=51, show_default=True, help="VRRP router id (1-255).")
@click.option(
    "--advert", default=0.5, show_default=True, help="Seconds between VRRP advertisements."
)
@click.option("--remove", is_flag=True, help="Stop keepalived on the lb hosts: no address.")
@json_option
@click.pass_context
def vip_command(
    ctx: click.Context,
    address: str | None,
    router_id: int,
    advert: float,
    remove: bool,
    as_json: bool,
) -> None:
    """The lb tier's virtual address (keepalived on every lb host): set, show, or --remove.
    ADDRESS is a free address in the lb hosts' network with its prefix, e.g. 10.0.0.100/24."""
    client = Client(home_of(ctx), timeout=60)
    if remove:
        view = client.request("DELETE", "/fleet/vip")
    elif address:
        body = {"address": address, "router_id": router_id, "advert": advert}
        view = client.request("PUT", "/fleet/vip", body)
    else:
        view = client.get("/fleet/vip")
    if as_json:
        emit_json(view)
    elif not view["address"]:
        out.print("no virtual address (set one: slipway hosts vip 10.0.0.100/24)")
    else:
        out.print(vip_line(view))
        for name, error in view.get("failed", {}).items():
            out.print(f"[red]{name}: {escape(error)}[/red]")


def replica_note(replica: dict[str, Any]) -> str:
    if replica["state"] == "failing":
        return f"[red]control replica failing: {escape(replica['error'] or '')}[/red]"
    behind = replica.get("behind")
    return "control replica" + ("" if behind is None else f" ({behind:.1f}s behind)")


@hosts.command()
@click.argument("name")
@click.option("--address", required=True, help="Its private address: instances listen there.")
@click.option(
    "--role",
    "roles",
    type=ROLE,
    multiple=True,
    help="app and/or lb (none: it runs nothing, e.g. it keeps the control plane's replica).",
)
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
@click.option(
    "--cpus",
    type=click.FloatRange(min=0, min_open=True, max=1024),
    default=None,
    help="cores slipway may place instances on (default: all the host has)",
)
@click.option(
    "--memory",
    default=None,
    metavar="SIZE",
    help='memory slipway may place instances in, e.g. "6GB" (default: 90% of it)',
)
@click.option("--reset", is_flag=True, help="back to what the host has")
@click.pass_context
def capacity(
    ctx: click.Context, name: str, cpus: float | None, memory: str | None, reset: bool
) -> None:
    """Set what slipway may place on a host (e.g. to leave room for a database there)."""
    if reset == (cpus is not None or memory is not None):
        raise UsageError(
            "give --cpus and/or --memory, or --reset (not both)",
            fix=f"e.g. `slipway hosts capacity {name} --cpus 2 --memory 4GB`",
        )
    size = None
    if memory is not None:
        try:
            size = parse_size(memory)
        except ValueError as exc:
            raise UsageError(str(exc), where="--memory") from None
    view = Client(home_of(ctx)).request(
        "PUT", f"/hosts/{name}/capacity", {"cpu": cpus, "memory": size}
    )
    out.print(f"{name}: room {room_cell(view)}")


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
    if client.get("/control/replica").get("host") == name:  # refused before anything moves
        raise UsageError(
            f"host {name} keeps the control plane's replica",
            fix="`slipway control replicate --to OTHER` (or `--off`) first",
        )
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
