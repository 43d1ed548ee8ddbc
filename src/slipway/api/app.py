"""The daemon's HTTP API (JSON over a unix socket, and over TCP beside the dashboard). Thin:
authorise, parse, call the service, answer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from slipway.api import API_PREFIX, schemas
from slipway.api.admin import admin_routes
from slipway.api.control import control_routes
from slipway.api.databases import database_routes
from slipway.api.openapi import openapi
from slipway.api.params import MAX_ID, MAX_LINES, flag_param, id_param, int_param
from slipway.api.security import actor, guarded
from slipway.auth.guard import requires
from slipway.daemon import cache_ops, fleet_doctor, host_ops, insight, secret_ops, vip_ops
from slipway.daemon.logs import LogFilter, LogReader
from slipway.daemon.service import Service, deployment_view
from slipway.errors import SlipwayError, TooLarge, UsageError
from slipway.store import autoscale as autoscale_store

Handler = Callable[[Request], Awaitable[Response]]
Shutdown = Callable[[bool], Awaitable[list[str]]]  # `slipway down`: what could not be stopped
P = API_PREFIX
MAX_BODY = 1024 * 1024  # the largest request is a deploy or a 64 KiB secret: 1 MiB is ample


def ok(value: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(_plain(value), status_code=status)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def route(path: str, endpoint: Handler, role: str, methods: list[str] | None = None) -> Route:
    """Every route declares the role it needs; the Guard refuses any that does not."""
    return Route(path, requires(role)(endpoint), methods=methods)


def who(request: Request) -> str:
    """The token's name; on the unix socket, the local user the CLI says it runs as."""
    return actor(request.scope.get("state", {}).get("principal"), request)["who"]


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body, reading no more than `limit` bytes: a Content-Length over it is
    refused before anything is read, and a chunked body is cut off once it passes it."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the request body is larger than {limit} bytes ({limit // 1024} KiB)",
        where="body",
        fix="send the JSON described in docs/api.md; a secret's value is at most 64 KiB",
    )


async def body(request: Request, model: type[BaseModel]) -> Any:
    raw = await read_body(request)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(
            f"bad request body: {first['msg']}",
            where=where or None,
            fix="send the JSON described in docs/api.md",
        ) from None


def ndjson(items: AsyncIterator[BaseModel | dict[str, Any]]) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        async for item in items:
            yield (json.dumps(_plain(item)) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SlipwayError)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)


def create_app(service: Service, request_shutdown: Shutdown) -> Starlette:
    """The API on the unix socket: its owner (or root) is admin; anyone else needs a token."""
    routes = api_routes(service, request_shutdown)
    return Starlette(
        routes=routes,
        exception_handlers={SlipwayError: on_error},
        middleware=guarded(service),
    )


def api_routes(service: Service, request_shutdown: Shutdown) -> list[Route]:
    reader = LogReader(service.store, service.runtime)

    async def status(request: Request) -> Response:
        return ok(await service.status())

    async def app_status(request: Request) -> Response:
        return ok(await service.app_view(request.path_params["app"]))

    async def releases(request: Request) -> Response:
        return ok(service.release_views(request.path_params["app"]))

    async def gates(request: Request) -> Response:
        app = request.path_params["app"]
        return ok(service.gate_views(app, request.path_params.get("release")))

    async def secrets(request: Request) -> Response:
        return ok(secret_ops.list_secrets(service, request.path_params["app"]))

    async def secret(request: Request) -> Response:
        app, name = request.path_params["app"], request.path_params["name"]
        if request.method == "DELETE":
            result = secret_ops.unset_secret(service, app, name, who(request))
        else:
            payload = await body(request, schemas.SecretValue)
            result = secret_ops.set_secret(service, app, name, payload.value, who(request))
        deployment = result["deployment"]
        result["deployment"] = deployment_view(deployment).model_dump() if deployment else None
        return ok(result, 202 if deployment else 200)

    async def reveal(request: Request) -> Response:
        app, name = request.path_params["app"], request.path_params["name"]
        secret_ops.check_place(app, name)
        return ok({"name": name, "value": service.secrets.reveal(app, name)})

    async def rotate_key(request: Request) -> Response:
        return ok(secret_ops.rotate_key(service))

    async def instances(request: Request) -> Response:
        return ok(await service.instance_views(request.path_params.get("app")))

    async def deployments(request: Request) -> Response:
        app = request.path_params["app"]
        service.store.app(app)
        return ok([deployment_view(service.settled(d)) for d in service.store.deployments(app)])

    async def deploy(request: Request) -> Response:
        payload = await body(request, schemas.DeployRequest)
        return ok(deployment_view(await service.deploy(payload, who(request))), 202)

    async def rollback(request: Request) -> Response:
        payload = await body(request, schemas.RollbackRequest)
        deployment = await service.rollback(
            request.path_params["app"], payload.release, who(request)
        )
        return ok(deployment_view(deployment), 202)

    async def scale(request: Request) -> Response:
        payload = await body(request, schemas.ScaleRequest)
        deployment = await service.scale(request.path_params["app"], payload.counts, who(request))
        return ok(deployment_view(deployment), 202)

    async def canary(request: Request) -> Response:
        app, command = request.path_params["app"], request.path_params["command"]
        if command == "abort":
            return ok(deployment_view(await service.abort(app, who(request))), 202)
        if command not in ("promote", "pause", "resume"):
            raise UsageError(
                f"unknown command '{command}'", fix="use promote, abort, pause or resume"
            )
        return ok(deployment_view(service.canary_command(app, command, who(request))), 202)

    async def analysis(request: Request) -> Response:
        app = request.path_params.get("app")
        deployment_id = id_param(request.path_params) if "id" in request.path_params else None
        return ok(service.analysis(deployment_id, app))

    async def deployment(request: Request) -> Response:
        return ok(deployment_view(service.deployment(id_param(request.path_params))))

    async def events(request: Request) -> Response:
        deployment_id = id_param(request.path_params)
        service.store.deployment(deployment_id)  # 404 first
        q = request.query_params
        after = int_param(q, "after", 0, 0, MAX_ID, "after=ID of the last event seen, e.g. 0")
        follow = flag_param(q, "follow")

        async def stream() -> AsyncIterator[BaseModel | dict[str, Any]]:
            nonlocal after
            while True:
                finished = service.deployment(deployment_id).finished_at is not None
                for event in service.deployment_events(deployment_id, after):
                    after = event.id
                    yield event
                if finished or not follow:
                    final = deployment_view(service.deployment(deployment_id))
                    yield {"final": final.model_dump(mode="json")}
                    return
                await service.engine.wait_for_change(0.5)

        return ndjson(stream())

    async def logs(request: Request) -> Response:
        app = request.path_params["app"]
        service.store.app(app)
        q = request.query_params
        selection = LogFilter(
            app,
            q.get("release"),
            q.get("process"),
            q.get("instance"),
            insight.since_of(q) if q.get("since") else None,
            insight.pattern(q.get("grep")),
        )
        if selection.release:
            service.store.release(app, selection.release)
        count = int_param(q, "lines", 100, 0, MAX_LINES, f"lines=100 (0 to {MAX_LINES})")
        follow = flag_param(q, "follow")
        # Reading and filtering every log file can take a while: never on the event loop.
        lines, offsets = await reader.last(selection, count)

        async def stream() -> AsyncIterator[BaseModel | dict[str, Any]]:
            for line in lines:
                yield line
            if follow:
                async for batch in reader.follow(selection, offsets):
                    for line in batch:
                        yield line

        return ndjson(stream())

    async def shutdown(request: Request) -> Response:
        payload = await body(request, schemas.ShutdownRequest)
        not_stopped = await request_shutdown(payload.all)
        return ok({"stopping": True, "all": payload.all, "not_stopped": not_stopped})

    async def metrics(request: Request) -> Response:
        app = request.path_params["app"]
        data = insight.metrics(service.store, app, request.query_params)
        data["cache"] = await cache_ops.counters(service, app)
        return ok(data)

    async def cache_purge(request: Request) -> Response:
        return ok(await cache_ops.purge(service, request.path_params["app"]))

    async def requests(request: Request) -> Response:
        app, q = request.path_params["app"], request.query_params
        return ok(insight.requests(service.home, service.store, app, q))

    async def alerts(request: Request) -> Response:
        app = request.path_params.get("app")
        insight.require_app(service.store, app)
        return ok(service.alerting.view(app))

    async def autoscale(request: Request) -> Response:
        app = request.path_params["app"]
        service.store.app(app)
        limit = int_param(request.query_params, "history", 0, 0, 2000, "history=50")
        return ok(
            {
                "processes": service.autoscaler.view(app),
                "history": autoscale_store.history(service.store, app, limit) if limit else [],
            }
        )

    async def autoscale_resume(request: Request) -> Response:
        app = request.path_params["app"]
        payload = await body(request, schemas.AutoscaleResumeRequest)
        return ok(service.resume_autoscaling(app, payload.process, who(request)))

    async def hosts(request: Request) -> Response:
        return ok(await host_ops.host_views(service))

    async def host_add(request: Request) -> Response:
        payload = await body(request, schemas.HostRequest)
        added = await host_ops.add_host(service, payload.model_dump())
        return ok({"name": added.name, "agent": added.agent_version, "facts": added.facts}, 201)

    async def host_scan(request: Request) -> Response:
        q = request.query_params
        address = q.get("address", "")
        if not address or len(address) > 255:
            raise UsageError("give the host's address: ?address=IP", where="address")
        port = int_param(q, "port", 22, 1, 65535, "port=22")
        return ok(await host_ops.scan(address, port))

    async def host(request: Request) -> Response:
        name = request.path_params["name"]
        if request.method == "DELETE":
            await host_ops.remove_host(service, name)
            return ok({"removed": name})
        payload = await body(request, schemas.RolesRequest)
        changed = await host_ops.set_roles(service, name, payload.roles)
        return ok({"name": changed.name, "roles": sorted(changed.roles)})

    async def host_capacity(request: Request) -> Response:
        payload = await body(request, schemas.CapacityRequest)
        name = request.path_params["name"]
        host_ops.set_capacity(service, name, payload.cpu, payload.memory)
        view = next(v for v in await host_ops.host_views(service) if v["name"] == name)
        return ok(view)

    async def host_upgrade(request: Request) -> Response:
        upgraded = await host_ops.upgrade_host(service, request.path_params["name"])
        return ok({"name": upgraded.name, "agent": upgraded.agent_version})

    async def vip(request: Request) -> Response:
        return ok(await vip_ops.view(service))

    async def vip_change(request: Request) -> Response:
        if request.method == "PUT":
            payload = await body(request, schemas.VipRequest)
            return ok(await vip_ops.set_vip(service, payload.model_dump()))
        await vip_ops.remove_vip(service)
        return ok(await vip_ops.view(service))

    async def doctor(request: Request) -> Response:
        return ok(await fleet_doctor.views(service))

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi(request.app.routes))

    viewer, deployer, admin = "viewer", "deployer", "admin"
    return [
        route(f"{P}/status", status, viewer),
        route(f"{P}/alerts", alerts, viewer),
        route(f"{P}/apps/{{app}}/alerts", alerts, viewer),
        route(f"{P}/instances", instances, viewer),
        route(f"{P}/deploy", deploy, deployer, ["POST"]),
        route(f"{P}/apps/{{app}}", app_status, viewer),
        route(f"{P}/apps/{{app}}/releases", releases, viewer),
        route(f"{P}/apps/{{app}}/secrets", secrets, viewer),
        route(f"{P}/apps/{{app}}/secrets/{{name}}", secret, admin, ["PUT", "DELETE"]),
        route(f"{P}/apps/{{app}}/secrets/{{name}}/reveal", reveal, admin, ["POST"]),
        route(f"{P}/secrets/rotate-key", rotate_key, admin, ["POST"]),
        route(f"{P}/apps/{{app}}/gates", gates, viewer),
        route(f"{P}/apps/{{app}}/releases/{{release}}/gates", gates, viewer),
        route(f"{P}/apps/{{app}}/instances", instances, viewer),
        route(f"{P}/apps/{{app}}/deployments", deployments, viewer),
        route(f"{P}/apps/{{app}}/logs", logs, viewer),
        route(f"{P}/apps/{{app}}/rollback", rollback, deployer, ["POST"]),
        route(f"{P}/apps/{{app}}/cache/purge", cache_purge, deployer, ["POST"]),
        route(f"{P}/apps/{{app}}/scale", scale, deployer, ["POST"]),
        route(f"{P}/apps/{{app}}/autoscale", autoscale, viewer),
        route(f"{P}/apps/{{app}}/autoscale/resume", autoscale_resume, deployer, ["POST"]),
        route(f"{P}/apps/{{app}}/analysis", analysis, viewer),
        route(f"{P}/apps/{{app}}/{{command}}", canary, deployer, ["POST"]),
        route(f"{P}/deployments/{{id:id}}", deployment, viewer),
        route(f"{P}/deployments/{{id:id}}/analysis", analysis, viewer),
        route(f"{P}/deployments/{{id:id}}/events", events, viewer),
        route(f"{P}/apps/{{app}}/metrics", metrics, viewer),
        route(f"{P}/apps/{{app}}/requests", requests, viewer),
        route(f"{P}/shutdown", shutdown, admin, ["POST"]),
        route(f"{P}/hosts", hosts, viewer, ["GET"]),
        route(f"{P}/hosts/add", host_add, admin, ["POST"]),
        route(f"{P}/hosts/scan", host_scan, admin, ["GET"]),
        route(f"{P}/hosts/{{name}}", host, admin, ["PUT", "DELETE"]),
        route(f"{P}/hosts/{{name}}/upgrade", host_upgrade, admin, ["POST"]),
        route(f"{P}/hosts/{{name}}/capacity", host_capacity, admin, ["PUT"]),
        route(f"{P}/fleet/doctor", doctor, admin, ["GET"]),
        route(f"{P}/fleet/vip", vip, viewer, ["GET"]),
        route(f"{P}/fleet/vip", vip_change, admin, ["PUT", "DELETE"]),
        *admin_routes(service),
        *control_routes(service),
        *database_routes(service),
        route(f"{P}/openapi.json", openapi_json, viewer),
    ]
