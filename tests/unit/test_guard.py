"""The Guard: 401/403/429 answers, declared roles (fail closed), cookies and CSRF, the audit
callback, the failure limiter, and the peer uid of a real unix-socket connection."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from slipway.auth.guard import (
    COOKIE,
    PUBLIC,
    FailureLimiter,
    Guard,
    PeerCredProtocol,
    Principal,
    csrf_token_for,
    login_response,
    logout_response,
    peer_uid,
    principal_of,
    requires,
    socket_peer_uid,
)
from slipway.auth.tokens import TokenRecord, new_token

NOW = 1_700_000_000.0
KEY = b"k" * 32


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@requires("viewer")
async def status(request: Request) -> Response:
    p = principal_of(request)
    return JSONResponse({"name": p.name, "role": p.role, "source": p.source, "id": p.token_id})


@requires("deployer")
async def deploy(request: Request) -> Response:
    return JSONResponse({"deployed": True, "by": principal_of(request).name}, 202)


@requires("viewer")
async def session(request: Request) -> Response:
    return JSONResponse({"csrf": csrf_token_for(principal_of(request), KEY)})


@requires("viewer")
async def login(request: Request) -> Response:
    return login_response(request.headers["authorization"].split()[1])


@requires(PUBLIC)
async def page(request: Request) -> Response:
    return PlainTextResponse("login page")


async def undeclared(request: Request) -> Response:
    return PlainTextResponse("should never be served")


class World:
    def __init__(self, on_decision: Any = None, peer: Any = None) -> None:
        self.records: dict[str, TokenRecord] = {}
        self.decisions: list[tuple[Principal | None, str, int, str]] = []
        self.used: list[str] = []
        self.clock = Clock()
        self.limiter = FailureLimiter(limit=3, window=60, block=60, clock=self.clock)

        def record(principal: Principal | None, request: Request, status: int, why: str) -> None:
            self.decisions.append((principal, f"{request.method} {request.url.path}", status, why))

        routes = [
            Route("/v1/status", status),
            Route("/v1/deploy", deploy, methods=["POST"]),
            Route("/v1/session", session),
            Route("/v1/undeclared", undeclared),
            Route("/login", page),
            Route("/login", login, methods=["POST"]),
            Mount("/static", app=requires(PUBLIC)(PlainTextResponse("asset"))),
        ]
        guard = Middleware(
            Guard,
            lookup=self.records.get,
            csrf_key=KEY,
            on_decision=on_decision or record,
            on_used=lambda r: self.used.append(r.id),
            limiter=self.limiter,
            peer=peer,
            now=lambda: NOW,
        )
        self.app = Starlette(routes=routes, middleware=[guard])

    def token(self, role: str, **changes: Any) -> str:
        text, record = new_token(f"{role}-token", role, "alice", None, NOW - 10)
        self.records[record.id] = dataclasses.replace(record, **changes)
        return text

    def client(self, ip: str = "10.0.0.1") -> TestClient:
        return TestClient(self.app, client=(ip, 4242), follow_redirects=False)


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


def cookie(text: str, **extra: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={text}", **extra}


def test_no_credentials_is_401_with_challenge() -> None:
    world = World()
    answer = world.client().get("/v1/status")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="slipway"'
    error = answer.json()["error"]
    assert error["kind"] == "auth" and error["fix"] == "set SLIPWAY_TOKEN or log in"
    assert world.decisions == [(None, "GET /v1/status", 401, "no credentials")]


def test_unknown_path_needs_credentials_too() -> None:
    world = World()
    assert world.client().get("/nowhere").status_code == 401
    assert world.client().get("/nowhere", headers=bearer(world.token("viewer"))).status_code == 404


@pytest.mark.parametrize("text", ["swt_00000000_" + "A" * 43, "garbage", ""])
def test_bad_token_is_401_invalid(text: str) -> None:
    world = World()
    answer = world.client().get("/v1/status", headers=bearer(text))
    assert answer.status_code == 401 and answer.json()["error"]["message"] == "invalid token"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_wrong_secret_reads_like_unknown_but_the_audit_knows() -> None:
    world = World()
    real = world.token("admin")
    token_id = real.split("_")[1]
    answer = world.client().get("/v1/status", headers=bearer(f"swt_{token_id}_{'B' * 43}"))
    assert answer.json()["error"]["message"] == "invalid token"
    assert world.decisions[-1][3] == f"wrong secret (token {token_id})"


@pytest.mark.parametrize(
    ("field", "message"), [("revoked_at", "revoked"), ("expires_at", "expired")]
)
def test_revoked_or_expired_is_401_with_the_reason(field: str, message: str) -> None:
    world = World()
    text = world.token("admin", **{field: NOW - 1})
    answer = world.client().get("/v1/status", headers=bearer(text))
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == f"token {message}"


def test_viewer_on_a_deployer_route_is_403() -> None:
    world = World()
    answer = world.client().post("/v1/deploy", headers=bearer(world.token("viewer")))
    assert answer.status_code == 403
    message = answer.json()["error"]["message"]
    assert "needs the deployer role" in message and "has viewer" in message
    principal, _, status, why = world.decisions[-1]
    assert principal is not None and principal.role == "viewer" and status == 403


def test_admin_may_do_everything_and_the_endpoint_sees_who() -> None:
    world = World()
    text = world.token("admin")
    client = world.client()
    assert client.post("/v1/deploy", headers=bearer(text)).json() == {
        "deployed": True,
        "by": "admin-token",
    }
    body = client.get("/v1/status", headers=bearer(text)).json()
    assert body == {
        "name": "admin-token",
        "role": "admin",
        "source": "10.0.0.1:4242",
        "id": text.split("_")[1],
    }
    assert world.decisions == [] and len(world.used) == 2


def test_undeclared_route_is_refused_even_for_admin() -> None:
    world = World()
    answer = world.client().get("/v1/undeclared", headers=bearer(world.token("admin")))
    assert answer.status_code == 500 and "no role declared" in answer.json()["error"]["message"]
    assert world.decisions[-1][2:] == (500, "no role declared")


def test_public_routes_need_nothing() -> None:
    world = World()
    assert world.client().get("/login").text == "login page"
    assert world.client().get("/static/app.js").text == "asset"


def test_declaring_two_roles_on_one_endpoint_is_an_error() -> None:
    async def endpoint(request: Request) -> Response:
        return Response()

    requires("viewer")(endpoint)
    requires("viewer")(endpoint)  # the same again is fine (one function, two routes)
    with pytest.raises(ValueError):
        requires("admin")(endpoint)
    with pytest.raises(ValueError):
        requires("superuser")


def test_429_after_repeated_failures_from_one_ip_only() -> None:
    world = World()
    good = world.token("viewer")
    attacker, other = world.client("10.0.0.66"), world.client("10.0.0.2")
    for _ in range(3):
        assert attacker.get("/v1/status", headers=bearer("swt_nope")).status_code == 401
    blocked = attacker.get("/v1/status", headers=bearer(good))  # even a good token waits
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "60"
    assert world.decisions[-1][2:] == (429, "throttled")
    assert other.get("/v1/status", headers=bearer(good)).status_code == 200
    world.clock.t += 59.5
    assert attacker.get("/v1/status", headers=bearer(good)).headers["retry-after"] == "1"
    world.clock.t += 1
    assert attacker.get("/v1/status", headers=bearer(good)).status_code == 200


def test_limiter_forgets_after_its_window() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block=30, clock=clock)
    limiter.failure("a")
    limiter.failure("a")
    clock.t += 60
    limiter.failure("a")
    limiter.failure("a")
    assert limiter.retry_after("a") is None
    limiter.failure("a")
    assert limiter.retry_after("a") == 30
    clock.t += 30
    assert limiter.retry_after("a") is None
    limiter.failure("a")  # the count started again after the block
    assert limiter.retry_after("a") is None


def test_requests_without_credentials_count_a_tenth_of_a_failure() -> None:
    world = World()  # blocked at 3 failures
    scanner, other = world.client("10.0.0.66"), world.client("10.0.0.2")
    statuses = [scanner.get(f"/wp-admin/{i}").status_code for i in range(31)]
    assert statuses[:30] == [401] * 30 and statuses[30] == 429
    assert world.decisions[29][3] == "no credentials" and world.decisions[30][3] == "throttled"
    assert other.get("/v1/status").status_code == 401  # only that source
    mixed = world.client("10.0.0.3")  # a bad token is worth ten requests without one
    assert mixed.get("/v1/status", headers=bearer("swt_nope")).status_code == 401
    assert [mixed.get("/v1/status").status_code for _ in range(20)] == [401] * 20
    assert mixed.get("/v1/status").status_code == 429


def test_a_browser_without_a_session_is_not_blocked() -> None:
    """A page load without a cookie: its script's API calls get 401 (and it goes to /login);
    a person who reloads a few times and mistypes the token once still gets in."""
    world = World()
    world.limiter.limit = 10  # the default
    browser = world.client("127.0.0.1")
    for _ in range(5):  # five page loads, a dozen API calls each
        assert browser.get("/login").status_code == 200
        assert {browser.get(f"/v1/apps/{i}").status_code for i in range(12)} == {401}
    assert browser.post("/login", headers=bearer("swt_typo")).status_code == 401
    answer = browser.post("/login", headers=bearer(world.token("viewer")))
    assert answer.status_code == 303


def test_limiter_memory_is_bounded() -> None:
    clock = Clock()
    limiter = FailureLimiter(limit=3, clock=clock, max_sources=100)
    for i in range(1000):
        limiter.failure(f"10.0.{i // 256}.{i % 256}", anonymous=i % 2 == 0)
    assert len(limiter._failures) <= 100
    for i in range(1000):  # blocked ones too
        for _ in range(3):
            limiter.failure(f"10.1.{i // 256}.{i % 256}")
    assert len(limiter._failures) + len(limiter._blocked) <= 100


def test_cookie_auth_for_get() -> None:
    world = World()
    answer = world.client().get("/v1/status", headers=cookie(world.token("viewer")))
    assert answer.status_code == 200 and answer.json()["role"] == "viewer"


def test_cookie_post_needs_the_csrf_header() -> None:
    world = World()
    text = world.token("deployer")
    client = world.client()
    refused = client.post("/v1/deploy", headers=cookie(text))
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
    wrong = client.post("/v1/deploy", headers=cookie(text, **{"X-CSRF-Token": "0" * 64}))
    assert wrong.status_code == 403
    csrf = client.get("/v1/session", headers=cookie(text)).json()["csrf"]
    answer = client.post("/v1/deploy", headers=cookie(text, **{"X-CSRF-Token": csrf}))
    assert answer.status_code == 202
    assert [d[3] for d in world.decisions] == ["csrf", "csrf"]


def test_csrf_value_differs_per_session_and_key() -> None:
    a = Principal("a", "admin", "x", "aaaaaaaa")
    b = Principal("a", "admin", "x", "bbbbbbbb")
    assert csrf_token_for(a, KEY) != csrf_token_for(b, KEY)
    assert csrf_token_for(a, KEY) != csrf_token_for(a, b"other key")


def test_bearer_post_needs_no_csrf_header() -> None:
    world = World()
    answer = world.client().post("/v1/deploy", headers=bearer(world.token("deployer")))
    assert answer.status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver:8080"},  # another app on this host: same site, not ours
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_unsafe_requests_are_refused(headers: dict[str, str]) -> None:
    world = World()
    text = world.token("admin")
    answer = world.client().post("/v1/deploy", headers={**bearer(text), **headers})
    assert answer.status_code == 403 and "cross-site" in answer.json()["error"]["message"]


def test_same_origin_requests_pass() -> None:
    world = World()
    text = world.token("admin")
    csrf = csrf_token_for(Principal("", "", "", text.split("_")[1]), KEY)
    headers = cookie(text, Origin="http://testserver", **{"Sec-Fetch-Site": "same-origin"})
    answer = world.client().post("/v1/deploy", headers={**headers, "X-CSRF-Token": csrf})
    assert answer.status_code == 202
    # a cross-site GET is harmless (no side effects on GET) and allowed: links must work
    get = world.client().get("/v1/status", headers=cookie(text, **{"Sec-Fetch-Site": "cross-site"}))
    assert get.status_code == 200


def test_a_failing_audit_turns_a_refusal_into_503() -> None:
    def broken(*args: Any) -> None:
        raise OSError("disk full")

    world = World(on_decision=broken)
    answer = world.client().get("/v1/status")
    assert answer.status_code == 503 and "audit" in answer.json()["error"]["message"]
    assert world.client().get("/v1/status", headers=bearer(world.token("viewer"))).is_success


def test_local_peer_is_admin_and_others_are_not() -> None:
    uid = {"value": os.geteuid()}
    world = World(peer=lambda scope: uid["value"])
    body = world.client().post("/v1/deploy").json()
    assert body["deployed"] is True
    uid["value"] = os.geteuid() + 12345  # another user on a shared socket needs a token
    assert world.client().post("/v1/deploy").status_code == 401


def test_login_sets_a_strict_cookie_and_logout_clears_it() -> None:
    world = World()
    text = world.token("viewer")
    answer = world.client().post("/login", headers=bearer(text))
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    set_cookie = answer.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE}={text};")
    for attribute in ("HttpOnly", "Path=/", "SameSite=strict", "Secure"):
        assert attribute in set_cookie
    assert world.client().post("/login", headers=bearer("swt_bad")).status_code == 401
    cleared = logout_response().headers["set-cookie"]
    assert cleared.startswith(f'{COOKIE}="";') and "Max-Age=0" in cleared


def test_principal_of_refuses_without_the_guard() -> None:
    app = Starlette(routes=[Route("/", status)])
    with pytest.raises(Exception, match="not authenticated"):
        TestClient(app).get("/")


def test_peer_uid_from_a_real_unix_socket(tmp_path: Path) -> None:
    """uvicorn with PeerCredProtocol stamps requests on a unix socket with the peer's uid; a
    TCP connection gets none. Checks the real server path, not only a stub."""
    seen: list[int | None] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(peer_uid(scope))
            await PlainTextResponse("ok")(scope, receive, send)

    path = tmp_path / "api.sock"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(str(path))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    config = uvicorn.Config(app, http=PeerCredProtocol, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[unix, tcp])))
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.01)
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://local") as client:
            assert client.get("/").text == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "ok"
    finally:
        server.should_exit = True
        thread.join(5)
    assert seen == [os.geteuid(), None]


def test_socket_peer_uid_of_a_socketpair() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        assert socket_peer_uid(a) == os.geteuid()
    assert socket_peer_uid(None) is None
    with socket.socket(socket.AF_INET) as tcp:
        assert socket_peer_uid(tcp) is None
