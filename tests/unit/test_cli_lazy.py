"""The CLI imports a command's module only to run it: the table in slipway.cli.main must
match the commands, and the read commands must not reach for the heavy libraries."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import slipway.cli
from slipway.cli import main as cli_main
from slipway.cli.client import parse_response
from slipway.errors import SlipwayError

SRC = Path(slipway.cli.__file__).resolve().parents[2]


def command_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(slipway.cli.__path__) if "_cmds" in m.name)


def test_the_table_lists_every_command_of_every_module_with_its_help() -> None:
    seen = {}
    for name in command_modules():
        module = importlib.import_module(f"slipway.cli.{name}")
        for command in module.COMMANDS:
            assert command.name is not None and not command.hidden
            seen[command.name] = (name, command.get_short_help_str(limit=10**6))
    assert seen == cli_main.COMMANDS


def test_help_lists_the_commands_as_click_would_with_them_loaded() -> None:
    eager = click.Group(
        "slipway",
        params=cli_main.cli.params,
        help=cli_main.cli.help,
        context_settings=cli_main.cli.context_settings,
    )
    for name in cli_main.COMMANDS:
        eager.add_command(cli_main.load_command(name))
    for width in (60, 80, 200):
        lazy = CliRunner().invoke(
            cli_main.cli, ["--help"], prog_name="slipway", terminal_width=width
        )
        loaded = CliRunner().invoke(eager, ["--help"], prog_name="slipway", terminal_width=width)
        assert lazy.exit_code == 0 and lazy.output == loaded.output
        assert "status" in lazy.output and "Commands:" in lazy.output


def test_an_unknown_command_is_refused_as_before() -> None:
    result = CliRunner().invoke(cli_main.cli, ["statsu"])
    assert result.exit_code == 2 and "No such command 'statsu'" in result.output


# A stand-in for the daemon on a unix socket: enough of the API for status, ps and hosts.
ANSWERS: dict[str, Any] = {
    "/v1/status": {
        "daemon": {"pid": 11, "started_at": 0, "home": "/h"},
        "router": {"running": True, "pid": 12},
        "apps": [],
    },
    "/v1/control/replica": {"state": "off"},
    "/v1/instances": [
        {
            "app": "hello",
            "id": "web-1",
            "host": "local",
            "release": "r1",
            "role": "live",
            "state": "running",
            "pid": 13,
            "port": 4000,
            "traffic_percent": 100.0,
            "check": "ok",
            "restarts": 0,
            "uptime_seconds": 5.0,
        },
    ],  # fmt: skip
    "/v1/hosts": [
        {
            "name": "local",
            "address": "127.0.0.1",
            "roles": ["app", "lb"],
            "agent": None,
            "reachable": True,
            "load": 0.5,
            "cores": 2,
            "instances": 1,
        },
    ],  # fmt: skip
    "/v1/fleet/vip": {"address": None},
}


def serve(sock: socket.socket, chunked: bool) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            path = request.split(b" ")[1].decode().split("?")[0]
            found = path in ANSWERS
            body = json.dumps(ANSWERS[path] if found else {"error": {"message": "no"}}).encode()
            status = "200 OK" if found else "404 Not Found"
            if chunked:
                head = f"HTTP/1.1 {status}\r\ntransfer-encoding: chunked\r\n\r\n".encode()
                conn.sendall(head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
            else:
                head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                conn.sendall(head + body)


@pytest.fixture(params=[False, True], ids=["content-length", "chunked"])
def daemon(request: pytest.FixtureRequest) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="swl-", dir="/tmp"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(home / "slipway.sock"))
    sock.listen()
    thread = threading.Thread(target=serve, args=(sock, request.param), daemon=True)
    thread.start()
    yield home
    sock.close()
    shutil.rmtree(home, ignore_errors=True)


HEAVY = ("rich", "asyncio", "pydantic", "httpx", "numpy", "http.client", "ssl", "email")
OURS = ("slipway.daemon", "slipway.store", "slipway.api.", "slipway.runtime", "slipway.hosts")


@pytest.mark.parametrize("args", [["status"], ["ps"], ["hosts"]])
def test_read_commands_import_nothing_heavy(daemon: Path, args: list[str]) -> None:
    code = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "from slipway.cli.main import main\n"
        f"sys.argv = ['slipway', '--home', {str(daemon)!r}, *{args!r}]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=daemon,  # no slipway.toml: with one, ps reads the app's name from it (pydantic)
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stderr.strip().splitlines()[-1])
    heavy = [m for m in modules if m.startswith(HEAVY + OURS)]
    assert heavy == [], f"slipway {' '.join(args)} imported {heavy}"
    assert proc.stdout.strip(), "it printed what it read"


def test_ps_prints_the_table_rich_would(daemon: Path) -> None:
    result = CliRunner().invoke(cli_main.cli, ["--home", str(daemon), "ps"])
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.startswith("APP    INSTANCE  HOST   RELEASE") and "TRAFFIC" in header
    assert row.startswith("hello  web-1     local  r1") and "100%" in row


def test_an_error_from_the_daemon_is_shown(daemon: Path) -> None:
    result = CliRunner().invoke(cli_main.cli, ["--home", str(daemon), "releases", "-a", "x"])
    assert result.exit_code == 1 and "error: no" in result.output


def test_responses_are_parsed_by_length_chunks_or_close() -> None:
    assert parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx") == (200, b"{}")
    chunked = b"HTTP/1.1 404 NF\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n1\r\n \r\n0\r\n\r\n"
    assert parse_response(chunked) == (404, b"{} ")
    assert parse_response(b"HTTP/1.0 200 OK\r\n\r\n[1]") == (200, b"[1]")
    for broken in (
        b"",
        b"garbage",
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{}",
    ):
        with pytest.raises(SlipwayError):
            parse_response(broken)


def test_a_token_with_a_line_break_is_refused_before_it_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client writes its request by hand: a header never carries a second line."""
    from slipway.cli.client import Client
    from slipway.errors import UsageError
    from slipway.paths import Home

    monkeypatch.setenv("SLIPWAY_TOKEN", "swt_abc\r\nX-Slipway-User: root")
    with pytest.raises(UsageError, match="SLIPWAY_TOKEN holds a line break"):
        Client(Home(tmp_path)).get("/status")


def test_an_app_folder_names_its_app_without_the_whole_config(tmp_path: Path) -> None:
    """A read command in an app folder needs only `name`: read with tomllib; a name that is
    not plainly valid goes through the whole config, which says what is wrong."""
    from slipway.cli.common import app_name_in
    from slipway.errors import SlipwayError

    (tmp_path / "slipway.toml").write_text('name = "shop"\n[processes]\nweb = "x"\n')
    assert app_name_in(tmp_path) == "shop"
    (tmp_path / "slipway.toml").write_text('name = "Not A Name"\n')
    with pytest.raises(SlipwayError):
        app_name_in(tmp_path)
