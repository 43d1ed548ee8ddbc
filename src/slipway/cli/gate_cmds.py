"""`slipway check` (every gate, nothing deployed) and `slipway gates` (a release's results)."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.app_cmds import app_dir_option, git_option, start_deploy
from slipway.cli.client import Client
from slipway.cli.common import app_option, follow, home_of, json_option, resolve_app
from slipway.cli.output import GATE_STATUS, emit_json, escape, out, table


@click.command()
@app_dir_option
@git_option
@json_option
@click.pass_context
def check(ctx: click.Context, app_dir: str, git_rev: str | None, as_json: bool) -> None:
    """Build a release and run every gate on it, without deploying it.

    The performance gate starts the candidate's instances beside the serving ones, measures
    both, and stops them again; no user request reaches the candidate."""
    client, deployment = start_deploy(ctx, app_dir, git_rev, check=True)
    title = f"checking {deployment['app']} {deployment['to_release']}"
    try:
        follow(client, deployment, as_json, title)
    finally:
        if not as_json:
            path = f"/apps/{deployment['app']}/releases/{deployment['to_release']}/gates"
            show_gates(client.get(path), details=False)


@click.command()
@click.argument("release", required=False)
@app_option
@json_option
@click.pass_context
def gates(ctx: click.Context, release: str | None, app: str | None, as_json: bool) -> None:
    """The gates of RELEASE (default: the newest release that ran any), with their evidence."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    path = f"/apps/{name}/releases/{release}/gates" if release else f"/apps/{name}/gates"
    data = client.get(path)
    if as_json:
        emit_json(data)
        return
    show_gates(data, details=True)


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def show_gates(results: list[dict[str, Any]], details: bool) -> None:
    if not results:
        out.print("no gates ran")
        return
    grid = table("GATE", "RESULT", "TIME", "SUMMARY")
    for r in results:
        grid.add_row(
            r["gate"],
            GATE_STATUS.get(r["status"], r["status"]),
            f"{r['seconds']:.1f}s" if r["seconds"] is not None else "-",
            escape(_short(r["summary"])),
        )
    out.print(grid)
    if not details:
        return
    for r in results:
        if r["status"] == "skipped" and r["reason"] is not None:
            out.print(f"[yellow]{r['gate']}[/yellow] skipped by {r['who']}: {escape(r['reason'])}")
        if r["status"] == "skipped" and r["reason"] is None and len(r["summary"]) > 110:
            out.print(f"[yellow]{r['gate']}[/yellow]: {escape(r['summary'])}")
        if r["kind"] == "performance" and "checks" in r["evidence"]:
            show_performance(r)
            continue
        if r["status"] != "failed":
            continue
        out.print(f"[red]{r['gate']}[/red]: {escape(r['summary'])}")
        for finding in r["findings"]:
            out.print(f"  {escape(finding['where'])}: {escape(finding['what'])}")
        for line in r["evidence"].get("output_tail", []):
            out.print(f"  [dim]{escape(line)}[/dim]")
        if r["reproduce"]:
            out.print(f"  reproduce: {escape(r['reproduce'])}")
        if r["log_path"]:
            out.print(f"  full output: {r['log_path']}")


def show_performance(r: dict[str, Any]) -> None:
    """The performance gate's evidence: the decision, and each check with its numbers."""
    evidence = r["evidence"]
    color = {"passed": "green", "failed": "red"}.get(r["status"], "yellow")
    out.print(f"[{color}]{r['gate']}[/{color}]: {escape(r['summary'])}")
    if evidence.get("warning"):
        out.print(f"  [yellow]warning[/yellow]: {escape(evidence['warning'])}")
    sides = [("candidate", evidence.get("candidate")), ("stable", evidence.get("stable"))]
    for name, side in sides:
        if side:
            out.print(
                f"  {name}: {side['requests']} requests, p50 {side['p50']} ms, p95 "
                f"{side['p95']} ms, p99 {side['p99']} ms, errors {side['errors']}"
            )
    for check in evidence["checks"]:
        mark = {"slower": "[red]✗[/red]", "within": "[green]✓[/green]"}.get(check["verdict"], "?")
        out.print(f"  {mark} {escape(check['metric'])}: {escape(check['text'])}")
    out.print(
        f"  decision: {evidence['decision']} after {evidence['pairs']} pairs (budget "
        f"{evidence['budget']}, warm-up {evidence['warmup']}, alpha {evidence['alpha']}, "
        f"on_inconclusive = {evidence['on_inconclusive']}, measurements: {evidence['attempts']})"
    )
    if r["reproduce"] and r["status"] == "failed":
        out.print(f"  reproduce: {escape(r['reproduce'])}")


COMMANDS = [check, gates]
