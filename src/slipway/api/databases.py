"""Routes for managed databases: list, create, attach to an app, drop, back up, list backups,
verify. Thin: parse, authorise, call db_ops."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slipway.api import API_PREFIX
from slipway.api.schemas import RequestBody
from slipway.daemon import db_ops
from slipway.databases import model
from slipway.errors import UsageError
from slipway.store import databases as stored

if TYPE_CHECKING:
    from slipway.daemon.service import Service

P = API_PREFIX


class CreateRequest(RequestBody):
    name: str = Field(max_length=64)
    host: str = Field(default="local", max_length=63)
    apps: list[str] = Field(default_factory=list, max_length=20)


class AttachRequest(RequestBody):
    app: str = Field(max_length=64)
    variable: str = Field(default=db_ops.URL_VARIABLE, max_length=64)


class DropRequest(RequestBody):
    confirm: str = Field(max_length=64)  # the database's name, typed again


class BackupRequest(RequestBody):
    type: str = Field(default="full", max_length=8)


class ScheduleRequest(RequestBody):
    """Seconds between runs of each kind; null: off; a field left out: unchanged."""

    full: float | None = None
    diff: float | None = None
    verify: float | None = None


class VerifyRequest(RequestBody):
    query: str | None = Field(default=None, max_length=db_ops.MAX_QUERY)


def database_routes(service: Service) -> list[Route]:
    from slipway.api.app import body, ok, route, who  # app.py imports this module

    def name_of(request: Request) -> str:
        return model.check_name(str(request.path_params["name"]))

    async def listing(request: Request) -> Response:
        return ok(await db_ops.views(service))

    async def create(request: Request) -> Response:
        payload = await body(request, CreateRequest)
        created = await db_ops.create(
            service, payload.name, payload.host, payload.apps, who(request)
        )
        return ok(created, 201)

    async def one(request: Request) -> Response:
        return ok(await db_ops.view(service, stored.get(service.store, name_of(request))))

    async def drop(request: Request) -> Response:
        name = name_of(request)
        payload = await body(request, DropRequest)
        if payload.confirm != name:
            raise UsageError(
                f"dropping database {name} needs its name as confirmation",
                where="confirm",
                fix=f'send {{"confirm": "{name}"}}',
            )
        await db_ops.drop(service, name, who(request))
        return ok({"name": name, "dropped": True})

    async def attach(request: Request) -> Response:
        payload = await body(request, AttachRequest)
        result = await db_ops.attach(
            service, name_of(request), payload.app, who(request), payload.variable
        )
        deployment = result["deployment"]
        return ok({"app": payload.app, "variable": payload.variable,
                   "deployment": deployment.id if deployment else None})  # fmt: skip

    async def backups(request: Request) -> Response:
        return ok(await db_ops.backup_list(service, name_of(request)))

    async def backup(request: Request) -> Response:
        payload = await body(request, BackupRequest)
        return ok(await db_ops.backup(service, name_of(request), payload.type, who(request)))

    async def verify(request: Request) -> Response:
        payload = await body(request, VerifyRequest)
        return ok(await db_ops.verify(service, name_of(request), payload.query, who(request)))

    async def plan(request: Request) -> Response:
        payload = await body(request, ScheduleRequest)
        changes = {k: getattr(payload, k) for k in payload.model_fields_set}
        return ok(db_ops.set_schedule(service, name_of(request), changes))

    return [
        route(f"{P}/databases", listing, "viewer", ["GET"]),
        route(f"{P}/databases/{{name}}/schedule", plan, "admin", ["PUT"]),
        route(f"{P}/databases", create, "admin", ["POST"]),
        route(f"{P}/databases/{{name}}", one, "viewer", ["GET"]),
        route(f"{P}/databases/{{name}}", drop, "admin", ["DELETE"]),
        route(f"{P}/databases/{{name}}/attach", attach, "admin", ["POST"]),
        route(f"{P}/databases/{{name}}/backups", backups, "viewer", ["GET"]),
        route(f"{P}/databases/{{name}}/backups", backup, "deployer", ["POST"]),
        route(f"{P}/databases/{{name}}/verify", verify, "deployer", ["POST"]),
    ]
