"""How the CLI speaks: rich text for people, JSON on stdout for machines, errors on stderr."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from slipway.errors import SlipwayError

# Piped output is not cut to 80 columns: tables stay whole for grep and less.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def show_error(error: SlipwayError) -> None:
    where = f" [dim]({escape(error.where)})[/dim]" if error.where else ""
    err.print(f"[bold red]error:[/bold red] {escape(error.message)}{where}")
    for line in error.details:
        err.print(f"  [dim]│[/dim] {escape(line)}")
    if error.fix:
        err.print(f"[yellow]fix:[/yellow] {escape(error.fix)}")


def table(*columns: str) -> Table:
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, no_wrap=True)
    return grid


def ago(at: float | None) -> str:
    if not at:
        return "-"
    seconds = max(0.0, time.time() - at)
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h ago"
    return f"{seconds / 86400:.0f}d ago"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


STEP_MARK = {
    "start": "[cyan]→[/cyan]",
    "ok": "[green]✓[/green]",
    "fail": "[red]✗[/red]",
    "info": "[blue]•[/blue]",
    # a gate's result
    "passed": "  [green]✓[/green]",
    "failed": "  [red]✗[/red]",
    "skipped": "  [yellow]∘[/yellow]",
}
GATE_STATUS = {
    "passed": "[green]passed[/green]",
    "failed": "[red]failed[/red]",
    "skipped": "[yellow]skipped[/yellow]",
}


def show_event(event: dict[str, Any], console: Console) -> None:
    mark = STEP_MARK.get(event["status"], "•")
    seconds = event.get("data", {}).get("seconds")
    timing = f" [dim]({seconds:.2f}s)[/dim]" if isinstance(seconds, int | float) else ""
    if event["status"] == "fail":
        console.print(f"{mark} [bold]{event['step']:<7}[/bold] failed{timing}")
        return
    console.print(f"{mark} [bold]{event['step']:<7}[/bold] {escape(event['message'])}{timing}")
