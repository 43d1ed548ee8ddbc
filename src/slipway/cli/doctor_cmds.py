"""`slipway doctor`: what is wrong with this host and home, each with its fix."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import emit_json, escape, out
from slipway.errors import SlipwayError
from slipway.paths import Home

if TYPE_CHECKING:
    from slipway.doctor.checks import Finding

MARKS = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}


@click.command()
@click.option(
    "--sshd-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("/etc/ssh/sshd_config"),
    show_default=True,
    help="The SSH server's configuration to check.",
)
@json_option
@click.pass_context
def doctor(ctx: click.Context, sshd_config: Path, as_json: bool) -> None:
    """Check the host and the home: file modes, app users, open ports, the API, SSH,
    HAProxy and free disk; and every other host of the fleet (agent build, firewall, SSH,
    open ports, free disk, clock). Exits 1 if anything fails (warnings do not)."""
    from slipway import doctor as checks  # psutil and the router: imported only when needed

    home = home_of(ctx)
    haproxy = os.environ.get("SLIPWAY_HAPROXY") or "haproxy"
    findings = checks.run_checks(checks.gather(home.root, sshd_config, haproxy))
    findings += fleet_findings(home)
    findings += database_findings(home)
    counts: Counter[str] = Counter(finding.level for finding in findings)
    summary = {level: counts[level] for level in ("ok", "warn", "fail")}
    if as_json:
        emit_json({"findings": [f.to_dict() for f in findings], "summary": summary})
    else:
        width = max(len(finding.check) for finding in findings)
        for finding in findings:
            out.print(
                f"{MARKS[finding.level]} [bold]{finding.check:<{width}}[/bold]  "
                f"{escape(finding.message)}"
            )
            if finding.fix:
                out.print(f"  {'':<{width}}  [yellow]fix:[/yellow] {escape(finding.fix)}")
        colour = "red" if summary["fail"] else "yellow" if summary["warn"] else "green"
        out.print(
            f"\n[{colour}]{summary['fail']} failed, {summary['warn']} warning(s), "
            f"{summary['ok']} ok[/{colour}]"
        )
    if summary["fail"]:
        raise click.exceptions.Exit(1)


def fleet_findings(home: Home) -> list[Finding]:
    """Every other host of the fleet, through the daemon (none when it does not run)."""
    from slipway.doctor.checks import Finding
    from slipway.doctor.fleet import check_host

    if not home.socket.exists():
        return []
    try:
        hosts: list[dict[str, Any]] = Client(home, timeout=60).get("/fleet/doctor")
    except SlipwayError as exc:
        return [Finding("fleet", "warn", f"the fleet was not checked: {exc.message}")]
    return [finding for view in hosts for finding in check_host(view)]


def database_findings(home: Home) -> list[Finding]:
    """Managed databases, through the daemon (none when it does not run)."""
    from slipway.doctor.checks import Finding
    from slipway.doctor.databases import check_databases

    if not home.socket.exists():
        return []
    try:
        views: list[dict[str, Any]] = Client(home, timeout=60).get("/databases")
    except SlipwayError as exc:
        return [Finding("databases", "warn", f"databases were not checked: {exc.message}")]
    return check_databases(views)


COMMANDS = [doctor]
