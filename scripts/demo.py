"""`make demo`: a daemon in a throwaway home (.demo/), examples/hello deployed, a new version
deployed under load with zero failed requests, then an instant rollback.

Everything it starts keeps running afterwards so you can look around; it prints how to stop.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel

from slipway.loadgen import BackgroundLoad, LoadResult

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
HOME = DEMO / "home"
APP = DEMO / "hello"
console = Console(highlight=False)


def slipway(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    console.print(f"[bold cyan]$ slipway {' '.join(args)}[/bold cyan]")
    env = os.environ | {"SLIPWAY_HOME": str(HOME)}
    proc = subprocess.run(
        [sys.executable, "-m", "slipway", *args],
        env=env,
        cwd=APP,
        text=True,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    if check and proc.returncode != 0:
        console.print(f"[red]slipway {' '.join(args)} failed (exit {proc.returncode})[/red]")
        raise SystemExit(proc.returncode)
    return proc


def pick_port(preferred: int = 8080) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def set_greeting(text: str) -> None:
    config = APP / "slipway.toml"
    lines = [
        f'GREETING = "{text}"' if ln.startswith("GREETING") else ln
        for ln in config.read_text().splitlines()
    ]
    config.write_text("\n".join(lines) + "\n")


def fresh_start() -> int:
    if HOME.exists():  # a previous demo: stop everything it left running
        env = os.environ | {"SLIPWAY_HOME": str(HOME)}
        subprocess.run([sys.executable, "-m", "slipway", "up"], env=env, capture_output=True)
        subprocess.run(
            [sys.executable, "-m", "slipway", "down", "--all"], env=env, capture_output=True
        )
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    shutil.copytree(ROOT / "examples" / "hello", APP, ignore=shutil.ignore_patterns("__pycache__"))
    port = pick_port()
    config = APP / "slipway.toml"
    config.write_text(config.read_text().replace("port = 8080", f"port = {port}"))
    return port


def dashboard_url() -> str:
    try:
        return (HOME / "http.url").read_text().strip()
    except OSError:
        return "not served (see the daemon log)"


def dashboard_token() -> str:
    """A viewer token for the dashboard's login page (the CLI, the socket's owner, is admin)."""
    env = os.environ | {"SLIPWAY_HOME": str(HOME)}
    args = ["tokens", "create", "--name", "demo", "--role", "viewer", "--json"]
    console.print(f"[bold cyan]$ slipway {' '.join(args[:-1])}[/bold cyan]")
    proc = subprocess.run(
        [sys.executable, "-m", "slipway", *args], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        console.print(f"[red]{proc.stderr}[/red]")
        return "(none: see the error above)"
    token: str = json.loads(proc.stdout)["token"]
    console.print(f"a viewer token for the dashboard: {token}")
    return token


def under_load(url: str, what: str, *args: str) -> LoadResult:
    with BackgroundLoad(url, concurrency=6, rate=300, record_key="release") as load:
        time.sleep(1.5)
        slipway(*args)
        time.sleep(1.5)
        result = load.stop()
    served = ", ".join(f"{release}: {n}" for release, n in sorted(result.bodies.items()))
    colour = "green" if result.failed == 0 else "red"
    console.print(
        Panel(
            f"{result.sent} requests during {what} ({result.rate:.0f}/s): "
            f"[bold {colour}]{result.failed} failed[/bold {colour}]\n"
            f"answered by {served}; p50 {result.quantile(0.5):.1f} ms, "
            f"p99 {result.quantile(0.99):.1f} ms",
            title=what,
            expand=False,
        )
    )
    return result


def main() -> None:
    console.rule("[bold]slipway demo")
    port = fresh_start()
    url = f"http://127.0.0.1:{port}/"
    console.print(f"home: {HOME}\napp:  {APP} (a copy of examples/hello on port {port})\n")
    slipway("up")
    console.rule("1. first deploy")
    slipway("deploy")
    console.print(f"[bold]GET {url}[/bold] → {httpx.get(url, timeout=5).text.strip()}\n")
    console.rule("2. a new version, deployed under load")
    set_greeting("hello again, from the second release")
    deploy = under_load(url, "the deploy", "deploy")
    console.print(f"[bold]GET {url}[/bold] → {httpx.get(url, timeout=5).text.strip()}\n")
    console.rule("3. instant rollback (the previous release was kept warm)")
    rollback = under_load(url, "the rollback", "rollback")
    console.print(f"[bold]GET {url}[/bold] → {httpx.get(url, timeout=5).text.strip()}\n")
    console.rule("4. what is running")
    slipway("status")
    slipway("ps")
    slipway("releases")
    console.rule("5. what production did (the daemon's own metrics history)")
    slipway("metrics", "--since", "5m")
    slipway("requests", "-n", "5")
    slipway("alerts")
    console.rule("6. gates, access and the audit trail")
    slipway("gates")
    login = dashboard_token()
    slipway("audit", "--since", "10m")
    failed = deploy.failed + rollback.failed
    console.rule("[bold green]done" if failed == 0 else "[bold red]requests failed")
    console.print(
        f"Everything is still running. Look around with:\n"
        f"  export SLIPWAY_HOME={HOME}\n"
        f"  .venv/bin/slipway status | ps | releases | logs -f | metrics | alerts\n"
        f"The dashboard: {dashboard_url()} (log in with the viewer token {login})\n"
        f"Stop it all with:\n"
        f"  .venv/bin/slipway --home {HOME} down --all"
    )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
