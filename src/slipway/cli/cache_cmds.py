"""`slipway cache`: the app's edge cache ([edge.cache]): its hit ratio, and purging it."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, home_of, json_option, resolve_app
from slipway.cli.output import emit_json, out


@click.group(invoke_without_command=True)
@app_option
@json_option
@click.pass_context
def cache(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """The edge cache: hit ratio (HAProxy's counters); `slipway cache purge` empties it."""
    if ctx.invoked_subcommand is not None:
        return
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    counters = client.get(f"/apps/{name}/metrics", since="1m")["cache"]
    if as_json:
        emit_json({"app": name, "cache": counters})
        return
    out.print(cache_line(name, counters))


def cache_line(app: str | None, counters: dict[str, Any] | None) -> str:
    if counters is None:
        return f"{app}: no edge cache ([edge.cache] in slipway.toml turns it on)"
    ratio = counters["hit_ratio"]
    share = "no lookups yet" if ratio is None else f"{ratio:.1%} hits"
    return (
        f"{app}: cache {share} ({counters['hits']:,} of {counters['lookups']:,} lookups since "
        "HAProxy last started)"
    )


@cache.command()
@app_option
@json_option
@click.pass_context
def purge(ctx: click.Context, app: str | None, as_json: bool) -> None:
    """No answer cached so far is served again (on every lb host)."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    result = client.post(f"/apps/{name}/cache/purge")
    if as_json:
        emit_json(result)
        return
    out.print(f"cache of {name} purged: the next request for each path goes to the app")


COMMANDS = [cache]
