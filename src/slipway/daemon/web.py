"""The daemon's TCP listener (loopback by default): `/metrics` for Prometheus, the dashboard,
and the API's read-only routes the dashboard uses. Changes go through the unix socket."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from slipway.api.app import api_routes, on_error, read_only
from slipway.daemon.service import Service
from slipway.errors import SlipwayError, UsageError
from slipway.metrics.exposition import registry

log = logging.getLogger("slipway.daemon")
DEFAULT_ADDRESS = "127.0.0.1:7870"
ENV_VAR = "SLIPWAY_HTTP"


def parse_address(text: str) -> tuple[str, int] | None:
    """ "HOST:PORT" → (host, port); "off" → None (no TCP listener)."""
    if text.strip().lower() == "off":
        return None
    host, sep, port = text.strip().rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise UsageError(
            f'"{text}" is not an address for the dashboard and /metrics',
            where=f"--http / {ENV_VAR}",
            fix='use IP:PORT such as "127.0.0.1:7870" (port 0 picks a free one), or "off"',
        ) from None
    return host.strip("[]"), number


def bind(address: tuple[str, int]) -> socket.socket | None:
    """The listening socket, or None (logged) when the address is taken: the dashboard being
    unavailable must never keep the daemon, and so deploys, from running."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it a response's body waits for the ACK of its headers (up to 40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        log.error("cannot serve the dashboard and /metrics on %s:%s: %s", *address, exc)
        return None
    sock.listen(128)
    if not ipaddress.ip_address(address[0]).is_loopback:
        log.warning("dashboard and /metrics listen on %s:%s, beyond this host", *address)
    return sock


def create_web_app(
    service: Service,
    request_shutdown: Callable[[bool], Awaitable[None]],
    extra: list[BaseRoute] | None = None,
) -> Starlette:
    metrics_registry = registry(service)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/metrics", metrics),
        *read_only(api_routes(service, request_shutdown)),
        *(extra or []),
    ]
    return Starlette(routes=routes, exception_handlers={SlipwayError: on_error})
