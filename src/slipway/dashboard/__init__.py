"""The web dashboard: static assets shipped in the package (plain HTML, CSS and ES modules,
uPlot vendored; no build step), served by the daemon's TCP listener. All data comes from the
API's read-only routes, which the page polls.

The page routes answer a clean 404 for an unknown app or release. They ask the API itself
(in-process, through the same Starlette app) rather than the store: the dashboard stays a
client of the API like the CLI, and the answer and its fix are the API's."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from slipway import __version__
from slipway.api import API_PREFIX
from slipway.auth.guard import COOKIE, PUBLIC, requires

STATIC = Path(__file__).parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate (ETag): an upgrade is seen at once


class Assets(StaticFiles):
    """The static folder, always revalidated so a new slipway never runs a stale app.js."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(NO_CACHE)
        return response


def page() -> HTMLResponse:
    text = (STATIC / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(text.replace("{{version}}", __version__), headers=NO_CACHE)


def not_found(message: str, fix: str | None) -> HTMLResponse:
    fix_html = f'<p class="fix">{html.escape(fix)}</p>' if fix else ""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>not found · slipway</title>"
        '<link rel="stylesheet" href="/static/style.css"></head>'
        '<body class="missing"><main class="notfound">'
        '<p class="code">404</p>'
        f"<h1>{html.escape(message)}</h1>{fix_html}"
        '<p><a href="/">← all apps</a></p>'
        "</main></body></html>"
    )
    return HTMLResponse(body, status_code=404, headers=NO_CACHE)


async def ask_api(request: Request, path: str) -> tuple[int, Any]:
    """GET an API route of the app serving this request, without leaving the process, as
    the browser's session (its cookie) and from the browser's address: the Guard counts a
    bad cookie against, and the audit log names, whoever sent it, not this process's
    127.0.0.1. The address is the one the server put in this request's scope; no header
    of the request is read for it.

    Without a session there is nothing to ask (the API would answer 401, and the page's
    script goes to /login): no request, no refusal counted or audited twice."""
    session, client = request.cookies.get(COOKIE), request.client
    if not session or client is None:
        return 401, None
    transport = httpx.ASGITransport(app=request.app, client=(client.host, client.port))
    headers = {"cookie": f"{COOKIE}={session}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client_:
        answer = await client_.get(API_PREFIX + path, headers=headers)
    return answer.status_code, answer.json()


def error_of(body: Any) -> tuple[str, str | None]:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return str(error.get("message", "not found")), error.get("fix")


async def index(request: Request) -> Response:
    return page()


async def app_page(request: Request) -> Response:
    app = request.path_params["app"]
    status, body = await ask_api(request, f"/apps/{quote(app, safe='')}")
    if status == 404:
        return not_found(*error_of(body))
    return page()


async def release_page(request: Request) -> Response:
    app, release = request.path_params["app"], request.path_params["release"]
    status, body = await ask_api(request, f"/apps/{quote(app, safe='')}/releases")
    if status == 404:
        return not_found(*error_of(body))
    known = [r["id"] for r in body] if isinstance(body, list) else []
    if release not in known:
        return not_found(
            f"app '{app}' has no release '{release}'",
            f"pick one of: {', '.join(known[:10]) or 'none'}",
        )
    return page()


def routes() -> list[BaseRoute]:
    """The pages hold no data (the script fetches it with the session's cookie, and goes to
    /login when the API answers 401), so they and the assets are public."""
    return [
        Route("/", requires(PUBLIC)(index)),
        Route("/apps/{app}", requires(PUBLIC)(app_page)),
        Route("/apps/{app}/releases/{release}", requires(PUBLIC)(release_page)),
        Mount("/static", app=requires(PUBLIC)(Assets(directory=STATIC)), name="static"),
    ]
