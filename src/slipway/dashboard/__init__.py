"""The web dashboard: static assets shipped in the package, served by the daemon's TCP
listener; all data comes from the API's read-only routes."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html")


def routes() -> list[BaseRoute]:
    return [
        Route("/", index),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
