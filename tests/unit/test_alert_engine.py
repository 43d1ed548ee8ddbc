"""The daemon's alerting over a real SQLite store: alert states and history, the notification
outbox, delivery with backoff (to a mock transport and to a real local HTTP receiver)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from slipway.alerts.engine import ALERTMANAGER_REFRESH, BACKOFF_MAX, GIVE_UP_AFTER, Alerting
from slipway.config.alerts import DEFAULT_RULES
from slipway.config.load import config_hash, parse_config
from slipway.judge.histogram import bucket_of
from slipway.metrics.ingest import Second
from slipway.paths import Home
from slipway.runtime.base import Observed
from slipway.store import traffic
from slipway.store.records import Instance
from slipway.store.store import Store

T0 = 28_333_333 * 60  # a whole minute (Nov 2023)
MINIMAL = 'name = "hello"\n[processes]\nweb = "python app.py --port $PORT"\n'
NO_DEFAULTS = "\n[alerting]\ndefaults = false\n"
ERRORS_RULE = """
[[alerts]]
name = "errors"
metric = "error_rate"
above = 0.05
window = "10s"
severity = "critical"
"""


LOCAL = "allow_loopback_and_link_local = true\n"


def webhook(url: str = "http://127.0.0.1:9/hook", **keys: str) -> str:
    extra = "".join(f"{k} = {v}\n" for k, v in keys.items())
    # the test's receivers are on this host: an explicit opt-in, as a user would write
    return f'\n[[alerting.notify]]\ntype = "webhook"\nurl = "{url}"\n{LOCAL}{extra}'


class World:
    """A real store with one app, the instances' observed states, and the alerting."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = Store(tmp_path / "state.db")
        self.observed: dict[str, Observed] = {}
        self.alerting = Alerting(Home(tmp_path), self.store, self.observe)
        self.store.ensure_app("hello", "/src/hello")

    def observe(self, instance: Instance) -> Observed:
        return self.observed.get(instance.id, Observed(True, "running"))

    def deploy(self, extra: str) -> str:
        config = parse_config(MINIMAL + extra)
        release = self.store.new_release(
            "hello",
            source="/src/hello",
            source_kind="dir",
            git_sha=None,
            config_json=config.model_dump_json(),
            config_hash=config_hash(config),
        )
        self.store.set_current("hello", release.id, {"web": 1})
        return release.id

    def traffic(
        self, first: int, last: int, requests: int, errors: int, release: str = "r1"
    ) -> None:
        """Every second from `first` to `last` (inclusive): so many requests, so many 5xx."""
        ok = requests - errors
        rows = [
            (
                "hello",
                release,
                second,
                Second(requests, errors, 0, 0, {bucket_of(20.0): ok} if ok else {}, {}),
            )
            for second in range(first, last + 1)
        ]
        traffic.add_seconds(self.store, rows)

    def alert(self, rule: str = "errors") -> dict[str, Any] | None:
        row = self.store.conn.execute(
            "SELECT state, since, value, summary, release, severity FROM alerts "
            "WHERE app = 'hello' AND rule = ?",
            (rule,),
        ).fetchone()
        return dict(row) if row else None

    def events(self) -> list[tuple[str, str, float]]:
        rows = self.store.conn.execute("SELECT rule, state, at FROM alert_events ORDER BY id")
        return [tuple(r) for r in rows]

    def notifications(self) -> list[dict[str, Any]]:
        rows = self.store.conn.execute("SELECT * FROM notifications ORDER BY id").fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["notice"] = json.loads(item["notice"])
            item["notifier"] = json.loads(item["notifier"])
            out.append(item)
        return out

    def deliver(self, now: float, handler: Callable[[httpx.Request], httpx.Response] | None) -> int:
        transport = httpx.MockTransport(handler) if handler else None

        async def run() -> int:
            async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
                return await self.alerting.deliver_due(client, now)

        return asyncio.run(run())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.store.close()


def fire_errors(world: World, extra: str = "") -> float:
    """Deploy r1 with the errors rule, give it 50% errors, evaluate: the alert fires."""
    world.deploy(NO_DEFAULTS + ERRORS_RULE + extra)
    world.traffic(T0, T0 + 99, requests=10, errors=5)
    now = T0 + 100.5
    world.alerting.evaluate(now)
    return now


class Receiver:
    """Records each POST; answers with the status in `status`."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.status = 200


# -- evaluation ------------------------------------------------------------------------


def test_an_app_with_no_data_has_its_rules_ok(world: World) -> None:
    world.deploy(NO_DEFAULTS + ERRORS_RULE)
    world.alerting.evaluate(T0 + 0.5)
    alert = world.alert()
    assert alert is not None
    assert (alert["state"], alert["value"], alert["severity"]) == ("ok", None, "critical")
    assert world.events() == []
    assert world.notifications() == []


def test_an_app_without_a_current_release_is_not_evaluated(world: World) -> None:
    world.alerting.evaluate(T0)
    assert world.store.conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0


def test_the_default_rules_apply_unless_turned_off(world: World) -> None:
    world.deploy("")
    world.alerting.evaluate(T0)
    rules = {r[0] for r in world.store.conn.execute("SELECT rule FROM alerts")}
    assert rules == {rule.name for rule in DEFAULT_RULES}


def test_an_error_rate_breach_fires_records_and_notifies(world: World) -> None:
    now = fire_errors(world, webhook())
    alert = world.alert()
    assert alert is not None
    assert alert["state"] == "firing"
    assert alert["since"] == now
    assert alert["value"] == 0.5
    assert alert["release"] == "r1"
    assert alert["summary"].startswith("50.00% of ")
    assert alert["summary"].endswith(" requests, alert > 5% over 10s (release r1)")
    assert world.events() == [("errors", "firing", now)]
    [notification] = world.notifications()
    assert notification["state"] == "pending"
    assert notification["attempts"] == 0
    assert notification["next_try"] == now
    assert notification["notifier"]["url"] == "http://127.0.0.1:9/hook"
    notice = notification["notice"]
    assert (notice["app"], notice["rule"], notice["state"]) == ("hello", "errors", "firing")
    assert (notice["severity"], notice["metric"], notice["threshold"]) == (
        "critical",
        "error_rate",
        0.05,
    )
    assert (notice["value"], notice["started_at"], notice["release"]) == (0.5, now, "r1")
    assert notice["resolved_at"] is None


def test_a_firing_alert_is_notified_once_while_it_keeps_firing(world: World) -> None:
    now = fire_errors(world, webhook())
    world.traffic(T0 + 100, T0 + 200, requests=10, errors=5)
    for later in (now + 5, now + 10, now + 60):
        world.alerting.evaluate(later)
    assert [e[1] for e in world.events()] == ["firing"]
    assert len(world.notifications()) == 1
    alert = world.alert()
    assert alert is not None and alert["since"] == now


def test_recovery_resolves_with_the_release_it_fired_with(world: World) -> None:
    fired = fire_errors(world, webhook())
    world.deploy(NO_DEFAULTS + ERRORS_RULE + webhook())  # r2 takes over, and is healthy
    world.traffic(T0 + 100, T0 + 120, requests=10, errors=0, release="r2")
    now = T0 + 121.5
    world.alerting.evaluate(now)
    alert = world.alert()
    assert alert is not None
    assert (alert["state"], alert["since"], alert["value"]) == ("ok", now, 0.0)
    assert [e[1] for e in world.events()] == ["firing", "resolved"]
    firing, resolved = (n["notice"] for n in world.notifications())
    assert resolved["state"] == "resolved"
    assert resolved["started_at"] == fired
    assert resolved["resolved_at"] == now
    assert resolved["value"] == 0.0
    # Alertmanager and receivers identify the alert by its labels: same release as firing
    assert resolved["release"] == firing["release"] == "r1"


def test_a_breach_that_does_not_last_is_pending_then_cleared(world: World) -> None:
    world.deploy(NO_DEFAULTS + ERRORS_RULE + 'for = "30s"\n' + webhook())
    world.traffic(T0, T0 + 99, requests=10, errors=5)
    world.alerting.evaluate(T0 + 100.5)
    alert = world.alert()
    assert alert is not None and alert["state"] == "pending"
    world.traffic(T0 + 100, T0 + 120, requests=10, errors=0)
    world.alerting.evaluate(T0 + 121.5)
    alert = world.alert()
    assert alert is not None and alert["state"] == "ok"
    assert [e[1] for e in world.events()] == ["pending", "cleared"]
    assert world.notifications() == []  # only firing and resolved are worth a message


def test_a_breach_that_lasts_fires_after_its_duration(world: World) -> None:
    world.deploy(NO_DEFAULTS + ERRORS_RULE + 'for = "30s"\n' + webhook())
    world.traffic(T0, T0 + 200, requests=10, errors=5)
    world.alerting.evaluate(T0 + 100.5)
    world.alerting.evaluate(T0 + 120.5)
    alert = world.alert()
    assert alert is not None and alert["state"] == "pending"
    world.alerting.evaluate(T0 + 130.5)
    alert = world.alert()
    assert alert is not None
    assert (alert["state"], alert["since"]) == ("firing", T0 + 130.5)
    assert [e[1] for e in world.events()] == ["pending", "firing"]
    assert len(world.notifications()) == 1


def test_notifiers_get_only_the_severities_and_states_they_asked_for(world: World) -> None:
    extra = (
        webhook("http://127.0.0.1:9/all")
        + webhook("http://127.0.0.1:9/warnings", severities='["warning"]')
        + webhook("http://127.0.0.1:9/no-resolved", send_resolved="false")
    )
    fire_errors(world, extra)
    world.traffic(T0 + 100, T0 + 120, requests=10, errors=0)
    world.alerting.evaluate(T0 + 121.5)
    sent = [
        (n["notifier"]["url"].rsplit("/", 1)[1], n["notice"]["state"])
        for n in world.notifications()
    ]
    assert sorted(sent) == [
        ("all", "firing"),
        ("all", "resolved"),
        ("no-resolved", "firing"),
    ]


def test_instances_down_counts_live_instances_observed_down(world: World) -> None:
    world.deploy(
        NO_DEFAULTS
        + '\n[[alerts]]\nname = "down"\nmetric = "instances_down"\nabove = 0\n'
        + webhook()
    )
    store = world.store
    running = store.new_instance("hello", "r1", "web", 9001)
    crashing = store.new_instance("hello", "r1", "web", 9002)
    leaving = store.new_instance("hello", "r1", "web", 9003)
    for instance in (running, crashing, leaving):
        store.update_instance("hello", instance.id, status="running")
    store.update_instance("hello", leaving.id, status="stopping")
    world.observed[crashing.id] = Observed(True, "crashloop", restarts=5, crashloop=True)
    world.observed[leaving.id] = Observed(False, "stopped")  # being stopped on purpose
    world.alerting.evaluate(T0)
    alert = world.alert("down")
    assert alert is not None
    assert (alert["state"], alert["value"], alert["summary"]) == (
        "firing",
        1.0,
        "1 down, alert > 0",
    )
    world.observed[crashing.id] = Observed(True, "running", restarts=5)
    world.alerting.evaluate(T0 + 5)
    alert = world.alert("down")
    assert alert is not None and (alert["state"], alert["value"]) == ("ok", 0.0)


def test_restarts_are_counted_within_the_window(world: World) -> None:
    world.deploy(
        NO_DEFAULTS + '\n[[alerts]]\nname = "loop"\nmetric = "restarts"\nabove = 3\nwindow = "1m"\n'
    )
    instance = world.store.new_instance("hello", "r1", "web", 9001)
    world.store.update_instance("hello", instance.id, status="running")
    for at, total in ((0, 10), (5, 12), (10, 13)):  # 10 restarts before we looked: not counted
        world.observed[instance.id] = Observed(True, "running", restarts=total)
        world.alerting.evaluate(T0 + at)
    alert = world.alert("loop")
    assert alert is not None and alert["state"] == "ok"
    world.observed[instance.id] = Observed(True, "backoff", restarts=14)
    world.alerting.evaluate(T0 + 15)
    alert = world.alert("loop")
    assert alert is not None and (alert["state"], alert["value"]) == ("firing", 4.0)
    assert alert["summary"] == "4 restarts, alert > 3 over 1m"
    # a minute later the old restarts are out of the window
    world.observed[instance.id] = Observed(True, "running", restarts=14)
    world.alerting.evaluate(T0 + 50)
    world.alerting.evaluate(T0 + 76)
    alert = world.alert("loop")
    assert alert is not None and (alert["state"], alert["value"]) == ("ok", 0.0)


def test_an_instance_going_away_is_not_a_negative_restart(world: World) -> None:
    world.deploy(NO_DEFAULTS + '\n[[alerts]]\nname = "loop"\nmetric = "restarts"\nabove = 2\n')
    a = world.store.new_instance("hello", "r1", "web", 9001)
    b = world.store.new_instance("hello", "r1", "web", 9002)
    world.observed[a.id] = Observed(True, "running", restarts=8)
    world.alerting.evaluate(T0)
    world.store.update_instance("hello", a.id, status="stopped")  # gone, with its 8
    world.alerting.evaluate(T0 + 5)
    world.observed[b.id] = Observed(True, "backoff", restarts=3)
    world.alerting.evaluate(T0 + 10)
    alert = world.alert("loop")
    assert alert is not None and (alert["state"], alert["value"]) == ("firing", 3.0)


def test_a_removed_rule_ends_its_alert(world: World) -> None:
    fire_errors(world, webhook())
    world.deploy(NO_DEFAULTS + webhook())  # r2 has no such rule
    world.alerting.evaluate(T0 + 110.5)
    assert world.alert() is None
    assert [e[1] for e in world.events()] == ["firing", "resolved"]
    assert (
        world.alerting.view("hello")["events"][0]["summary"]
        == "errors: the rule was removed from the app's config"
    )


def test_a_removed_rule_tells_the_notifiers_it_resolved(world: World) -> None:
    fire_errors(world, webhook())
    world.deploy(NO_DEFAULTS + webhook())
    world.alerting.evaluate(T0 + 110.5)
    assert [n["notice"]["state"] for n in world.notifications()] == ["firing", "resolved"]


@pytest.mark.parametrize("window", ["1s", "10s"])
def test_request_rate_of_steady_traffic_is_its_rate(world: World, window: str) -> None:
    rule = (
        f'\n[[alerts]]\nname = "busy"\nmetric = "request_rate"\nabove = 15\nwindow = "{window}"\n'
    )
    world.deploy(NO_DEFAULTS + rule)
    # 10 requests every second; second T0+99 is complete (and recorded) at T0+100.25
    world.traffic(T0, T0 + 99, requests=10, errors=0)
    world.alerting.evaluate(T0 + 100.5)
    alert = world.alert("busy")
    assert alert is not None
    assert alert["value"] == 10.0
    assert alert["state"] == "ok"


def test_the_alert_shows_the_latest_reading_while_its_state_holds(world: World) -> None:
    world.deploy(NO_DEFAULTS + ERRORS_RULE)
    world.alerting.evaluate(T0 + 0.5)
    alert = world.alert()
    assert alert is not None and alert["summary"].startswith("only 0 requests")
    world.traffic(T0 + 1, T0 + 99, requests=10, errors=0)  # healthy traffic: still ok
    world.alerting.evaluate(T0 + 100.5)
    alert = world.alert()
    assert alert is not None and alert["state"] == "ok"
    assert alert["value"] == 0.0
    assert alert["summary"].startswith("0.00% of ")


# -- Alertmanager refresh --------------------------------------------------------------


def test_a_firing_alert_is_resent_to_alertmanager_every_minute(world: World) -> None:
    extra = '\n[[alerting.notify]]\ntype = "alertmanager"\nurl = "http://127.0.0.1:9093/"\n' + LOCAL
    now = fire_errors(world, extra + webhook())
    paths: list[str] = []

    def ok(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200)

    assert world.deliver(now, ok) == 2
    assert sorted(paths) == ["/api/v2/alerts", "/hook"]
    world.traffic(T0 + 100, T0 + 400, requests=10, errors=5)
    world.alerting.evaluate(now + 30)
    assert len(world.notifications()) == 2
    world.alerting.evaluate(now + ALERTMANAGER_REFRESH)
    third = world.notifications()[2:]
    assert [(n["notifier"]["type"], n["notice"]["state"]) for n in third] == [
        ("alertmanager", "firing")
    ]
    assert third[0]["notice"]["started_at"] == now  # the same alert, not a new one
    assert third[0]["notice"]["release"] == "r1"


# -- delivery --------------------------------------------------------------------------


def test_a_due_notification_is_delivered_once(world: World) -> None:
    now = fire_errors(world, webhook())
    bodies: list[Any] = []

    def ok(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(204)

    assert world.deliver(now, ok) == 1
    assert world.deliver(now + 10, ok) == 0
    [body] = bodies
    assert (body["app"], body["rule"], body["status"], body["release"]) == (
        "hello",
        "errors",
        "firing",
        "r1",
    )
    [notification] = world.notifications()
    assert (notification["state"], notification["attempts"]) == ("sent", 1)
    assert notification["last_error"] is None
    assert notification["sent_at"] is not None


def test_a_failing_notifier_is_retried_with_backoff_then_delivered(world: World) -> None:
    now = fire_errors(world, webhook())
    answers = [500, 500, 200]
    calls: list[int] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(answers[len(calls)])
        return httpx.Response(calls[-1], text="database is down")

    assert world.deliver(now, flaky) == 0
    [n] = world.notifications()
    assert (n["state"], n["attempts"], n["next_try"]) == ("pending", 1, now + 2)
    assert "HTTP 500" in n["last_error"] and "database is down" in n["last_error"]
    assert world.deliver(now + 1.9, flaky) == 0  # not due yet: not tried
    assert len(calls) == 1
    assert world.deliver(now + 2, flaky) == 0
    [n] = world.notifications()
    assert (n["state"], n["attempts"], n["next_try"]) == ("pending", 2, now + 2 + 4)
    assert world.deliver(now + 6, flaky) == 1
    [n] = world.notifications()
    assert (n["state"], n["attempts"]) == ("sent", 3)
    assert world.deliver(now + 600, flaky) == 0
    assert calls == [500, 500, 200]


def test_backoff_doubles_up_to_its_maximum(world: World) -> None:
    moment = fire_errors(world, webhook())

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    delays = []
    for _ in range(11):
        world.deliver(moment, down)
        [n] = world.notifications()
        delays.append(n["next_try"] - moment)
        moment = n["next_try"]
    assert delays == [min(BACKOFF_MAX, 2.0**attempt) for attempt in range(1, 12)]
    assert delays[0] == 2 and delays[-1] == BACKOFF_MAX
    [n] = world.notifications()
    assert (n["state"], n["attempts"]) == ("pending", 11)


def test_an_undeliverable_notification_is_marked_failed_after_a_day_not_dropped(
    world: World,
) -> None:
    now = fire_errors(world, webhook())

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502)

    world.deliver(now + GIVE_UP_AFTER - 1, down)
    [n] = world.notifications()
    assert n["state"] == "pending"
    world.deliver(n["next_try"] + GIVE_UP_AFTER, down)
    [n] = world.notifications()
    assert (n["state"], n["attempts"]) == ("failed", 2)
    assert "HTTP 502" in n["last_error"]
    view = world.alerting.view("hello")["notifications"]
    assert [(v["state"], v["attempts"], v["event"]) for v in view] == [("failed", 2, "firing")]


def test_a_refused_connection_is_retried_until_the_receiver_is_up(world: World) -> None:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            receiver.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    # bound but not listening: connections to the port are refused until activate
    server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    thread: threading.Thread | None = None
    try:
        server.server_bind()
        port = server.server_address[1]
        now = fire_errors(world, webhook(f"http://127.0.0.1:{port}/alerts"))

        moment = now
        for attempt in (1, 2, 3):
            assert world.deliver(moment, None) == 0
            [n] = world.notifications()
            assert (n["state"], n["attempts"]) == ("pending", attempt)
            assert n["next_try"] == moment + 2**attempt
            assert "could not reach it" in n["last_error"]
            assert f"127.0.0.1:{port}" in n["last_error"]
            moment = n["next_try"]

        server.server_activate()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        assert world.deliver(moment - 0.5, None) == 0  # not due: nothing sent early
        assert receiver.bodies == []
        assert world.deliver(moment, None) == 1
        assert world.deliver(moment + 3600, None) == 0
        assert [(b["app"], b["rule"], b["status"]) for b in receiver.bodies] == [
            ("hello", "errors", "firing")
        ]
        [n] = world.notifications()
        assert (n["state"], n["attempts"]) == ("sent", 4)
    finally:
        if thread is not None:
            server.shutdown()
        server.server_close()


def test_one_notifier_down_does_not_hold_back_another(world: World) -> None:
    now = fire_errors(world, webhook("http://127.0.0.1:9/down") + webhook("http://127.0.0.1:9/up"))

    def half(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if request.url.path == "/up" else 500)

    assert world.deliver(now, half) == 1
    states = {n["notifier"]["url"]: n["state"] for n in world.notifications()}
    assert states == {"http://127.0.0.1:9/down": "pending", "http://127.0.0.1:9/up": "sent"}


def test_a_resolved_notice_never_overtakes_its_firing_one(world: World) -> None:
    now = fire_errors(world, webhook())
    up = [False]
    states: list[str] = []

    def receiver(request: httpx.Request) -> httpx.Response:
        if not up[0]:
            return httpx.Response(503)
        states.append(json.loads(request.content)["status"])
        return httpx.Response(200)

    moment = now
    for _ in range(4):  # firing fails; its next try moves out to now + 30
        world.deliver(moment, receiver)
        moment = world.notifications()[0]["next_try"]
    assert moment == now + 2 + 4 + 8 + 16
    world.traffic(T0 + 100, T0 + 120, requests=10, errors=0)
    world.alerting.evaluate(T0 + 121.5)  # resolved: due at once, firing is not
    up[0] = True
    assert world.deliver(T0 + 122, receiver) == 0
    assert states == []
    assert world.deliver(moment, receiver) == 2
    assert states == ["firing", "resolved"]
    assert [n["state"] for n in world.notifications()] == ["sent", "sent"]


def test_a_long_alertmanager_outage_does_not_starve_other_notifiers(world: World) -> None:
    alertmanager = (
        '\n[[alerting.notify]]\ntype = "alertmanager"\nurl = "http://127.0.0.1:9093"\n' + LOCAL
    )
    down_rule = '\n[[alerts]]\nname = "down"\nmetric = "instances_down"\nabove = 0\n'
    world.deploy(NO_DEFAULTS + ERRORS_RULE + down_rule + alertmanager + webhook())
    instance = world.store.new_instance("hello", "r1", "web", 9001)
    world.observed[instance.id] = Observed(True, "crashloop", restarts=9, crashloop=True)
    hooks: list[str] = []

    def only_webhook(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/hook":
            hooks.append(json.loads(request.content)["rule"])
            return httpx.Response(200)
        return httpx.Response(503)  # Alertmanager is down

    world.alerting.evaluate(T0)
    assert world.deliver(T0, only_webhook) == 1
    minutes = 520  # under nine hours of "down" firing, evaluated each minute
    for minute in range(1, minutes):
        world.alerting.evaluate(T0 + 60.0 * minute)
    end = T0 + 60 * minutes
    world.traffic(end - 100, end - 1, requests=10, errors=5)
    world.alerting.evaluate(end + 0.5)  # a new alert, for the webhook too
    world.deliver(end + 1, only_webhook)
    assert hooks == ["down", "errors"]


# -- view ------------------------------------------------------------------------------


def test_view_shows_alerts_history_and_outbox_without_secrets(world: World) -> None:
    now = fire_errors(world, webhook("https://hooks.example.com/in?token=SECRET"))
    view = world.alerting.view("hello")
    [alert] = view["alerts"]
    assert (alert["app"], alert["rule"], alert["state"], alert["since"]) == (
        "hello",
        "errors",
        "firing",
        now,
    )
    [event] = view["events"]
    assert (event["state"], event["at"], event["value"]) == ("firing", now, 0.5)
    [notification] = view["notifications"]
    assert notification["type"] == "webhook"
    assert notification["event"] == "firing"
    assert notification["state"] == "pending"
    assert "SECRET" not in json.dumps(view)
    assert world.alerting.view("other") == {"alerts": [], "events": [], "notifications": []}
    assert world.alerting.view(None)["alerts"] == view["alerts"]


def test_view_lists_events_newest_first(world: World) -> None:
    fire_errors(world, webhook())
    world.traffic(T0 + 100, T0 + 120, requests=10, errors=0)
    world.alerting.evaluate(T0 + 121.5)
    events = world.alerting.view("hello", limit=1)["events"]
    assert [e["state"] for e in events] == ["resolved"]
    assert world.alerting.app_url("hello") is None
    world.alerting.dashboard_url = "http://127.0.0.1:7070/"
    assert world.alerting.app_url("hello") == "http://127.0.0.1:7070/apps/hello"
