"""`slipway agent serve`: a host's agent as a long-lived process. It answers on a unix socket
in its home (0600: only the SSH user slipway logs in as can reach it, through SSH's stream
forwarding), one JSON request per connection: {"method", "params"} → {"result"} or
{"error"}. Standard library only, so it runs from a zipapp on a host with nothing but
Python (package.py).

Instances and HAProxy run on without the agent; a restarted agent finds its instances again
by their folders (runtime/pidfile.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from slipway.agent.core import Agent, error_out
from slipway.paths import Home
from slipway.runtime import pidfile

log = logging.getLogger("slipway.agent")
SOCKET_NAME = "agent.sock"
PID_NAME = "agent.pid"
LOCK_NAME = "agent.lock"
MAX_REQUEST = 256 * 1024 * 1024  # bytes of one request line (a release's files go by SFTP)


async def handle(agent: Agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        line = await reader.readline()
        request = json.loads(line)
        generation = request.get("generation")
        answer = {
            "result": await agent.call(
                str(request["method"]),
                dict(request["params"]),
                int(generation) if generation is not None else None,
            )
        }
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if not isinstance(exc, ValueError | KeyError):
            log.exception("request failed")
        answer = {"error": error_out(exc)}
    with contextlib.suppress(OSError):
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()


async def serve(home: Home) -> None:
    home.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.umask(0o077)
    lock = pidfile.lock(home.root, LOCK_NAME)
    if lock is None:
        raise SystemExit(f"an agent already serves {home.root}")
    pidfile.record(home.root, os.getpid(), PID_NAME)
    agent = Agent(home)
    path = home.root / SOCKET_NAME
    path.unlink(missing_ok=True)
    server = await asyncio.start_unix_server(
        lambda r, w: handle(agent, r, w), path=str(path), limit=MAX_REQUEST
    )
    os.chmod(path, 0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("agent serving %s (pid %s)", path, os.getpid())
    watches = [
        asyncio.create_task(agent.keepalived.watch()),
        asyncio.create_task(agent.firewall.watch()),
        asyncio.create_task(agent.postgres.watch()),
    ]
    async with server:
        await stop.wait()
    for watch in watches:
        watch.cancel()
    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="slipway-agent")
    parser.add_argument("--home", required=True)
    parser.add_argument("command", choices=["serve", "version"])
    args = parser.parse_args(argv)
    if args.command == "version":
        from slipway import __version__

        print(__version__)
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    asyncio.run(serve(Home(Path(args.home).absolute())))


if __name__ == "__main__":
    main()
