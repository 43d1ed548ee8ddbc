"""`slipway up`, `down` and `server`: the daemon's lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import click

from slipway.cli.client import Client
from slipway.cli.common import home_of, json_option
from slipway.cli.output import emit_json, out
from slipway.errors import DaemonNotRunning, PreflightError, SlipwayError, UsageError
from slipway.paths import Home

START_TIMEOUT = 120.0  # a start may first finish or roll back deployments left in flight


def http_option(function: Callable[..., None]) -> Callable[..., None]:
    for option in (
        click.option(
            "--tls-key",
            envvar="SLIPWAY_TLS_KEY",
            type=click.Path(dir_okay=False),
            help="Its private key (PEM). Env SLIPWAY_TLS_KEY.",
        ),
        click.option(
            "--tls-cert",
            envvar="SLIPWAY_TLS_CERT",
            type=click.Path(dir_okay=False),
            help="Serve --http over TLS with this certificate (PEM). Env SLIPWAY_TLS_CERT.",
        ),
        click.option(
            "--http",
            envvar="SLIPWAY_HTTP",
            default="127.0.0.1:7870",
            show_default=True,
            help="Where to serve the API over TCP, the dashboard and /metrics (IP:PORT, or "
            "off). Env SLIPWAY_HTTP.",
        ),
    ):
        function = option(function)
    return function


def tls_of(cert: str | None, key: str | None) -> tuple[str, str] | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise UsageError(
            "TLS needs both --tls-cert and --tls-key", fix="give both, or neither for plain HTTP"
        )
    for path, what in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not os.access(path, os.R_OK):
            raise UsageError(f"cannot read {path}", where=what, fix="check the path and its mode")
    return os.path.abspath(cert), os.path.abspath(key)


@click.command()
@http_option
@json_option
@click.pass_context
def up(
    ctx: click.Context, http: str, tls_cert: str | None, tls_key: str | None, as_json: bool
) -> None:
    """Start the daemon in the background (apps and HAProxy are restored as recorded)."""
    from slipway.daemon.lifecycle import preflight, running_daemon_pid
    from slipway.daemon.web import parse_address

    home = home_of(ctx)
    pid = running_daemon_pid(home)
    if pid is None:
        parse_address(http)
        tls = tls_of(tls_cert, tls_key)
        preflight(home)  # clear errors here, not in a log file
        pid = spawn_daemon(home, http, tls)
        wait_until_serving(home, pid)
        note = "started"
    else:
        note = "already running"
    status = Client(home).get("/status")
    if as_json:
        recovered = status["daemon"].get("recovered", []) if note == "started" else []
        emit_json(
            {
                "pid": pid,
                "home": str(home.root),
                "status": note,
                "apps": status["apps"],
                "recovered": recovered,
            }
        )
        return
    out.print(f"[green]slipway daemon {note}[/green] (pid {pid}, home {home.root})")
    dashboard = status["daemon"].get("http_url")
    out.print(
        f"  dashboard and /metrics: {dashboard or 'not served (see ' + str(home.daemon_log) + ')'}"
    )
    if not status["router"]["running"]:
        out.print(f"[yellow]HAProxy is not running yet; see {home.daemon_log}[/yellow]")
    for app in status["apps"]:
        out.print(f"  {app['name']}: {app['current_release'] or '-'} at {app['url'] or '-'}")
    if note == "started":
        for line in status["daemon"].get("recovered") or []:
            out.print(f"  [yellow]{line}[/yellow]")


def spawn_daemon(home: Home, http: str, tls: tuple[str, str] | None = None) -> int:
    argv = [sys.executable, "-m", "slipway", "--home", str(home.root), "server", "--http", http]
    if tls:
        argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    fd = os.open(home.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd="/",
        )
    return proc.pid


def wait_until_serving(home: Home, pid: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    client = Client(home, timeout=5.0)
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise PreflightError(
                "the daemon exited while starting",
                where=str(home.daemon_log),
                details=_log_tail(home),
                fix="read the log lines above",
            )
        try:
            client.get("/status")
            return
        except DaemonNotRunning:
            time.sleep(0.1)
    raise PreflightError(
        f"the daemon did not answer within {START_TIMEOUT:g}s",
        where=str(home.daemon_log),
        details=_log_tail(home),
    )


def _log_tail(home: Home) -> list[str]:
    try:
        return home.daemon_log.read_text(errors="replace").splitlines()[-15:]
    except OSError:
        return []


@click.command()
@click.option(
    "--all", "stop_all", is_flag=True, help="Also stop HAProxy and every app instance, gracefully."
)
@json_option
@click.pass_context
def down(ctx: click.Context, stop_all: bool, as_json: bool) -> None:
    """Stop the daemon. Apps and HAProxy keep serving unless --all is given."""
    from slipway.daemon.lifecycle import running_daemon_pid

    home = home_of(ctx)
    pid = running_daemon_pid(home)
    if pid is None:
        if stop_all:
            raise DaemonNotRunning(
                "the daemon is not running, and it is what stops the apps",
                fix="run `slipway up`, then `slipway down --all`",
            )
        if as_json:
            emit_json({"stopped": False, "reason": "not running"})
        else:
            out.print("slipway daemon is not running")
        return
    answer = Client(home, timeout=600.0).post("/shutdown", {"all": stop_all})
    not_stopped = list(answer.get("not_stopped") or []) if isinstance(answer, dict) else []
    deadline = time.monotonic() + 30.0
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(pid):
        raise SlipwayError(
            f"the daemon (pid {pid}) did not stop within 30s",
            fix=f"look at {home.daemon_log}; `kill {pid}` stops it",
        )
    if as_json:
        emit_json({"stopped": True, "all": stop_all, "pid": pid, "not_stopped": not_stopped})
    elif not_stopped:
        out.print("[yellow]stopped[/yellow] the daemon and what it could reach; not stopped:")
        from slipway.cli.output import escape

        for problem in not_stopped:
            out.print(f"  {escape(problem)}")
        out.print("they stop when `slipway up` reaches them again")
    elif stop_all:
        out.print("[green]stopped[/green] the daemon, HAProxy and every instance")
    else:
        out.print("[green]stopped[/green] the daemon; apps and HAProxy keep serving")


def _alive(pid: int) -> bool:
    import psutil  # only the lifecycle commands need it

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@click.command()
@http_option
@click.pass_context
def server(ctx: click.Context, http: str, tls_cert: str | None, tls_key: str | None) -> None:
    """Run the daemon in the foreground (JSON logs on stderr)."""
    from slipway.daemon.server import main
    from slipway.daemon.web import parse_address

    main(home_of(ctx), parse_address(http), tls_of(tls_cert, tls_key))


COMMANDS = [up, down, server]
