"""`slipway`: the command group, global options and error handling.

The group knows its commands by name, module and one-line help (COMMANDS below) and imports
a command's module only when that command runs: `slipway status` does not pay for the
imports of `deploy`, `control restore` or `doctor`. tests/unit/test_cli_lazy.py checks
that the table matches the commands, so `slipway --help` cannot drift from them."""

from __future__ import annotations

import importlib
from gettext import gettext as _
from typing import Any

import click
from click.utils import make_default_short_help

from slipway import __version__
from slipway.errors import SlipwayError
from slipway.paths import Home

# name → (module in slipway.cli, its one-line help as `slipway --help` shows it). Each
# module lists its top-level commands in COMMANDS.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": (
        "daemon_cmds",
        "Start the daemon in the background (apps and HAProxy are restored as recorded).",
    ),
    "down": ("daemon_cmds", "Stop the daemon."),
    "server": ("daemon_cmds", "Run the daemon in the foreground (JSON logs on stderr)."),
    "init": ("app_cmds", "Write a commented slipway.toml for the app in DIRECTORY."),
    "config": ("app_cmds", "Work with slipway.toml."),
    "deploy": (
        "app_cmds",
        "Build a release, run its gates and move traffic to it with zero downtime.",
    ),
    "rollback": ("app_cmds", "Go back to the previous release (or RELEASE) with zero downtime."),
    "scale": ("app_cmds", "Run COUNT instances of a process type, e.g."),
    "hosts": ("host_cmds", "The fleet's hosts: roles, agent, reachability, load, instances."),
    "autoscale": (
        "autoscale_cmds",
        "Autoscaled process types: signal, target, count and the last decision.",
    ),
    "check": ("gate_cmds", "Build a release and run every gate on it, without deploying it."),
    "gates": (
        "gate_cmds",
        "The gates of RELEASE (default: the newest release that ran any), with their evidence.",
    ),
    "promote": ("canary_cmds", "Promote the canary in flight now: all traffic to the new release."),
    "abort": (
        "canary_cmds",
        "Abort the deployment in flight: the stable release takes all traffic back.",
    ),
    "pause": ("canary_cmds", "Hold the canary at its current step (the judge keeps watching)."),
    "resume": ("canary_cmds", "Let a paused canary continue through its steps."),
    "analysis": (
        "canary_cmds",
        "Every verdict of a canary with its numbers (default: the app's latest canary).",
    ),
    "status": (
        "read_cmds",
        "The daemon, HAProxy and every app: URL, current release, deployment in flight.",
    ),
    "releases": ("read_cmds", "An app's releases, newest first."),
    "ps": (
        "read_cmds",
        "Running instances: release, process, pid, port, health and share of traffic.",
    ),
    "logs": ("read_cmds", "Output of an app's instances, merged by time."),
    "metrics": (
        "observe_cmds",
        "Request rate, error rate and latency per release over time (kept 30 days).",
    ),
    "requests": ("observe_cmds", "Recent requests from HAProxy's log, newest last."),
    "cache": (
        "cache_cmds",
        "The edge cache: hit ratio (HAProxy's counters); `slipway cache purge` empties it.",
    ),
    "alerts": (
        "observe_cmds",
        "Alert rules and their states (ok, pending, firing), and notifications sent.",
    ),
    "secrets": ("secret_cmds", "Encrypted secrets: set, unset, list, get --reveal, rotate-key."),
    "tokens": ("token_cmds", "API tokens: create, list, revoke (admins only)."),
    "audit": ("audit_cmds", "The audit log: every change and every denied request (admins only)."),
    "doctor": (
        "doctor_cmds",
        "Check the host and the home: file modes, app users, open ports, the API, SSH, HAProxy "
        "and free disk; and every other host of the fleet (agent build, firewall, SSH, open "
        "ports, free disk, clock).",
    ),
    "db": (
        "db_cmds",
        "Managed PostgreSQL databases, with encrypted backups proven by restoring them.",
    ),
    "control": (
        "control_cmds",
        "The control plane: its replica on another host, and restoring it.",
    ),
}


def load_command(name: str) -> click.Command:
    """The command `name`, importing its module."""
    module = importlib.import_module(f"slipway.cli.{COMMANDS[name][0]}")
    found: list[click.Command] = [c for c in module.COMMANDS if c.name == name]
    if not found:
        raise LookupError(f"slipway.cli.{COMMANDS[name][0]} has no command {name!r}")
    return found[0]


class SlipwayGroup(click.Group):
    """Commands from the COMMANDS table, imported when they are run; SlipwayError shown and
    turned into its exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        if cmd_name not in self.commands:
            self.add_command(load_command(cmd_name))
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, with the help from the table: listing imports no command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, make_default_short_help(COMMANDS[name][1], limit)) for name in names]
        with formatter.section(_("Commands")):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SlipwayError as error:
            from slipway.cli.output import show_error

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


def main() -> None:
    cli(prog_name="slipway")
