"""Without a terminal the CLI writes its text without rich: the same text rich would write."""

from __future__ import annotations

import io

import pytest
from rich._emoji_codes import EMOJI
from rich.console import Console
from rich.markup import escape as rich_escape

from slipway.cli import output
from slipway.cli.output import Grid, Speaker, escape, plain

SAMPLES = [
    "",
    "plain words",
    "daemon pid 12, up 5m; HAProxy [red]not running[/red]; home /tmp/x",
    "[bold]hello[/bold]  http://127.0.0.1:8080/",
    "  last      #3 deploy to r2: [green]succeeded[/green] 3m ago",
    "[bold red]error:[/bold red] boom [dim](where)[/dim]",
    "  [dim]│[/dim] a detail — with … arrows → ✓ ✗",
    "[yellow]fix:[/yellow] run `slipway up --home /tmp/a b`",
    "at 12:30:45 on 2026-12-03, port :8080 and ::1",
    "at 12:30:45 and 1:100: and :100: and :smile: and :thumbs_up:",
    "a [not a tag and [ALSO NOT] and [1] and ]",
    "back\\slash \\[red] escaped \\\\[red]x[/red] and \\\\\\[dim]y",
    "unknown style [foo]x[/foo]",
    "[link=http://x]x[/link] and [@click]y[/]",
    "mismatched [red]a[/green]",
    "implicit [red]close[/]",
    "nested [bold][red]a[/red][/bold]",
    "unclosed [cyan]x",
    "tab\there and \r carriage and \x1b[31m escape",
    "ünïcödé and 漢字",
    "ends with a backslash \\",
]
USER_TEXT = ["[red]x[/red]", "a\\", "[/]", "[bold]", "\\[x]", "path/[a-z]/x", "c:\\d\\"]


def rich_out(*objects: object, markup: bool = True, width: int = 200) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, highlight=False, soft_wrap=True, width=width)
    console.print(*objects, markup=markup)
    return buffer.getvalue()


@pytest.mark.parametrize("text", SAMPLES)
def test_plain_text_is_what_rich_writes_or_left_to_rich(text: str) -> None:
    for markup in (True, False):
        mine = plain(text, parse=markup)
        if mine is not None:
            assert mine + "\n" == rich_out(text, markup=markup), (text, markup)


def test_what_slipway_prints_is_not_left_to_rich() -> None:
    for text in SAMPLES[:9]:
        assert plain(text) is not None, text


@pytest.mark.parametrize("text", USER_TEXT + SAMPLES)
def test_escape_is_rich_s_and_shows_the_text_as_it_is(text: str) -> None:
    assert escape(text) == rich_escape(text)
    wrapped = f"[bold]{escape(text)}[/bold] after"
    mine = plain(wrapped)
    if mine is not None:
        assert mine + "\n" == rich_out(wrapped)


def test_emoji_names_are_made_of_the_characters_plain_looks_for() -> None:
    assert all(c in output.EMOJI_ASCII for name in EMOJI for c in name if c.isascii())
    assert {name for name in EMOJI if name.isdigit()} == output.EMOJI_DIGITS
    assert plain(":café:") is None and plain(":Smile:") is None and plain("::") == "::"


def grid(*rows: tuple[str, ...]) -> Grid:
    table = Grid("APP", "INSTANCE", "PID", "[bold]NOTE[/bold]")
    for row in rows:
        table.add_row(*row)
    return table


TABLES = [
    grid(),
    grid(("hello", "web-1", "12", "")),
    grid(
        ("hello", "web-1", "12", "[green]current[/green]"),
        ("a-much-longer-app-name", "w", "-", "[red]failed: secrets[/red]"),
        ("x", "y", "3", "warm 5m — rollback → ✓"),
    ),
    grid(("short",)),
    grid(("wide", "漢字", "1", "")),
    grid(("tab\t", "x", "1", "")),
    grid(("x" * 150, "y" * 60, "1", "")),
]


@pytest.mark.parametrize("table", TABLES)
def test_tables_are_laid_out_as_rich_lays_them_out(table: Grid) -> None:
    lines = table.lines(200)
    if lines is not None:
        assert "".join(f"{line}\n" for line in lines) == rich_out(table.to_rich())


def test_slipway_s_tables_are_not_left_to_rich() -> None:
    assert all(t.lines(200) is not None for t in TABLES[:4])


def test_the_speaker_writes_plain_text_to_a_pipe_and_rich_s_to_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    speaker = Speaker()
    speaker.print("[green]ok[/green]", "then")
    speaker.print(TABLES[2])
    speaker.print()
    assert capsys.readouterr().out == "ok then\n" + rich_out(TABLES[2].to_rich()) + "\n"
    assert speaker._console is None, "rich was not needed"
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert speaker.terminal()
