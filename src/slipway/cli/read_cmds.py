"""`slipway status`, `releases`, `ps` and `logs`: read-only views, each with --json."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from slipway.cli.canary_cmds import show_canary
from slipway.cli.client import Client
from slipway.cli.common import app_option, home_of, json_option, resolve_app
from slipway.cli.control_cmds import show_replica
from slipway.cli.output import ago, clock, duration, emit_json, escape, out, table


@click.command()
@app_option
@json_option
@click.pass_context
def status(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """The daemon, HAProxy and every app: URL, current release, deployment in flight."""
    client = Client(home_of(ctx))
    data = client.get("/status")
    if app:
        name = resolve_app(client, app)
        data["apps"] = [a for a in data["apps"] if a["name"] == name]
    data["replica"] = client.get("/control/replica")  # the control plane's copy
    if as_json:
        emit_json(data)
        return
    daemon, router = data["daemon"], data["router"]
    haproxy = f"running (pid {router['pid']})" if router["running"] else "[red]not running[/red]"
    out.print(
        f"daemon pid {daemon['pid']}, up {duration(time.time() - daemon['started_at'])}; "
        f"HAProxy {haproxy}; home {daemon['home']}"
    )
    if data["replica"]["state"] != "off":
        show_replica(data["replica"])
    if not data["apps"]:
        out.print("no apps yet: `slipway deploy` in an app's folder")
    for view in data["apps"]:
        show_app(view)


def show_app(view: dict[str, Any]) -> None:
    out.print()
    out.print(f"[bold]{view['name']}[/bold]  {view['url'] or '(no web process)'}")
    formation = " ".join(f"{p}={n}" for p, n in view["formation"].items())
    counts = ", ".join(f"{n} {role}" for role, n in sorted(view["instances"].items()))
    out.print(
        f"  release   {view['current_release'] or '-'}   formation {formation or '-'}"
        f"   instances {counts or 'none'}"
    )
    if view.get("warm_release"):
        left = (view["warm_until"] or 0) - time.time()
        out.print(
            f"  warm      {view['warm_release']} for {duration(left)} more "
            "(rollback is a traffic switch)"
        )
    if view.get("canary"):
        show_canary(view["canary"])
    active = view.get("deployment")
    if active:
        out.print(
            f"  [cyan]deploying[/cyan] #{active['id']} {active['kind']} to "
            f"{active['to_release']}: step {active['state']} (by {active['who']}, "
            f"{ago(active['started_at'])})"
        )
    last = view.get("last_deployment")
    if last and not active:
        colour = "green" if last["outcome"] == "succeeded" else "red"
        out.print(
            f"  last      #{last['id']} {last['kind']} to {last['to_release']}: "
            f"[{colour}]{last['outcome']}[/{colour}] {ago(last['finished_at'])}"
        )
        if last.get("error"):
            out.print(f"            {last['error'].get('message')}")


@click.command()
@app_option
@json_option
@click.pass_context
def releases(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """An app's releases, newest first."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    data = client.get(f"/apps/{name}/releases")
    if as_json:
        emit_json(data)
        return
    grid = table("RELEASE", "STATUS", "CREATED", "GIT", "CONFIG", "BUILD", "GATES", "NOTE")
    for r in data:
        note = "[green]current[/green]" if r["current"] else ""
        if r["warm_until"]:
            note = f"warm {duration(r['warm_until'] - time.time())}"
        if not r["on_disk"] and r["status"] == "ready":
            note = "pruned"
        if r["error"]:
            note = f"[red]{r['error'][:60]}[/red]"
        status_text = r["status"] if r["status"] != "failed" else "[red]failed[/red]"
        grid.add_row(
            r["id"],
            status_text,
            ago(r["created_at"]),
            r["git_sha"] or "-",
            r["config_hash"],
            duration(r["build_seconds"]),
            gates_note(r["gates"], r["skipped_gates"]),
            note,
        )
    out.print(grid)


def gates_note(gates: dict[str, str], skipped: dict[str, str]) -> str:
    """e.g. "4 passed", "failed: secrets", "skipped: code (hotfix, reviewed)"."""
    if not gates:
        return "-"
    failed = [g for g, status in gates.items() if status == "failed"]
    if failed:
        return f"[red]failed: {', '.join(failed)}[/red]"
    parts = [f"{sum(s == 'passed' for s in gates.values())} passed"]
    parts += [f"[yellow]skipped: {g} ({escape(reason)})[/yellow]" for g, reason in skipped.items()]
    unchecked = [g for g, s in gates.items() if s == "skipped" and g not in skipped]
    if unchecked:
        parts.append(f"[yellow]not checked: {', '.join(unchecked)}[/yellow]")
    return "; ".join(parts)


@click.command()
@app_option
@json_option
@click.pass_context
def ps(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """Running instances: release, process, pid, port, health and share of traffic."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app, required=False)
    data = client.get(f"/apps/{name}/instances" if name else "/instances")
    if as_json:
        emit_json(data)
        return
    grid = table(
        "APP",
        "INSTANCE",
        "HOST",
        "RELEASE",
        "ROLE",
        "STATE",
        "PID",
        "PORT",
        "TRAFFIC",
        "CHECK",
        "RESTARTS",
        "UP",
    )
    for i in data:
        traffic = f"{i['traffic_percent']:g}%" if i["traffic_percent"] is not None else "-"
        grid.add_row(
            i["app"],
            i["id"],
            i.get("host", "local"),
            i["release"],
            i["role"],
            i["state"],
            str(i["pid"] or "-"),
            str(i["port"] or "-"),
            traffic,
            i["check"] or "-",
            str(i["restarts"]),
            duration(i["uptime_seconds"]),
        )
    out.print(grid if data else "no instances running")


@click.command()
@app_option
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing new lines.")
@click.option("--release", help="Only this release.")
@click.option("--process", help="Only this process type (web, worker, …).")
@click.option("--instance", help="Only this instance.")
@click.option("-n", "--lines", default=100, show_default=True, help="How many past lines.")
@click.option("--since", metavar="AGE", help="Only lines of the last AGE (15m, 1h, 2d).")
@click.option("--grep", metavar="REGEX", help="Only lines matching this regular expression.")
@json_option
@click.pass_context
def logs(
    ctx: click.Context,
    app: str | None,
    follow_: bool,
    release: str | None,
    process: str | None,
    instance: str | None,
    lines: int,
    since: str | None,
    grep: str | None,
    as_json: bool,
) -> None:
    """Output of an app's instances, merged by time."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    params = {"lines": str(lines), "follow": "1" if follow_ else "0"}
    filters = {"release": release, "process": process, "instance": instance}
    params |= {k: v for k, v in (filters | {"since": since, "grep": grep}).items() if v}
    try:
        for line in client.stream(f"/apps/{name}/logs", **params):
            if as_json:
                sys.stdout.write(json.dumps(line) + "\n")
            else:
                stream = "" if line["stream"] == "out" else f" [{line['stream']}]"
                sys.stdout.write(
                    f"{clock(line['time'])} {line['release']} {line['instance']}"
                    f"{stream} | {line['message']}\n"
                )
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass


COMMANDS = [status, releases, ps, logs]
