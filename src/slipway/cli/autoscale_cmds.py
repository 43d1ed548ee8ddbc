"""`slipway autoscale`: what the autoscaler decided and why, and giving it a process type
back after a manual `slipway scale` paused it."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, home_of, json_option, resolve_app
from slipway.cli.output import ago, clock, emit_json, escape, out, table


@click.group(invoke_without_command=True)
@app_option
@click.option("--history", "history", type=click.IntRange(0, 2000), default=0,
              metavar="N", help="Also the last N recorded decisions.")  # fmt: skip
@json_option
@click.pass_context
def autoscale(ctx: click.Context, app: str | None, history: int, as_json: bool) -> None:
    """Autoscaled process types: signal, target, count and the last decision.

    With --history N, also the last N decisions recorded (each change of a count, and each
    new reason it could not change)."""
    if ctx.invoked_subcommand is not None:
        return
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    data: dict[str, Any] = client.get(f"/apps/{name}/autoscale", history=str(history))
    if as_json:
        emit_json(data)
        return
    if not data["processes"]:
        out.print(f"{name} autoscales nothing: see [autoscale.web] in docs/config.md")
    grid = table("process", "instances", "bounds", "signal", "now", "target", "state")
    for view in data["processes"]:
        policy, last = view["policy"], view["last"]
        observed = "-" if not last or last["observed"] is None else f"{last['observed']:.3g}"
        state = escape(view["result"])
        if view["paused"]:
            paused = view["paused"]
            state = (
                f"[yellow]paused by {escape(paused['who'])}'s scale to {paused['count']} "
                f"{ago(paused['at'])}[/yellow]"
            )
        elif view["short"]:
            state = f"[red]{escape(view['short'])}[/red]"
        grid.add_row(
            view["process"], str(view["current"]), f"{policy['min']}–{policy['max']}",
            policy["signal"], observed, f"{policy['target']:g}", state,
        )  # fmt: skip
    if data["processes"]:
        out.print(grid)
    if history:
        rows = table("time", "process", "signal", "instances", "result", "why")
        for d in reversed(data["history"]):
            rows.add_row(clock(d["at"]), d["process"], f"{d['observed'] or 0:.3g}/{d['target']:g}",
                         f"{d['current']} → {d['desired']}", escape(d["result"]),
                         escape(d["reason"]))  # fmt: skip
        out.print(rows if data["history"] else "no decision recorded yet")


@autoscale.command()
@click.argument("process")
@app_option
@click.pass_context
def resume(ctx: click.Context, process: str, app: str | None) -> None:
    """Give PROCESS back to the autoscaler after a manual `slipway scale`."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    done = client.post(f"/apps/{name}/autoscale/resume", {"process": process})
    what = "resumed" if done["was_paused"] else "was not paused"
    out.print(f"autoscaling of {process} ({name}) {what}")


COMMANDS = [autoscale]
