"""`slipway metrics`, `requests` and `alerts`: what production did, from the daemon's history."""

from __future__ import annotations

from typing import Any

import click

from slipway.cli.client import Client
from slipway.cli.common import app_option, home_of, json_option, resolve_app
from slipway.cli.output import ago, clock, emit_json, out, table
from slipway.config.durations import parse_duration
from slipway.errors import UsageError

since_option = click.option(
    "--since", default=None, metavar="AGE", help="How far back: 90s, 15m, 1h, 24h, 7d."
)
NICE_STEPS = (1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400)
ROWS = 15


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def step_for(since: str) -> int:
    """A resolution giving about ROWS rows for the span."""
    try:
        span = parse_duration(since)
    except ValueError as exc:
        raise UsageError(str(exc), where="--since", fix="e.g. --since 15m") from None
    return next((s for s in NICE_STEPS if span / s <= ROWS), NICE_STEPS[-1])


@click.command()
@app_option
@since_option
@click.option("--release", help="Only this release.")
@json_option
@click.pass_context
def metrics(
    ctx: click.Context, app: str | None, since: str | None, release: str | None, as_json: bool
) -> None:
    """Request rate, error rate and latency per release over time (kept 30 days)."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    since = since or "1h"
    params = {"since": since, "step": str(step_for(since))}
    if release:
        params["release"] = release
    data = client.get(f"/apps/{name}/metrics", **params)
    if as_json:
        emit_json(data)
        return
    if data.get("cache") is not None:
        from slipway.cli.cache_cmds import cache_line

        out.print(cache_line(name, data["cache"]))
    if not data["releases"]:
        out.print(f"no traffic recorded for {name} in the last {since}")
        return
    totals = table("release", "requests", "errors", "error rate", "p50", "p90", "p99")
    for rel, t in data["totals"].items():
        totals.add_row(
            rel, f"{t['requests']:,}", f"{t['errors']:,}", _pct(t["error_rate"]),
            _ms(t["p50"]), _ms(t["p90"]), _ms(t["p99"]),
        )  # fmt: skip
    out.print(f"[bold]{name}[/bold], last {since} (one row per {data['step']}s)")
    out.print(totals)
    rows = table("time", "release", "req/s", "error rate", "p50", "p99")
    for index, at in enumerate(data["t"]):
        for rel, values in data["releases"].items():
            if values["rps"][index] is None:
                continue
            rows.add_row(
                clock(at), rel, f"{values['rps'][index]:,.2f}", _pct(values["error_rate"][index]),
                _ms(values["p50"][index]), _ms(values["p99"][index]),
            )  # fmt: skip
    out.print(rows)
    for marker in data["markers"]:
        out.print(f"  {clock(marker['started_at'])}  {marker['label']}")


@click.command()
@app_option
@since_option
@click.option("--status", help="5xx, 4xx, a code such as 404, or 'error' (5xx and no answer).")
@click.option("--release", help="Only this release.")
@click.option("--path", help="Only paths containing this text.")
@click.option("-n", "--limit", default=100, show_default=True, help="At most this many.")
@json_option
@click.pass_context
def requests(
    ctx: click.Context,
    app: str | None,
    since: str | None,
    status: str | None,
    release: str | None,
    path: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Recent requests from HAProxy's log, newest last."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app)
    params = {"since": since or "10m", "limit": str(limit)}
    params |= {k: v for k, v in (("status", status), ("release", release), ("path", path)) if v}
    data = client.get(f"/apps/{name}/requests", **params)
    if as_json:
        emit_json(data)
        return
    found = data["requests"]
    if not found:
        out.print(f"no matching requests to {name} in the last {params['since']}")
        return
    grid = table("time", "status", "ms", "method", "path", "release", "instance", "client")
    for r in found:
        grid.add_row(
            clock(r["time"]), _status(r), str(r["ms"]), r["method"], r["path"],
            r["release"], r["instance"], r["client"],
        )  # fmt: skip
    out.print(grid)


def _status(request: dict[str, Any]) -> str:
    if request["termination"][:1] == "S" or request["status"] < 0:
        return f"[red]no answer ({request['termination']})[/red]"
    color = "red" if request["status"] >= 500 else "yellow" if request["status"] >= 400 else ""
    return f"[{color}]{request['status']}[/{color}]" if color else str(request["status"])


@click.command()
@app_option
@click.option("--history", "show_history", is_flag=True, help="Also every state change.")
@json_option
@click.pass_context
def alerts(ctx: click.Context, app: str | None, show_history: bool, as_json: bool) -> None:
    """Alert rules and their states (ok, pending, firing), and notifications sent."""
    client = Client(home_of(ctx))
    name = resolve_app(client, app, required=False)
    data = client.get(f"/apps/{name}/alerts" if name else "/alerts")
    if as_json:
        emit_json(data)
        return
    grid = table("app", "alert", "severity", "state", "since", "now")
    colors = {"firing": "red", "pending": "yellow", "ok": "green"}
    for a in data["alerts"]:
        color = colors.get(a["state"], "")
        grid.add_row(
            a["app"], a["rule"], a["severity"], f"[{color}]{a['state']}[/{color}]",
            ago(a["since"]), a["summary"],
        )  # fmt: skip
    out.print(grid if data["alerts"] else "no alert has been evaluated yet")
    failing = [n for n in data["notifications"] if n["state"] != "sent"]
    for n in failing:
        out.print(
            f"[yellow]notification {n['event']} '{n['rule']}' to {n['notifier']}: {n['state']} "
            f"after {n['attempts']} tries — {n['last_error']}[/yellow]"
        )
    if show_history:
        events = table("time", "app", "alert", "event", "summary")
        for e in reversed(data["events"]):
            events.add_row(clock(e["at"]), e["app"], e["rule"], e["state"], e["summary"])
        out.print(events)


COMMANDS = [metrics, requests, alerts]
