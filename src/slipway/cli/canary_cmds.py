"""`slipway promote`, `abort`, `pause`, `resume` and `analysis`: a canary by hand, and why
the judge decided what it did."""

from __future__ import annotations

import time
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, home_of, json_option, resolve_app
from slipway.cli.output import clock, emit_json, escape, out, table

HELP = {
    "promote": "Promote the canary in flight now: all traffic to the new release.",
    "abort": "Abort the deployment in flight: the stable release takes all traffic back.",
    "pause": "Hold the canary at its current step (the judge keeps watching).",
    "resume": "Let a paused canary continue through its steps.",
}


def _command(name: str) -> click.Command:
    @click.command(name=name, help=HELP[name])
    @app_option
    @json_option
    @click.pass_context
    def run(ctx: click.Context, app: str | None, as_json: bool) -> None:
        client = Client(home_of(ctx))
        app_name = resolve_app(client, app)
        deployment = client.post(f"/apps/{app_name}/{name}")
        if as_json:
            emit_json({"deployment": deployment})
            return
        out.print(
            f"{name} sent to deployment #{deployment['id']} of {app_name} "
            f"({deployment['to_release']}); follow it with `slipway status`"
        )

    return run


def show_canary(canary: dict[str, Any]) -> None:
    """The live split and the judge's latest evidence (used by `slipway status`)."""
    steps = " → ".join(f"{s:g}%" for s in canary["steps"])
    paused = " [yellow](paused)[/yellow]" if canary["paused"] else ""
    out.print(
        f"  canary    {canary['candidate']} gets {canary['share']:g}% "
        f"(step {canary['step']} of {len(canary['steps'])}: {steps}){paused}; "
        f"{canary['stable']} the rest, for {time.time() - canary['step_started']:.0f}s"
    )
    verdict = canary.get("verdict")
    if verdict:
        show_evidence(verdict, indent="            ")


def show_evidence(verdict: dict[str, Any], indent: str = "  ") -> None:
    colour = {"rollback": "red", "promote": "green"}.get(verdict["decision"], "cyan")
    reason = verdict["reason"].removeprefix(f"{verdict['decision']}: ")
    out.print(f"{indent}[{colour}]{verdict['decision']}[/{colour}]: {escape(reason)}")
    data = verdict["evidence"]["verdict"]
    for check in data["checks"]:
        mark = "[red]✗[/red]" if check["regression"] else "·"
        out.print(f"{indent}{mark} {escape(check['text'])}")
    for result in verdict["evidence"].get("prometheus", []):
        mark = "[red]✗[/red]" if result["failed"] else "·"
        value = "no data" if result["value"] is None else f"{result['value']:g}"
        out.print(
            f"{indent}{mark} prometheus '{result['name']}': {value} "
            f"(fails {result['direction']} {result['threshold']:g}) {result['note']}"
        )


@click.command()
@click.argument("deployment", required=False, type=int)
@app_option
@click.option("--all", "show_all", is_flag=True, help="Every verdict, not only the changes.")
@json_option
@click.pass_context
def analysis(
    ctx: click.Context, deployment: int | None, app: str | None, show_all: bool, as_json: bool
) -> None:
    """Every verdict of a canary with its numbers (default: the app's latest canary)."""
    client = Client(home_of(ctx))
    if deployment is None:
        data = client.get(f"/apps/{resolve_app(client, app)}/analysis")
    else:
        data = client.get(f"/deployments/{deployment}/analysis")
    if as_json:
        emit_json(data)
        return
    dep = data["deployment"]
    out.print(
        f"[bold]deployment #{dep['id']}[/bold]: canary of {dep['to_release']} against "
        f"{dep['from_release']}, {dep['outcome'] or 'in progress'}"
    )
    verdicts = data["verdicts"]
    grid = table("TIME", "STEP", "SHARE", "DECISION", "REASON")
    previous = None
    for index, verdict in enumerate(verdicts):
        key = (verdict["step"], verdict["decision"])
        last = index == len(verdicts) - 1
        if show_all or key != previous or last:
            grid.add_row(
                clock(verdict["at"]),
                str(verdict["step"]),
                f"{verdict['share']:g}%",
                verdict["decision"],
                verdict["reason"],
            )
        previous = key
    out.print(grid if verdicts else "no verdicts yet")
    if verdicts:
        out.print("\n[bold]latest evidence[/bold]")
        show_evidence(verdicts[-1])
    if dep.get("error"):
        out.print(f"\n[red]{dep['error']['message']}[/red]")


COMMANDS = [*(_command(name) for name in HELP), analysis]
