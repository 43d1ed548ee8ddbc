"""Admin routes: API tokens and the audit log."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from slipway.api import API_PREFIX
from slipway.api.schemas import RequestBody
from slipway.auth import tokens
from slipway.auth.guard import requires
from slipway.config.durations import parse_duration
from slipway.errors import NotFound, UsageError
from slipway.store import security

if TYPE_CHECKING:
    from slipway.daemon.service import Service

P = API_PREFIX


class TokenRequest(RequestBody):
    name: str
    role: str
    expires: str | None = None  # a duration: "30d"


def token_view(record: tokens.TokenRecord) -> dict[str, Any]:
    view = {k: v for k, v in vars(record).items() if k != "secret_hash"}
    return view | {"state": record.state(time.time())}


def admin_routes(service: Service) -> list[Route]:
    from slipway.api.app import body, ok, who  # app.py imports this module

    async def create_token(request: Request) -> Response:
        payload = await body(request, TokenRequest)
        ttl = None
        if payload.expires:
            try:
                ttl = parse_duration(payload.expires)
            except ValueError as exc:
                raise UsageError(str(exc), where="--expires", fix="e.g. 30d, 12h") from None
        while True:
            text, record = tokens.new_token(
                payload.name, payload.role, who(request), ttl, time.time()
            )
            if security.token(service.store, record.id) is None:  # ids are short: redraw
                break
        security.add_token(service.store, record)
        return ok({"token": text, **token_view(record)}, 201)

    async def list_tokens(request: Request) -> Response:
        return ok([token_view(r) for r in security.tokens(service.store)])

    async def revoke_token(request: Request) -> Response:
        token_id = request.path_params["id"]
        record = security.token(service.store, token_id)
        if record is None:
            raise NotFound(f"no token with id {token_id}", fix="see `slipway tokens list`")
        if record.revoked_at is None:
            security.update_token(service.store, token_id, revoked_at=time.time())
        return ok(token_view(security.token(service.store, token_id) or record))

    async def audit(request: Request) -> Response:
        since = request.query_params.get("since")
        start = None
        if since:
            try:
                start = time.time() - parse_duration(since)
            except ValueError as exc:
                raise UsageError(str(exc), where="--since", fix="e.g. 15m, 24h, 7d") from None
        service.denials.flush()  # refused requests counted so far, not only past minutes
        return JSONResponse([vars(e) for e in service.audit.entries(start)])

    async def verify(request: Request) -> Response:
        service.denials.flush()
        result = service.audit.verify()
        return JSONResponse(
            {
                "ok": result.ok,
                "entries": result.entries,
                "files": result.files,
                "problems": result.problems,
            }
        )

    return [
        Route(f"{P}/tokens", requires("admin")(create_token), methods=["POST"]),
        Route(f"{P}/tokens", requires("admin")(list_tokens), methods=["GET"]),
        Route(f"{P}/tokens/{{id}}", requires("admin")(revoke_token), methods=["DELETE"]),
        Route(f"{P}/audit", requires("admin")(audit)),
        Route(f"{P}/audit/verify", requires("admin")(verify)),
    ]
