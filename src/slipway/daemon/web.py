"""The daemon's TCP listener (loopback by default, TLS optional): the API for CLIs on other
hosts (SLIPWAY_URL + SLIPWAY_TOKEN), the dashboard, and `/metrics` for Prometheus. Every
route needs a token; only the login page and static assets do not."""

from __future__ import annotations

import ipaddress
import logging
import socket
import unicodedata
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from slipway.api import API_PREFIX
from slipway.api.app import api_routes, on_error
from slipway.api.security import guarded
from slipway.auth.guard import (
    PUBLIC,
    bearer_token,
    csrf_token_for,
    login_response,
    logout_response,
    principal_of,
    requires,
)
from slipway.daemon.service import Service
from slipway.dashboard import STATIC
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
    request_shutdown: Callable[[bool], Awaitable[list[str]]],
    extra: list[BaseRoute] | None = None,
) -> Starlette:
    """The TCP listener: the whole API (tokens required), the dashboard with its login, and
    /metrics (a viewer token: Prometheus sends it as a bearer token)."""
    metrics_registry = registry(service)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route("/metrics", requires("viewer")(metrics)),
        *session_routes(service),
        *api_routes(service, request_shutdown),
        *(extra or []),
    ]
    return Starlette(
        routes=routes, exception_handlers={SlipwayError: on_error}, middleware=guarded(service)
    )


def session_routes(service: Service) -> list[BaseRoute]:
    """The dashboard's login: the page's script sends the token as a bearer token (so the
    Guard checks, throttles and audits it like any other), and gets the session cookie."""

    async def login_page(request: Request) -> Response:
        text = (STATIC / "login.html").read_text(encoding="utf-8")
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    async def login(request: Request) -> Response:
        token = bearer_token(request)
        assert token is not None  # the Guard let a viewer in: it came as a bearer token
        return login_response(token, to=safe_next(request.query_params.get("next")))

    async def logout(request: Request) -> Response:
        return logout_response(to="/login")

    async def session(request: Request) -> Response:
        principal = principal_of(request)
        csrf = csrf_token_for(principal, service.csrf_key)
        return JSONResponse({"name": principal.name, "role": principal.role, "csrf": csrf})

    return [
        Route("/login", requires(PUBLIC)(login_page), methods=["GET"]),
        Route("/login", requires("viewer")(login), methods=["POST"]),
        Route("/logout", requires("viewer")(logout), methods=["POST"]),
        Route(f"{API_PREFIX}/session", requires("viewer")(session)),
    ]


MAX_NEXT = 2048  # characters of a `next` target kept; a longer one goes to "/"


def safe_next(target: str | None) -> str:
    """`target` if it is a plain absolute path on this site, else "/": never an open
    redirect. Browsers read `\\` as `/` (so `/\\evil.example` is `//evil.example`, another
    host) and drop tabs and newlines from URLs, so any backslash, control character or
    whitespace is refused, as is a scheme, a host or a second leading slash."""
    if not target or len(target) > MAX_NEXT or not target.startswith("/"):
        return "/"
    if target.startswith("//") or "\\" in target:
        return "/"
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in target):
        return "/"  # Cc control, Cf format (invisible), Cs, Co, Cn; and any whitespace
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
