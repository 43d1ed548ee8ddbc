"""Routes for the control plane's replica: its state, turning it on or off, shipping now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.api import API_PREFIX
from slipway.api.schemas import RequestBody
from slipway.daemon import replica_ops
from slipway.errors import UsageError

if TYPE_CHECKING:
    from slipway.daemon.service import Service

P = API_PREFIX


class ReplicaRequest(RequestBody):
    host: str
    every: float | None = None  # seconds
    keep: int | None = None


def control_routes(service: Service) -> list[Route]:
    from slipway.api.app import body, ok, route  # app.py imports this module

    async def state(request: Request) -> Response:
        return ok(service.replicator.view())

    async def change(request: Request) -> Response:
        if request.method == "DELETE":
            return ok(replica_ops.stop(service))
        payload = await body(request, ReplicaRequest)
        if len(payload.host) > 63:
            raise UsageError("a host name has at most 63 characters", where="host")
        return ok(await replica_ops.replicate(service, payload.host, payload.every, payload.keep))

    async def ship(request: Request) -> Response:
        return ok(await replica_ops.ship_now(service))

    return [
        route(f"{P}/control/replica", state, "viewer", ["GET"]),
        route(f"{P}/control/replica", change, "admin", ["PUT", "DELETE"]),
        route(f"{P}/control/replica/ship", ship, "admin", ["POST"]),
    ]
