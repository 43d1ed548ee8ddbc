"""Who may call what. `Guard` authenticates every request and checks it against the role its
route declares with `requires(...)`; a route that declares none is refused (fail closed).

Credentials, in order: a unix-socket peer with the daemon's uid or root (admin, "local");
`Authorization: Bearer <token>`; the `slipway_session` cookie, which holds the token itself
(no server-side sessions to keep: revoking the token ends the session at once)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import os
import pwd
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from slipway.auth.tokens import ROLES, Denied, TokenRecord, check_token, parse_token, role_allows
from slipway.errors import SlipwayError

log = logging.getLogger("slipway.auth")
PUBLIC = "public"  # a route anyone may call: the login page, static assets
ROLE_ATTR = "slipway_role"
COOKIE = "slipway_session"
CSRF_HEADER = "x-csrf-token"
PEER_UID_KEY = "slipway.peer_uid"  # set in the scope by PeerCredProtocol
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # anything else may change state
CHALLENGE = 'Bearer realm="slipway"'
Decision = Callable[["Principal | None", Request, int, str], None]
T = TypeVar("T")


class AuthError(SlipwayError):
    kind = "auth"
    http_status = 401


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    source: str  # "unix socket" or "ip:port"
    token_id: str | None  # None for a local peer


def requires(role: str) -> Callable[[T], T]:
    """Declare the role an endpoint needs (PUBLIC for none); works on a Route's function or a
    Mount's app. Declaring two different roles on one endpoint is an error, not a last-wins."""
    if role != PUBLIC and role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def mark(endpoint: T) -> T:
        if getattr(endpoint, ROLE_ATTR, role) != role:
            raise ValueError(f"{endpoint!r} already requires {getattr(endpoint, ROLE_ATTR)}")
        setattr(endpoint, ROLE_ATTR, role)
        return endpoint

    return mark


def required_role(scope: Scope) -> str | None:
    """The role the matched route declared; None when it declared none. A request no route
    matches needs a viewer: strangers learn nothing, not even which paths exist."""
    routes = getattr(scope.get("app"), "routes", None)
    if routes is None:
        return None
    for route in routes:
        if route.matches(scope)[0] == Match.FULL:
            endpoint = getattr(route, "endpoint", None) or getattr(route, "app", None)
            role = getattr(endpoint, ROLE_ATTR, None)
            return role if isinstance(role, str) else None
    return "viewer"


class FailureLimiter:
    """`limit` failed authentications from one source within a window of `window` seconds
    (from its first failure) block it for `block` seconds. Secrets of 256 bits cannot be
    guessed anyway: this keeps a scanner from flooding the daemon. Successes do not reset
    the count.

    A request with no credentials at all counts as a tenth of a failure: a browser without
    a session sends a few (the page's script, before it goes to /login), a scanner thousands.
    Memory: two numbers per source, at most `max_sources` sources."""

    COST, ANONYMOUS_COST = 10, 1  # in tenths of a failure

    def __init__(
        self,
        limit: int = 10,
        window: float = 60.0,
        block: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.limit, self.window, self.block, self.clock = limit, window, block, clock
        self.max_sources = max_sources  # memory stays bounded under a spray from many IPs
        self._failures: dict[str, tuple[float, int]] = {}  # source → (window start, tenths)
        self._blocked: dict[str, float] = {}

    def retry_after(self, source: str) -> float | None:
        """Seconds until `source` may try again, or None when it is not blocked."""
        until = self._blocked.get(source)
        if until is not None and until > self.clock():
            return until - self.clock()
        self._blocked.pop(source, None)
        return None

    def failure(self, source: str, *, anonymous: bool = False) -> None:
        """A failed authentication from `source`; `anonymous`: it sent no credentials."""
        now = self.clock()
        start, tenths = self._failures.pop(source, (now, 0))
        if not start <= now < start + self.window:
            start, tenths = now, 0
        tenths += self.ANONYMOUS_COST if anonymous else self.COST
        if tenths >= self.limit * self.COST:
            self._blocked[source] = now + self.block
        else:
            self._failures[source] = (start, tenths)  # re-inserted: the newest last
        if len(self._failures) + len(self._blocked) > self.max_sources:
            self._forget(now)

    def _forget(self, now: float) -> None:
        self._blocked = {k: t for k, t in self._blocked.items() if t > now}
        window = self.window
        self._failures = {k: v for k, v in self._failures.items() if v[0] + window > now}
        while self._failures and len(self._failures) + len(self._blocked) > self.max_sources:
            del self._failures[next(iter(self._failures))]  # the least recently failed first


def csrf_token_for(principal: Principal, key: bytes) -> str:
    """The value the dashboard must echo in X-CSRF-Token: a MAC of the session under a server
    key, so a page on another origin (which cannot read our pages) cannot compute it."""
    subject = principal.token_id or f"local:{principal.name}"
    return hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()


def cross_site(request: Request) -> str | None:
    """Why an unsafe request looks sent by another site's page, or None. "same-site" is refused
    too: another app on this host (another port) is same-site, and SameSite=Strict cookies
    reach us from it; only our own origin may change state with the cookie."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site: {fetch_site}"
    origin, host = request.headers.get("origin"), request.headers.get("host", "")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"Origin: {origin}"
    return None


def bearer_token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def principal_of(request: Request) -> Principal:
    """The caller, as authenticated by the Guard; refuses if the Guard did not run."""
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise AuthError("not authenticated", fix="serve this route behind slipway's Guard")
    return principal


@dataclass
class Refusal:
    status: int
    message: str
    fix: str | None
    reason: str  # for the audit log: may say more than the caller is told
    principal: Principal | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        error = AuthError(self.message, fix=self.fix)
        return JSONResponse({"error": error.to_dict()}, self.status, headers=self.headers)


class Guard:
    """ASGI middleware: `Starlette(middleware=[Middleware(Guard, lookup=..., csrf_key=...)])`.

    `on_decision(principal, request, status, reason)` is called for every refused request;
    if it raises (the audit log cannot be written) the request is answered 503."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        lookup: Callable[[str], TokenRecord | None],
        csrf_key: bytes,
        on_decision: Decision | None = None,
        on_used: Callable[[TokenRecord], None] | None = None,
        limiter: FailureLimiter | None = None,
        peer: Callable[[Scope], int | None] | None = None,
        local_uids: frozenset[int] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.app, self.lookup, self.csrf_key, self.now = app, lookup, csrf_key, now
        self.on_decision, self.on_used = on_decision, on_used
        self.limiter = limiter or FailureLimiter()
        self.peer = peer or peer_uid
        self.local_uids = frozenset({os.geteuid(), 0}) if local_uids is None else local_uids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no websocket route has a role: refuse, fail closed
            return await send({"type": "websocket.close", "code": 1008})
        request = Request(scope)
        decision = self.decide(request)
        if isinstance(decision, Refusal):
            try:
                if self.on_decision is not None:
                    self.on_decision(decision.principal, request, decision.status, decision.reason)
            except Exception:
                log.exception("could not audit a refused request; answering 503")
                decision = Refusal(
                    503,
                    "refused: the audit log could not record this request",
                    "check the daemon's log and free disk space",
                    "audit failed",
                )
            return await decision.response()(scope, receive, send)
        if decision is not None:
            scope.setdefault("state", {})["principal"] = decision
        await self.app(scope, receive, send)

    def decide(self, request: Request) -> Principal | Refusal | None:
        """The caller (None on a PUBLIC route) or why the request is refused."""
        scope, method = request.scope, request.method
        what = f"{method} {request.url.path}"
        need = required_role(scope)
        if need is None:
            fix = "declare its role with slipway.auth.guard.requires(...)"
            return Refusal(500, f"no role declared for {what}", fix, "no role declared")
        unsafe = method not in SAFE_METHODS
        if unsafe and (why := cross_site(request)):
            fix = "use the dashboard at its own address, or the CLI"
            return Refusal(403, f"cross-site request refused ({why})", fix, "cross-site")
        if need == PUBLIC:
            return None
        uid = self.peer(scope)
        if uid is not None and uid in self.local_uids:  # the socket's owner or root: no browser
            return Principal(_user_name(uid), "admin", "unix socket", None)
        client = scope.get("client")
        source = str(client[0]) if client else "unix socket"
        wait = self.limiter.retry_after(source)
        if wait is not None:
            retry = str(math.ceil(wait))
            message = f"too many failed attempts from {source}; try again in {retry}s"
            return Refusal(429, message, None, "throttled", headers={"Retry-After": retry})
        text, by_cookie = bearer_token(request), False
        if text is None and COOKIE in request.cookies:
            text, by_cookie = request.cookies[COOKIE], True
        if text is None:
            self.limiter.failure(source, anonymous=True)  # a scanner's, mostly
            fix = "set SLIPWAY_TOKEN or log in"
            return Refusal(401, "authentication required", fix, "no credentials", None, _ask())
        result = check_token(text, self.lookup, self.now())
        if isinstance(result, Denied):
            self.limiter.failure(source)
            parsed = parse_token(text)
            reason = f"{result.reason} (token {parsed[0]})" if parsed else result.reason
            fix = "ask an admin for a token (slipway tokens create)"
            return Refusal(401, result.message, fix, reason, None, _ask('error="invalid_token"'))
        if self.on_used is not None:
            self.on_used(result)
        where = f"{source}:{client[1]}" if client else source
        principal = Principal(result.name, result.role, where, result.id)
        if not role_allows(principal.role, need):
            message = f"{what} needs the {need} role; token '{result.name}' has {result.role}"
            fix = f"use a token with the {need} role"
            return Refusal(403, message, fix, f"needs {need}", principal)
        if by_cookie and unsafe and not self.csrf_ok(request, principal):
            fix = "reload the dashboard page"
            return Refusal(403, "missing or wrong X-CSRF-Token", fix, "csrf", principal)
        return principal

    def csrf_ok(self, request: Request, principal: Principal) -> bool:
        expected = csrf_token_for(principal, self.csrf_key).encode()
        return hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), expected)


def _ask(extra: str | None = None) -> dict[str, str]:
    return {"WWW-Authenticate": f"{CHALLENGE}, {extra}" if extra else CHALLENGE}


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def login_response(token_text: str, secure: bool = True, to: str = "/") -> Response:
    """303 to `to`, setting the session cookie. Meant for a login route that requires a
    viewer and receives the token as `Authorization: Bearer` (sent by the login page's
    script): the Guard has then validated, rate-limited and audited it, and a bearer request
    cannot be forged cross-site. Secure is accepted on http://localhost and 127.0.0.1."""
    response = RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE, token_text, path="/", secure=secure, httponly=True, samesite="strict"
    )
    return response


def logout_response(secure: bool = True, to: str = "/") -> Response:
    response = RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})
    response.delete_cookie(COOKIE, path="/", secure=secure, httponly=True, samesite="strict")
    return response


def peer_uid(scope: Scope) -> int | None:
    uid = scope.get(PEER_UID_KEY)
    return uid if isinstance(uid, int) else None


def socket_peer_uid(sock: Any) -> int | None:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED), else None."""
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    return int(struct.unpack("3i", raw)[1])


class PeerCredProtocol(H11Protocol):
    """uvicorn's h11 protocol, stamping each request of a unix-socket connection with the
    peer's uid: uvicorn puts neither the transport nor the socket in the ASGI scope, so the
    connection is the only place to learn it. Use `uvicorn.Config(..., http=PeerCredProtocol)`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        uid = socket_peer_uid(transport.get_extra_info("socket"))
        if uid is not None:
            app = self.app

            async def stamped(scope: Any, receive: Any, send: Any) -> None:
                scope[PEER_UID_KEY] = uid
                await app(scope, receive, send)

            self.app = stamped
