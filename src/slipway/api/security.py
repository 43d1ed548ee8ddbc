"""The API's guard and audit trail, shared by the unix socket and the TCP listener.

Every request passes the Guard (who is it, may they do this). A refused request is audited
by the Guard's callback, folded per source and minute (slipway.audit.denials: a flood of
refused requests must not fill the disk); every request that may change state is audited
twice by the trail: `accepted` before the endpoint acts (if that cannot be written, the
action is refused with 503 and nothing happens) and then its outcome."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slipway.audit.denials import Denial
from slipway.audit.log import AuditError, AuditLog
from slipway.auth.guard import SAFE_METHODS, Guard, Principal
from slipway.auth.tokens import TokenRecord
from slipway.store import security

if TYPE_CHECKING:
    from slipway.daemon.service import Service

log = logging.getLogger("slipway.audit")


def guarded(service: Service) -> list[Middleware]:
    def lookup(token_id: str) -> TokenRecord | None:
        return security.token(service.store, token_id)

    def used(record: TokenRecord) -> None:
        security.update_token(service.store, record.id, last_used_at=time.time())

    def denied(principal: Principal | None, request: Request, status: int, reason: str) -> None:
        client = request.client
        denial = Denial(
            **actor(principal, request),
            host=client.host if client else "unix socket",
            method=request.method,
            path=request.url.path,
            status=status,
            reason=reason,
        )
        service.denials.record(denial)

    return [
        Middleware(
            Guard,
            lookup=lookup,
            csrf_key=service.csrf_key,
            on_decision=denied,
            on_used=used,
            limiter=service.limiter,
        ),
        Middleware(AuditTrail, audit=service.audit),
    ]


def actor(principal: Principal | None, request: Request) -> dict[str, str]:
    if principal is None:
        client = request.client
        return {"who": "anonymous", "role": "-", "source": client.host if client else "?"}
    name = principal.name
    if principal.token_id is None:  # the unix socket's owner: the CLI names its user
        name = request.headers.get("x-slipway-user", name)
    return {"who": name, "role": principal.role, "source": principal.source}


def describe(scope: Scope) -> tuple[str, str]:
    """(action, target) of a request, from the route it matches: e.g. ("rollback",
    "app=hello"), ("secret PUT", "app=hello name=DB_URL")."""
    for route in scope["app"].routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            name = getattr(route, "name", "?")
            params: dict[str, Any] = child.get("path_params", {})
            target = " ".join(f"{k}={v}" for k, v in params.items())
            return f"{name} {scope['method']}", target
    return f"{scope['method']} {scope['path']}", scope["path"]


class AuditTrail:
    def __init__(self, app: ASGIApp, *, audit: AuditLog) -> None:
        self.app, self.audit = app, audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            return await self.app(scope, receive, send)
        request = Request(scope)
        principal = scope.get("state", {}).get("principal")
        action, target = describe(scope)
        who = actor(principal, request)
        try:
            self.audit.append(**who, action=action, target=target, outcome="accepted")
        except AuditError as exc:
            answer = JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)
            return await answer(scope, receive, send)
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            outcome = "ok" if status < 400 else "failed"
            try:
                detail = {"status": status}
                self.audit.append(
                    **who, action=action, target=target, outcome=outcome, detail=detail
                )
            except AuditError:
                log.exception("the outcome of %s %s was not audited", action, target)
