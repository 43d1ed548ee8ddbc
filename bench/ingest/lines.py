"""Synthetic request log lines in slipway's LOG_FORMAT, the way HAProxy sends them (one raw
line per datagram, newline-terminated): several apps, each with a stable release and some a
canary, a few instances each, 4xx and 5xx, client aborts and failed connections, lognormal
latencies, varied methods, paths and clients.

Every line is one the daemon records (no `<NOSRV>` lines), so lines sent and requests recorded
can be compared exactly. Each rate step has its own app names (`shop-s3`): a step's requests
are told apart from any other step's without relying on clock edges."""

from __future__ import annotations

import random

# app -> (share of the traffic, [(release, share of the app's traffic)])
APPS: dict[str, tuple[float, list[tuple[str, float]]]] = {
    "shop": (0.40, [("r7", 0.90), ("r8", 0.10)]),
    "api": (0.30, [("r41", 0.50), ("r42", 0.50)]),
    "auth": (0.20, [("r3", 1.00)]),
    "search": (0.10, [("r12", 0.75), ("r13", 0.25)]),
}
INSTANCES = 3  # web instances per release
PATHS = [
    "/",
    "/up",
    "/items",
    "/items/{n}",
    "/api/v1/users/{n}/orders?page={m}",
    "/search?q=blue+shoes&page={m}",
    "/static/app.{n}.js",
    "/login",
]
METHODS = [("GET", 0.80), ("POST", 0.14), ("PUT", 0.04), ("DELETE", 0.02)]
# (status, termination state, share)
OUTCOMES = [
    (200, "----", 0.925),
    (304, "----", 0.01),
    (404, "----", 0.03),
    (500, "----", 0.015),
    (503, "----", 0.005),
    (502, "SH--", 0.005),
    (-1, "SC--", 0.002),  # HAProxy could not connect to the instance
    (200, "CD--", 0.008),  # the client went away mid-response
]
MEDIAN_MS = 40.0
SIGMA = 0.9
POOL = 20_000  # distinct lines per step, sent in a cycle


def app_name(app: str, tag: str) -> str:
    return f"{app}-{tag}"


def marker_line(tag: str, nonce: int) -> bytes:
    """A line for an app of its own, sent after a step: once the daemon has recorded it, it has
    recorded everything sent before it (one socket, one queue, seconds flushed in order)."""
    return f"slipway app_mark-{tag} r{nonce}-web-1 200 0 0 0 1 1 10 ---- 127.0.0.1 GET /\n".encode()


def _pick(rng: random.Random, choices: list[tuple[str, float]]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def line(rng: random.Random, tag: str) -> str:
    names = list(APPS)
    app = rng.choices(names, weights=[APPS[n][0] for n in names])[0]
    release = _pick(rng, APPS[app][1])
    instance = f"{release}-web-{rng.randint(1, INSTANCES)}"
    status, state, _ = rng.choices(OUTCOMES, weights=[o[2] for o in OUTCOMES])[0]
    t_request = rng.choice((0, 0, 0, 1, 2))
    t_connect = -1 if state == "SC--" else rng.choice((0, 0, 1))
    total = max(1, int(rng.lognormvariate(0.0, SIGMA) * MEDIAN_MS))
    t_response = -1 if status < 0 else max(0, total - t_request - max(t_connect, 0))
    sent = 0 if status < 0 else rng.randint(120, 60_000)
    method = _pick(rng, METHODS)
    path = rng.choice(PATHS).format(n=rng.randint(1, 99_999), m=rng.randint(1, 20))
    client = f"127.0.{rng.randint(0, 3)}.{rng.randint(1, 254)}"
    return (
        f"slipway app_{app_name(app, tag)} {instance} {status} {t_request} 0 {t_connect} "
        f"{t_response} {total} {sent} {state} {client} {method} {path}\n"
    )


def pool(tag: str, seed: int, size: int = POOL) -> list[bytes]:
    rng = random.Random(f"{seed}-{tag}")
    return [line(rng, tag).encode() for _ in range(size)]
