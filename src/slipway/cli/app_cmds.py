"""`slipway init`, `config check`, `deploy`, `rollback` and `scale`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, follow, home_of, json_option, resolve_app
from slipway.cli.output import emit_json, out
from slipway.config import CONFIG_FILE
from slipway.errors import UsageError


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False))
@click.option("--name", help="App name (default: the folder's name).")
@click.option("--port", default=8080, show_default=True, help="Public port HAProxy serves on.")
@click.option("--force", is_flag=True, help="Overwrite an existing slipway.toml.")
def init(directory: str, name: str | None, port: int, force: bool) -> None:
    """Write a commented slipway.toml for the app in DIRECTORY."""
    from slipway.config.template import render_template

    folder = Path(directory).absolute()
    target = folder / CONFIG_FILE
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", fix="edit it, or pass --force to replace it")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder", fix="create it first")
    app_name = name or re.sub(r"[^a-z0-9-]+", "-", folder.name.lower()).strip("-") or "app"
    if not app_name[0].isalpha():
        app_name = "app-" + app_name
    entry = next((f for f in ("app.py", "main.py", "server.py") if (folder / f).exists()), "app.py")
    web = f"python {entry} --port $PORT"
    build = "pip install -r requirements.txt" if (folder / "requirements.txt").exists() else ""
    text = render_template(app_name, web, build, port)
    if not build:
        text = text.replace('command = ""', '# command = "pip install -r requirements.txt"')
    target.write_text(text)
    out.print(f"[green]wrote[/green] {target}")
    out.print(
        "next: check the [processes] web command, then `slipway config check` and `slipway deploy`"
    )


@click.group()
def config() -> None:
    """Work with slipway.toml."""


@config.command("check")
@click.option(
    "--app", "app_dir", default=".", type=click.Path(file_okay=False), help="The app's folder."
)
@json_option
@click.pass_context
def config_check(ctx: click.Context, app_dir: str, as_json: bool) -> None:
    """Validate slipway.toml without deploying."""
    from slipway.config.load import load_config
    from slipway.runtime.users import check_run_user

    cfg = load_config(Path(app_dir).absolute())
    check_run_user(cfg.run.user, cfg.build.interpreter(), home_of(ctx).root)
    warnings = cfg.warnings()
    if as_json:
        emit_json({"valid": True, "config": cfg.model_dump(mode="json"), "warnings": warnings})
        return
    processes = ", ".join(f"{p}={cfg.initial_scale()[p]}" for p in cfg.processes)
    out.print(
        f"[green]ok[/green] {cfg.name}: serves on {cfg.listen.address}:{cfg.listen.port}, "
        f"processes {processes}, strategy {cfg.deploy.strategy}"
    )
    for warning in warnings:
        out.print(f"[yellow]warning:[/yellow] {warning}")


app_dir_option = click.option(
    "--app",
    "app_dir",
    default=".",
    type=click.Path(file_okay=False),
    help="The app's folder (default: this folder).",
)
git_option = click.option(
    "--git", "git_rev", metavar="REV", help="Use this git revision of the folder."
)


def start_deploy(
    ctx: click.Context, app_dir: str, git_rev: str | None, **extra: object
) -> tuple[Client, dict[str, Any]]:
    """POST /deploy for the app in app_dir (a deploy, or with check=True a check)."""
    folder = Path(app_dir).absolute()
    if not git_rev and not (folder / CONFIG_FILE).is_file():
        from slipway.config.load import load_config

        load_config(folder)  # says what is missing and how to fix it; the daemon validates
    client = Client(home_of(ctx))
    request = {"app_dir": str(folder), "git_rev": git_rev, **extra}
    deployment: dict[str, Any] = client.post("/deploy", request)
    return client, deployment


@click.command()
@app_dir_option
@git_option
@click.option(
    "--skip-gate",
    "skip",
    multiple=True,
    metavar="NAME",
    help="Deploy without this gate (repeatable); needs --reason, recorded with the deployment.",
)
@click.option(
    "--skip-host",
    "skip_hosts",
    multiple=True,
    metavar="HOST",
    help="Deploy without this unreachable host (repeatable); needs --reason, recorded.",
)
@click.option("--reason", help="Why skipping the gate(s) or host(s) is safe; it is recorded.")
@click.option("--detach", is_flag=True, help="Start the deploy and return at once.")
@json_option
@click.pass_context
def deploy(
    ctx: click.Context,
    app_dir: str,
    git_rev: str | None,
    skip: tuple[str, ...],
    skip_hosts: tuple[str, ...],
    reason: str | None,
    detach: bool,
    as_json: bool,
) -> None:
    """Build a release, run its gates and move traffic to it with zero downtime."""
    if reason and not (skip or skip_hosts):
        raise UsageError(
            "--reason is given without --skip-gate or --skip-host", fix="name what to skip"
        )
    # A skip without a reason is refused by the daemon, which records the reasons.
    skips = dict.fromkeys(skip, reason or "")
    hosts = dict.fromkeys(skip_hosts, reason or "")
    client, deployment = start_deploy(ctx, app_dir, git_rev, skip_gates=skips, skip_hosts=hosts)
    if detach:
        _detached(deployment, as_json)
        return
    follow(client, deployment, as_json, f"deploying {deployment['app']} {deployment['to_release']}")


def _detached(deployment: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json({"deployment": deployment})
    else:
        out.print(f"deployment #{deployment['id']} started; follow it with `slipway status`")


@click.command()
@click.argument("release", required=False)
@app_option
@click.option("--detach", is_flag=True, help="Start the rollback and return at once.")
@json_option
@click.pass_context
def rollback(
    ctx: click.Context, release: str | None, app: str | None, detach: bool, as_json: bool
) -> None:
    """Go back to the previous release (or RELEASE) with zero downtime."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    deployment = client.post(f"/apps/{name}/rollback", {"release": release})
    if detach:
        _detached(deployment, as_json)
        return
    follow(client, deployment, as_json, f"rolling {name} back to {deployment['to_release']}")


def parse_counts(pairs: tuple[str, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pair in pairs:
        process, sep, number = (part.strip() for part in pair.partition("="))
        if not sep or not process or not re.fullmatch(r"-?\d+", number):
            raise click.BadParameter(f"'{pair}' is not PROCESS=COUNT (e.g. web=3)")
        count = int(number)
        if count < 0:
            raise click.BadParameter(f"'{pair}': a count cannot be negative")
        counts[process] = count
    if not counts:
        raise click.BadParameter("give at least one PROCESS=COUNT, e.g. web=3")
    return counts


@click.command()
@click.argument("pairs", nargs=-1, metavar="PROCESS=COUNT...")
@app_option
@click.option("--detach", is_flag=True, help="Start scaling and return at once.")
@json_option
@click.pass_context
def scale(
    ctx: click.Context, pairs: tuple[str, ...], app: str | None, detach: bool, as_json: bool
) -> None:
    """Run COUNT instances of a process type, e.g. `slipway scale web=3 worker=2`."""
    counts = parse_counts(pairs)
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    deployment = client.post(f"/apps/{name}/scale", {"counts": counts})
    if detach:
        _detached(deployment, as_json)
        return
    what = " ".join(f"{p}={n}" for p, n in counts.items())
    follow(client, deployment, as_json, f"scaling {name} to {what}")


COMMANDS = [init, config, deploy, rollback, scale]
