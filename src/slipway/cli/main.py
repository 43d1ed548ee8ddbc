"""`slipway`: the command group, global options and error handling."""

from __future__ import annotations

from typing import Any

import click

from slipway import __version__
from slipway.cli import (
    app_cmds,
    audit_cmds,
    canary_cmds,
    daemon_cmds,
    doctor_cmds,
    gate_cmds,
    host_cmds,
    observe_cmds,
    read_cmds,
    secret_cmds,
    token_cmds,
)
from slipway.cli.output import show_error
from slipway.errors import SlipwayError
from slipway.paths import Home


class SlipwayGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlipwayError as error:
            show_error(error)
            ctx.exit(error.exit_code)


@click.group(cls=SlipwayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="State folder (default: $SLIPWAY_HOME or ~/.local/state/slipway).",
)
@click.version_option(__version__, prog_name="slipway")
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """slipway: zero-downtime deploys, instant rollbacks and a real load balancer
    for web services on your own Linux servers."""
    ctx.obj = Home.resolve(home)


for module in (
    daemon_cmds,
    app_cmds,
    host_cmds,
    gate_cmds,
    canary_cmds,
    read_cmds,
    observe_cmds,
    secret_cmds,
    token_cmds,
    audit_cmds,
    doctor_cmds,
):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="slipway")
