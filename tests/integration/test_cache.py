"""[edge.cache] and [edge.compression] against the real daemon, HAProxy and examples/hello:
a cacheable answer is served from HAProxy's cache (its own counters say so), a private one,
one with Set-Cookie and one to a request with Authorization never are; after a deploy or a
rollback of a release with other content, the old body is never served again; purge; gzip
only where allowed.

The hello app's /edge/<kind> answers name the release and GREETING in their body."""

from __future__ import annotations

import csv
import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import App, Slipway, wait_for

CACHED: dict[str, dict[str, Any] | str] = {"edge.cache": {"max_age": "5m"}, "edge.compression": {}}


def admin(home: Path, line: str) -> str:
    """A command on HAProxy's admin socket, read directly: HAProxy's word, not slipway's."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(home / "haproxy" / "admin.sock"))
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def counters(home: Path) -> tuple[int, int]:
    """(cache lookups, cache hits) of app_hello's backend, from `show stat`."""
    text = admin(home, "show stat app_hello 2 -1").lstrip("# ")
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["svname"] == "BACKEND")
    return int(row["cache_lookups"] or 0), int(row["cache_hits"] or 0)


def body(app: App, kind: str, **headers: str) -> str:
    answer = httpx.get(f"{app.url}edge/{kind}", headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.text.splitlines()[0]


def deploy_cached(slipway: Slipway, greeting: str) -> App:
    app = slipway.make_app("hello", scale={"web": 1}, env={"GREETING": greeting}, **CACHED)
    slipway.deploy(app)
    return app


def test_cacheable_answers_come_from_the_cache_private_ones_never(running: Slipway) -> None:
    app = deploy_cached(running, "v1")
    home = running.home
    lookups, hits = counters(home)
    assert body(app, "public") == "v1 from r1"
    for _ in range(5):
        assert body(app, "public") == "v1 from r1"
    assert counters(home)[1] - hits == 5, "5 of 6 from HAProxy's cache"
    assert "age" in httpx.get(f"{app.url}edge/public", timeout=5).headers  # the cache adds it
    assert body(app, "expires") and body(app, "expires")  # Expires alone declares a lifetime

    lookups, hits = counters(home)
    for kind in ("private", "cookie", "plain"):
        for _ in range(3):
            body(app, kind)
    for _ in range(3):
        body(app, "public?auth", Authorization="Bearer secret")
    after = counters(home)
    assert after[1] == hits, f"private, Set-Cookie, no lifetime, Authorization: no hit {after}"
    assert after[0] - lookups == 9, "Authorization requests are not even looked up"

    shown = running.json("cache", "--app", "hello")["cache"]
    assert shown["hits"] == after[1] and shown["lookups"] == after[0]
    assert "hits" in running.run("metrics", "--app", "hello").stdout

    running.run("cache", "purge", "--app", "hello")
    lookups, hits = counters(home)
    body(app, "public")
    assert counters(home) == (lookups + 1, hits), "after a purge: a miss"
    body(app, "public")
    assert counters(home) == (lookups + 2, hits + 1), "then cached again"


def test_compression_only_where_the_client_and_the_app_allow_it(running: Slipway) -> None:
    app = deploy_cached(running, "v1")

    def get(kind: str, encoding: str) -> httpx.Response:
        # httpx undoes one gzip layer: .text is what the client reads
        answer = httpx.get(f"{app.url}edge/{kind}", headers={"Accept-Encoding": encoding})
        assert answer.status_code == 200 and answer.text.startswith("v1 from r1"), answer.text
        return answer

    zipped = get("plain", "gzip")
    assert zipped.headers.get("content-encoding") == "gzip"
    assert "Accept-Encoding" in zipped.headers.get("vary", "")
    assert int(zipped.headers.get("content-length") or 0) < 1000 or "chunked" in zipped.headers.get(
        "transfer-encoding", ""
    )
    assert "content-encoding" not in get("plain", "identity").headers  # not accepted
    assert "content-encoding" not in get("plain", "br").headers  # gzip only
    assert "content-encoding" not in get("binary", "gzip").headers  # not a listed type
    assert "content-encoding" not in get("no-transform", "gzip").headers  # the app forbids it
    # Encoded by the app itself: passed on as it is (one layer, undone by httpx above).
    assert get("encoded", "gzip").headers.get("content-encoding") == "gzip"
    # A cached answer is compressed on the way out only for a client that accepts gzip.
    for encoding in ("gzip", "identity", "gzip", "identity"):
        answer = get("public", encoding)
        assert (answer.headers.get("content-encoding") == "gzip") == (encoding == "gzip")
    assert counters(running.home)[1] >= 3, "the last three came from the cache"


@contextmanager
def hammering(app: App, kind: str) -> Iterator[list[str]]:
    """Requests to /edge/<kind> in a loop, on another thread: their first lines, in order."""
    seen: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                seen.append(client.get(f"{app.url}edge/{kind}").text.splitlines()[0])

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(10)


def test_after_a_deploy_or_rollback_the_old_body_is_never_served(running: Slipway) -> None:
    """Without new epochs the cache (max-age 5m) would serve r1's body long after r2 took
    all traffic: the requests after each switch show only the release that has it."""
    app = deploy_cached(running, "v1")
    home = running.home
    with hammering(app, "public") as seen:
        wait_for(lambda: counters(home)[1] > 20, 20, "r1's answer to be served from the cache")
        app.write_config(scale={"web": 1}, env={"GREETING": "v2"}, **CACHED)
        running.deploy(app)
        switched = len(seen)
        wait_for(lambda: len(seen) > switched + 50, 20, "50 requests after the deploy")
        after_deploy = seen[switched:]
        running.run("rollback", "--app", "hello")
        rolled = len(seen)
        wait_for(lambda: len(seen) > rolled + 50, 20, "50 requests after the rollback")
        after_rollback = seen[rolled:]
    assert set(after_deploy) == {"v2 from r2"}, sorted(set(after_deploy))
    assert set(after_rollback) == {"v1 from r1"}, sorted(set(after_rollback))
    assert counters(home)[1] > 100, "the cache kept serving between the switches"


def test_a_canary_step_and_an_abort_each_start_a_new_epoch(running: Slipway) -> None:
    """At a canary step both releases have traffic, so either may fill the cache; once the
    canary is aborted, only r1 has traffic and only r1's body is served."""
    canary = {"strategy": "canary", "steps": [50, 100], "step_min_seconds": "60s"}
    app = running.make_app("hello", scale={"web": 1}, env={"GREETING": "v1"}, **CACHED)
    running.deploy(app)  # the first deploy is blue-green
    app.write_config(scale={"web": 1}, env={"GREETING": "v2"}, deploy=canary, **CACHED)
    running.deploy(app, "--detach")
    wait_for(lambda: running.app_status("hello")["canary"], 30, "the canary's first step")
    running.run("pause", "--app", "hello")

    def cached_from_r2() -> bool:
        """Purged until the entry comes from r2 (roundrobin: every other miss does)."""
        running.run("cache", "purge", "--app", "hello")
        first = body(app, "public")
        return first == "v2 from r2" and body(app, "public") == first

    wait_for(cached_from_r2, 20, "r2's answer in the cache")
    hits = counters(running.home)[1]
    assert {body(app, "public") for _ in range(10)} == {"v2 from r2"}
    assert counters(running.home)[1] == hits + 10
    running.run("abort", "--app", "hello")
    assert running.wait_idle("hello")["current_release"] == "r1"
    assert {body(app, "public") for _ in range(20)} == {"v1 from r1"}
