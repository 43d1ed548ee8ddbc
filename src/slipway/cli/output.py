"""How the CLI speaks: rich text for people, JSON on stdout for machines, errors on stderr.

rich costs about 50 ms to import, more than the rest of a read command. Output that is not
a terminal (a pipe, a file, a test) gets the same text rich would write there, without
rich: markup tags dropped, tables laid out as rich lays them out (no box, two spaces
between columns, every cell padded to its column). Whatever this module cannot render to
the character as rich does (a terminal, FORCE_COLOR, a style or emoji code it does not
know, control characters, wide characters in a table, a table wider than the console) goes
to rich. tests/unit/test_cli_output.py holds the two to the same output."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from slipway.errors import SlipwayError

if TYPE_CHECKING:
    from rich.console import Console

PIPED_WIDTH = 200  # piped output is not cut to 80 columns: tables stay whole for grep, less


def escape(markup: str) -> str:
    """rich.markup.escape, without importing rich: text that is not to be read as markup."""
    markup = _ESCAPE(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", markup)
    if markup.endswith("\\") and not markup.endswith("\\\\"):
        return markup + "\\"
    return markup


_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])").sub
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")  # rich.markup.RE_TAGS
_EMOJI = re.compile(r"(:(\S*?)(?:(?:\-)(emoji|text))?:)")  # rich's emoji codes
# The ASCII characters of rich's emoji names (tests/unit/test_cli_output.py checks the
# list): a ":name:" of other ASCII characters is left alone by rich. Of the all-digit names
# only these. (A regular expression for this costs 12 ms to compile, at every start.)
EMOJI_ASCII = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_+-.!#&()*")
EMOJI_DIGITS = frozenset({"100", "1234"})
STYLE_WORDS = frozenset(
    {"bold", "dim", "italic", "underline", "red", "green", "yellow", "blue", "cyan", "magenta"}
)
# Non-ASCII characters slipway's own text uses, one cell wide each in rich's tables.
NARROW = frozenset("│—…→✓✗•∘×·")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def plain(markup: str, parse: bool = True) -> str | None:
    """What rich writes for `markup` where there is no terminal, or None where that is not
    known here (rich must render it)."""
    if _CONTROL.search(markup):
        return None
    if not parse or "[" not in markup:
        return markup if _no_emoji(markup) else None
    parts: list[str] = []
    opened: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            parts.append("\\" * backslashes)
            if escaped:
                parts.append(full[len(escapes) :])
                continue
        if tag.startswith("/"):
            name = tag[1:].strip()
            if not opened or (name and opened[-1] != name):
                return None  # rich matches it further down, or reports the error
            opened.pop()
        elif set(tag.split()) <= STYLE_WORDS:
            opened.append(tag)
        else:
            return None
    if position < len(markup):
        parts.append(markup[position:].replace("\\[", "["))
    return "".join(parts) if all(_no_emoji(part) for part in parts) else None


def _no_emoji(text: str) -> bool:
    """Whether rich leaves `text` as it is (it replaces ":name:" emoji codes)."""
    if text.count(":") < 2:
        return True
    for match in _EMOJI.finditer(text):
        name = match.group(2).lower()
        maybe = name and all(c in EMOJI_ASCII or not c.isascii() for c in name)
        if maybe and (not name.isdigit() or name in EMOJI_DIGITS):
            return False
    return True


class Grid:
    """A table as slipway prints them: no box, a bold header, cells never wrapped."""

    def __init__(self, *columns: str) -> None:
        self.columns = columns
        self.rows: list[tuple[str, ...]] = []

    def add_row(self, *cells: str) -> None:
        self.rows.append(cells)

    def lines(self, width: int) -> list[str] | None:
        """The table as rich lays it out in `width` columns, or None (rich must)."""
        rendered: list[list[str]] = []
        for row in [self.columns, *self.rows]:
            cells = [plain(cell) for cell in row]
            cells += [""] * (len(self.columns) - len(cells))
            if any(c is None or not all(" " <= ch < "\x7f" or ch in NARROW for ch in c)
                   for c in cells):  # fmt: skip
                return None
            rendered.append([c for c in cells if c is not None])
        widths = [max(len(row[i]) for row in rendered) for i in range(len(self.columns))]
        if sum(widths) + 2 * (len(widths) - 1) > width:
            return None
        return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rendered]

    def to_rich(self) -> Any:
        from rich.table import Table

        grid = Table(box=None, pad_edge=False, header_style="bold")
        for column in self.columns:
            grid.add_column(column, no_wrap=True)
        for row in self.rows:
            grid.add_row(*row)
        return grid


class Speaker:
    """rich's Console.print for what slipway prints, rich imported only when needed."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def file(self) -> TextIO:
        return sys.stderr if self.stderr else sys.stdout

    def rich(self) -> Console:
        if self._console is None:
            from rich.console import Console

            if self.stderr:
                self._console = Console(stderr=True, highlight=False, soft_wrap=True)
            else:
                width = None if sys.stdout.isatty() else PIPED_WIDTH
                self._console = Console(highlight=False, soft_wrap=True, width=width)
        return self._console

    def terminal(self) -> bool:
        """Whether rich would write for a terminal (rich.console.Console.is_terminal)."""
        if self._console is not None:
            return True  # rich is loaded already: let it carry on
        tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
        if tty_compatible in ("0", "1"):
            return tty_compatible == "1"
        force_color = os.environ.get("FORCE_COLOR")
        if force_color is not None:
            return force_color != ""
        isatty = getattr(self.file, "isatty", None)
        try:
            return False if isatty is None else bool(isatty())
        except ValueError:
            return False

    def print(self, *objects: str | Grid, markup: bool = True) -> None:
        text = None if self.terminal() else self._plain(objects, markup)
        if text is not None:
            self.file.write(text)
            self.file.flush()
            return
        shown = [o.to_rich() if isinstance(o, Grid) else o for o in objects]
        self.rich().print(*shown, markup=markup)

    def _plain(self, objects: tuple[str | Grid, ...], markup: bool) -> str | None:
        if len(objects) == 1 and isinstance(objects[0], Grid):
            lines = objects[0].lines(PIPED_WIDTH)
            return None if lines is None or self.stderr else "".join(f"{x}\n" for x in lines)
        if not all(isinstance(o, str) for o in objects):
            return None
        text = plain(" ".join(str(o) for o in objects), parse=markup)
        return None if text is None else text + "\n"


out = Speaker()
err = Speaker(stderr=True)


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


def table(*columns: str) -> Grid:
    return Grid(*columns)


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


def show_event(event: dict[str, Any], console: Speaker) -> None:
    mark = STEP_MARK.get(event["status"], "•")
    seconds = event.get("data", {}).get("seconds")
    timing = f" [dim]({seconds:.2f}s)[/dim]" if isinstance(seconds, int | float) else ""
    if event["status"] == "fail":
        console.print(f"{mark} [bold]{event['step']:<7}[/bold] failed{timing}")
        return
    console.print(f"{mark} [bold]{event['step']:<7}[/bold] {escape(event['message'])}{timing}")
