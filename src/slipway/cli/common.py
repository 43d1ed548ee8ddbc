"""Helpers shared by the CLI's commands."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.output import emit_json, err, out, show_error, show_event
from slipway.config import APP_NAME, CONFIG_FILE
from slipway.errors import Interrupted, SlipwayError, UsageError, error_from_dict
from slipway.paths import Home

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
app_option = click.option(
    "-a",
    "--app",
    "app",
    default=None,
    metavar="NAME|DIR",
    help="The app (name, or folder with slipway.toml; default: this folder).",
)


def home_of(ctx: click.Context) -> Home:
    home: Home = ctx.find_root().obj
    return home


def app_name_in(folder: Path) -> str:
    """The `name` of the folder's slipway.toml: read alone when it is plainly valid (a read
    command needs no more), else through the whole config for its precise error."""
    import tomllib

    try:
        name = tomllib.loads((folder / CONFIG_FILE).read_text()).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        name = None
    if isinstance(name, str) and APP_NAME.match(name):
        return name
    from slipway.config.load import load_config  # pydantic: only to say what is wrong

    return load_config(folder).name


def resolve_app(client: Client, app: str | None, required: bool = True) -> str | None:
    """An app name from --app NAME, --app DIR, the current folder's slipway.toml, or the only
    app the daemon knows."""
    folder = Path(app) if app and Path(app, CONFIG_FILE).is_file() else None
    if folder is None and not app and Path(CONFIG_FILE).is_file():
        folder = Path(".")
    if folder is not None:
        return app_name_in(folder)
    if app:
        return app
    if not required:
        return None
    names = [a["name"] for a in client.get("/status")["apps"]]
    if len(names) == 1:
        return str(names[0])
    raise UsageError(
        "which app? there is no slipway.toml here",
        fix=f"pass --app NAME (apps: {', '.join(names) or 'none deployed yet'})",
    )


def follow(client: Client, deployment: dict[str, Any], as_json: bool, title: str) -> None:
    """Show a deployment's steps as they happen; exit 1 if it fails, 3 if the daemon stopped
    before it ended (its outcome is then decided by the next `slipway up`)."""
    console = err if as_json else out
    console.print(f"[bold]{title}[/bold] [dim](deployment #{deployment['id']})[/dim]")
    started = time.monotonic()
    events: list[dict[str, Any]] = []
    final = None
    for _ in range(REATTACH_LIMIT):
        try:
            after = str(events[-1]["id"]) if events else "0"
            path = f"/deployments/{deployment['id']}/events"
            for item in client.stream(path, follow="1", after=after):
                if "final" in item:
                    final = item["final"]
                    break
                events.append(item)
                show_event(item, console)
        except SlipwayError:
            pass  # the stream broke: is the daemon still there?
        if final is not None:
            break
        if not daemon_answers(client):
            raise interrupted(deployment, events)
    if final is None:
        raise SlipwayError(
            f"lost track of deployment #{deployment['id']}", fix="see `slipway status`"
        )
    if as_json:
        emit_json({"deployment": final, "events": events})
    if final.get("outcome") != "succeeded":
        error = final.get("error") or {"message": "the deployment did not succeed"}
        if not as_json:
            show_error(error_from_dict(error))
        raise click.exceptions.Exit(1)
    if not as_json and final.get("kind") == "check":
        out.print(f"[green]no gate failed on {final['to_release']}[/green]; nothing was deployed")
    elif not as_json:
        app = client.get(f"/apps/{final['app']}")
        url = f" — {app['url']}" if app.get("url") else ""
        out.print(
            f"[green]{final['to_release']} is live[/green] on {final['app']}"
            f" in {time.monotonic() - started:.1f}s{url}"
        )


REATTACH_LIMIT = 3  # a stream cut while the daemon still answers is followed again


def daemon_answers(client: Client) -> bool:
    try:
        client.get("/status")
    except SlipwayError:
        return False
    return True


def interrupted(deployment: dict[str, Any], events: list[dict[str, Any]]) -> Interrupted:
    step = events[-1]["step"] if events else deployment.get("state", "?")
    stable = deployment.get("from_release")
    keeps = f"{stable} keeps serving meanwhile" if stable else "nothing else was serving"
    return Interrupted(
        f"the daemon stopped during step '{step}' of deployment #{deployment['id']}; "
        "the deployment did not end",
        where=f"app {deployment['app']}",
        fix=f"`slipway up` finishes the deployment or rolls it back, and says which; {keeps}",
    )
