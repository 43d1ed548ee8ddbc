"""Monitoring built in: metrics history and /metrics scraped by a real Prometheus, the request
log, logs filters, and alerts delivered to a real local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.integration.conftest import App, Prometheus, Slipway, free_port, wait_for


def send(app: App, count: int) -> list[int]:
    with httpx.Client(timeout=10) as client:
        return [client.get(app.url).status_code for _ in range(count)]


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent."""

    def __init__(self, port: int = 0) -> None:
        bodies: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.bodies = bodies
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def states(self, rule: str) -> list[str]:
        return [b["status"] for b in self.bodies if b["rule"] == rule]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_prometheus_scrapes_the_daemon_and_gets_series_per_release(
    running: Slipway, prometheus: Prometheus
) -> None:
    app = running.make_app()
    running.deploy(app)
    assert all(code == 200 for code in send(app, 40))
    app.write_config(env={"GREETING": "hi"})
    running.deploy(app)
    assert all(code == 200 for code in send(app, 40))

    def per_release() -> set[str]:
        found = prometheus.query('sum by (release) (slipway_requests_total{job="slipway"})')
        return {s["metric"]["release"] for s in found if float(s["value"][1]) >= 40}

    assert wait_for(lambda: per_release() == {"r1", "r2"}, 60, "series of r1 and r2")
    # instances across deploys: the live r2 instances are scraped, with their labels
    up = prometheus.query('up{app="hello", release="r2"}')
    assert wait_for(
        lambda: len(prometheus.query('up{app="hello", release="r2"} == 1')) == 2,
        30,
        "both r2 instances scraped",
    ), up
    info = prometheus.query('slipway_app_release_info{app="hello"}')
    assert [s["metric"]["release"] for s in info] == ["r2"]


def test_metrics_requests_and_logs_answer_from_history(running: Slipway) -> None:
    app = running.make_app(env={"FAIL_RATE": "0.3"})
    running.deploy(app)
    codes = send(app, 200)
    failed = codes.count(500)
    assert 20 < failed < 120, codes

    def totals() -> dict[str, Any] | None:
        data = running.json("metrics", "--app", "hello", "--since", "10m")
        total = data["totals"].get("r1")
        return total if total and total["requests"] >= 200 else None

    total = wait_for(totals, 20, "200 requests in the history")
    assert total["errors"] == failed
    assert total["error_rate"] == pytest.approx(failed / 200, abs=0.001)
    assert total["p99"] is not None

    errors = running.json("requests", "--app", "hello", "--status", "5xx", "-n", "1000")
    assert len(errors["requests"]) == failed
    assert {r["status"] for r in errors["requests"]} == {500}
    assert {r["path"] for r in errors["requests"]} == {"/"}
    assert all(r["release"] == "r1" and r["method"] == "GET" for r in errors["requests"])

    text = running.run("metrics", "--app", "hello", "--since", "10m").stdout
    assert "r1" in text and "deploy (bluegreen) r1: succeeded" in text

    logs = running.run("logs", "--app", "hello", "--grep", "listening on", "--since", "10m")
    lines = logs.stdout.strip().splitlines()
    assert len(lines) == 2 and all("listening on" in line for line in lines), lines


def test_bad_queries_are_clear_errors(running: Slipway) -> None:
    app = running.make_app()
    running.deploy(app)
    cases = [
        (("requests", "--app", "hello", "--status", "7xx"), "unknown status filter '7xx'"),
        (("metrics", "--app", "hello", "--since", "soon"), 'invalid duration "soon"'),
        (("metrics", "--app", "hello", "--release", "r9"), "r9"),
        (("logs", "--app", "hello", "--grep", "("), "not a valid regular expression"),
        (("metrics", "--app", "nope"), "no app named 'nope'"),
    ]
    for args, message in cases:
        result = running.run(*args, check=False)
        assert result.returncode != 0, args
        assert message in result.stderr and "fix:" in result.stderr, (args, result.stderr)


def test_an_alert_fires_and_resolves_and_a_notifier_that_is_down_gets_it_later(
    running: Slipway, receiver: Receiver
) -> None:
    dead_port = free_port()
    rules = (
        "[[alerts]]\n"
        'name = "errors"\nmetric = "error_rate"\nabove = 0.2\nwindow = "5s"\n'
        'severity = "critical"\n'
        "[alerting]\ndefaults = false\n"
        f'[[alerting.notify]]\ntype = "webhook"\nurl = "{receiver.url}"\n'
        "allow_loopback_and_link_local = true\n"
        f'[[alerting.notify]]\ntype = "webhook"\nname = "later"\n'
        "allow_loopback_and_link_local = true\n"
        f'url = "http://127.0.0.1:{dead_port}/hook"\n'
    )
    app = running.make_app(env={"FAIL_RATE": "0.6"}, alerts=rules)
    running.deploy(app)

    def fired() -> bool:
        send(app, 20)
        return receiver.states("errors") == ["firing"]

    wait_for(fired, 60, "the alert to fire and reach the receiver", every=0.5)
    firing = receiver.bodies[0]
    assert firing["app"] == "hello" and firing["severity"] == "critical"
    assert firing["value"] > 0.2 and firing["release"] == "r1"

    view = running.json("alerts", "--app", "hello")
    assert [(a["rule"], a["state"]) for a in view["alerts"]] == [("errors", "firing")]
    later = [n for n in view["notifications"] if n["notifier"] == "later"]
    assert later and later[0]["state"] == "pending"
    wait_for(
        lambda: running.json("alerts", "--app", "hello")["notifications"][0]["last_error"],
        20,
        "the failed delivery to be recorded",
    )

    # a notifier that is down never blocks a deploy: the fix goes out
    app.write_config(env={"FAIL_RATE": "0"}, alerts=rules)
    running.deploy(app)

    def resolved() -> bool:
        send(app, 20)
        return receiver.states("errors") == ["firing", "resolved"]

    wait_for(resolved, 60, "the alert to resolve", every=0.5)
    events = [e["state"] for e in running.json("alerts", "--app", "hello")["events"]]
    assert events[:2] == ["resolved", "firing"]  # newest first

    # the notifier comes back: it gets both notices, once each, in order
    late = Receiver(dead_port)
    try:
        wait_for(lambda: late.states("errors") == ["firing", "resolved"], 90, "late delivery")
        shown = running.run("alerts", "--app", "hello").stdout
        assert "errors" in shown and "ok" in shown
    finally:
        late.close()
