"""The store's typed queries that replaced SQL written by their callers: alerts and their
outbox, the history's reads and pruning, deployment and verdict counts, chart markers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from slipway.alerts.notify import Notice
from slipway.config.alerts import Notifier
from slipway.daemon.insight import markers
from slipway.judge.histogram import bucket_of, quantiles_ms
from slipway.metrics.exposition import SlipwayCollector
from slipway.metrics.ingest import Second
from slipway.store import alerts, history, traffic
from slipway.store.records import DeploymentCount, VerdictCount
from slipway.store.store import Store

T0 = 28_333_333 * 60  # a whole minute (Nov 2023)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = Store(tmp_path / "state.db")
    db.ensure_app("hello", "/src/hello")
    db.ensure_app("other", "/src/other")
    yield db
    db.close()


def deploy(
    store: Store, app: str, to: str, kind: str = "deploy", outcome: str | None = None
) -> int:
    deployment = store.start_deployment(
        app,
        kind=kind,
        from_release=None,
        to_release=to,
        formation={"web": 1},
        who="tester",
        state="starting",
        strategy="canary",
    )
    if outcome is not None:
        store.finish_deployment(deployment.id, outcome)
    return deployment.id


def hook(url: str = "https://hooks.example.com/a") -> Notifier:
    return Notifier(type="webhook", url=url)


def notice(state: str = "firing", app: str = "hello", rule: str = "errors") -> Notice:
    return Notice(app, rule, "critical", state, "error_rate", 0.5, 0.05, "errors 50%", T0)


def alert(app: str, rule: str, state: str = "firing") -> alerts.AlertRecord:
    return alerts.AlertRecord(app, rule, "critical", state, T0, 0.5, "errors 50%", "r1")


# deployments and verdicts ------------------------------------------------------------------


def test_finished_deployments_are_counted_by_app_kind_and_outcome(store: Store) -> None:
    deploy(store, "hello", "r1", outcome="succeeded")
    deploy(store, "hello", "r2", outcome="succeeded")
    deploy(store, "hello", "r3", kind="rollback", outcome="failed")
    deploy(store, "other", "r1")  # still running: not counted
    counts = sorted(store.finished_deployment_counts(), key=lambda c: (c.app, c.kind))
    assert counts == [
        DeploymentCount("hello", "deploy", "succeeded", 2),
        DeploymentCount("hello", "rollback", "failed", 1),
    ]


def test_verdicts_are_counted_by_app_and_decision(store: Store) -> None:
    first = deploy(store, "hello", "r1", outcome="succeeded")
    second = deploy(store, "other", "r1")
    for deployment, decision in ((first, "continue"), (first, "continue"), (second, "abort")):
        traffic.add_verdict(store, deployment, 1, 0.1, decision, "why", {})
    counts = sorted(traffic.verdict_counts(store), key=lambda c: c.app)
    assert counts == [VerdictCount("hello", "continue", 2), VerdictCount("other", "abort", 1)]


def test_markers_are_the_deploys_and_rollbacks_running_or_finished_since(store: Store) -> None:
    old = deploy(store, "hello", "r1", outcome="succeeded")
    store.update_deployment(old, finished_at=T0 - 10)  # before the window
    deploy(store, "hello", "r1", kind="scale", outcome="succeeded")  # not a marker
    store.update_deployment(deploy(store, "hello", "r2", outcome="failed"), finished_at=T0 + 5)
    rollback = deploy(store, "hello", "r1", kind="rollback")  # running
    deploy(store, "other", "r9")  # another app's
    found = store.deploys_and_rollbacks_since("hello", T0)
    assert [(d.to_release, d.kind) for d in found] == [("r2", "deploy"), ("r1", "rollback")]
    shown = markers(store, "hello", T0)
    assert [m["label"] for m in shown] == ["deploy (canary) r2: failed", "rollback r1: in progress"]
    assert shown[1]["deployment"] == rollback
    assert shown[1]["finished_at"] is None


def test_the_metrics_endpoint_counts_what_the_store_returns(store: Store) -> None:
    deploy(store, "hello", "r1", outcome="succeeded")
    traffic.add_verdict(store, deploy(store, "other", "r1"), 1, 0.1, "abort", "why", {})
    alerts.put_alert(store, alert("hello", "errors"))
    alerts.put_alert(store, alert("hello", "latency", state="pending"))
    service = cast(Any, SimpleNamespace(store=store))
    families = {f.name: f for f in SlipwayCollector(service).control_plane()}
    samples = {
        name: [(s.labels, s.value) for s in f.samples if not s.name.endswith("_created")]
        for name, f in families.items()
    }
    assert samples["slipway_deployments"] == [
        ({"app": "hello", "kind": "deploy", "outcome": "succeeded"}, 1)
    ]
    assert samples["slipway_judge_verdicts"] == [({"app": "other", "decision": "abort"}, 1)]
    assert samples["slipway_alert_firing"] == [
        ({"app": "hello", "alert": "errors", "severity": "critical"}, 1.0)
    ]


# alerts -----------------------------------------------------------------------------------


def test_an_alert_is_put_read_updated_and_deleted(store: Store) -> None:
    assert alerts.alert(store, "hello", "errors") is None
    alerts.put_alert(store, alert("hello", "errors", state="pending"))
    alerts.put_alert(store, alert("hello", "errors"))  # replaces
    alerts.update_reading(store, "hello", "errors", value=0.7, summary="70%", severity="warning")
    assert alerts.alert(store, "hello", "errors") == alerts.AlertRecord(
        "hello", "errors", "warning", "firing", T0, 0.7, "70%", "r1"
    )
    alerts.put_alert(store, alert("other", "latency", state="ok"))
    assert alerts.alerted_rules(store) == [("hello", "errors"), ("other", "latency")]
    assert [a.app for a in alerts.alerts(store)] == ["hello", "other"]
    assert [a.app for a in alerts.alerts(store, "other")] == ["other"]
    assert [(a.app, a.rule) for a in alerts.firing_alerts(store)] == [("hello", "errors")]
    alerts.delete_alert(store, "hello", "errors")
    assert alerts.alert(store, "hello", "errors") is None


def test_alert_events_are_newest_first_per_app_and_limited(store: Store) -> None:
    for at, state in enumerate(("pending", "firing", "resolved")):
        alerts.add_alert_event(store, "hello", "errors", "critical", state, T0 + at, None, state)
    alerts.add_alert_event(store, "other", "errors", "info", "firing", T0, 1.0, "x")
    assert [e.state for e in alerts.alert_events(store, "hello", 2)] == ["resolved", "firing"]
    assert [e.app for e in alerts.alert_events(store, None, 10)] == ["other", *["hello"] * 3]
    assert alerts.alert_events(store, "other", 10) == [
        alerts.AlertEventRecord("other", "errors", "info", "firing", T0, 1.0, "x")
    ]


def test_only_the_oldest_pending_notice_per_notifier_and_alert_is_due(store: Store) -> None:
    a, b = hook("https://a.example.com/h"), hook("https://b.example.com/h")
    alerts.add_notifications(store, [a, b], notice("firing"), T0)
    alerts.add_notifications(store, [a], notice("resolved"), T0)
    alerts.add_notifications(store, [a], notice("firing", rule="latency"), T0 + 60)
    due = alerts.due_notifications(store, T0 + 1)
    assert [(d.notifier(), d.notice().state) for d in due] == [(a, "firing"), (b, "firing")]
    assert due[0].notice() == notice("firing")
    assert (due[0].attempts, due[0].created_at) == (0, T0)
    alerts.record_attempt(
        store, due[0].id, state="sent", attempts=1, next_try=T0 + 1, error=None, sent_at=T0 + 1
    )
    alerts.record_attempt(
        store, due[1].id, state="pending", attempts=1, next_try=T0 + 30, error="down", sent_at=None
    )
    due = alerts.due_notifications(store, T0 + 2)  # b waits for its retry
    assert [(d.notifier(), d.notice().state) for d in due] == [(a, "resolved")]
    assert [d.notice().rule for d in alerts.due_notifications(store, T0 + 60)] == [
        "errors",
        "errors",
        "latency",
    ]


def test_a_stored_notice_is_decoded_only_when_asked_for(store: Store) -> None:
    alerts.add_notifications(store, [hook()], notice(), T0)
    store.conn.execute("UPDATE notifications SET notice = '{\"unknown\": 1}'")
    (due,) = alerts.due_notifications(store, T0)  # fetching does not decode
    assert due.notifier() == hook()
    with pytest.raises(TypeError):
        due.notice()


def test_notifiers_with_a_pending_notice_of_the_alert_are_left_out(store: Store) -> None:
    a, b = hook("https://a.example.com/h"), hook("https://b.example.com/h")
    alerts.add_notifications(store, [a], notice(), T0)
    alerts.add_notifications(store, [b], notice(rule="latency"), T0)
    assert alerts.without_pending(store, "hello", "errors", [a, b]) == [b]
    (due,) = [d for d in alerts.due_notifications(store, T0) if d.notifier() == a]
    alerts.record_attempt(
        store, due.id, state="sent", attempts=1, next_try=T0, error=None, sent_at=T0
    )
    assert alerts.without_pending(store, "hello", "errors", [a, b]) == [a, b]


def test_notifications_show_their_notifier_and_event_newest_first(store: Store) -> None:
    alerts.add_notifications(store, [hook()], notice("firing"), T0)
    alerts.add_notifications(store, [hook()], notice("resolved"), T0 + 1)
    alerts.add_notifications(store, [hook()], notice("firing", app="other"), T0 + 2)
    shown = alerts.notifications(store, "hello", 10)
    assert [(n.event, n.state, n.attempts, n.notifier) for n in shown] == [
        ("resolved", "pending", 0, hook()),
        ("firing", "pending", 0, hook()),
    ]
    assert [n.app for n in alerts.notifications(store, None, 2)] == ["other", "hello"]


# history ----------------------------------------------------------------------------------


def second(requests: int, ms: float) -> Second:
    return Second(requests, 0, 0, 0, {bucket_of(ms): requests}, {"2xx": requests})


def test_traffic_rows_are_those_from_low_up_to_high(store: Store) -> None:
    traffic.add_seconds(store, [("hello", "r1", T0 + s, second(s + 1, 20.0)) for s in range(5)])
    rows = list(history.traffic_rows(store, 1, "hello", T0 + 1, T0 + 3))
    assert [(r.at, r.release, r.traffic.requests) for r in rows] == [
        (T0 + 1, "r1", 2),
        (T0 + 2, "r1", 3),
    ]
    (minute,) = history.traffic_rows(store, 60, "hello", T0, T0 + 60, "r1")
    assert (minute.at, minute.traffic.requests) == (T0, 15)
    assert list(history.traffic_rows(store, 60, "hello", T0, T0 + 60, "r2")) == []
    assert history.first_second(store, "hello") == T0
    assert history.first_second(store, "other") is None


def test_quantiles_are_read_as_stored_or_computed_for_rows_without(store: Store) -> None:
    traffic.add_seconds(store, [("hello", "r1", T0, second(10, 20.0))])
    expected = quantiles_ms({bucket_of(20.0): 10})
    (row,) = history.quantile_rows(store, 1, "hello", T0, T0 + 1)
    assert (row.at, row.release, row.requests, row.quantiles) == (T0, "r1", 10, expected)
    store.conn.execute("UPDATE traffic SET quantiles = NULL")  # as written by older versions
    (row,) = history.quantile_rows(store, 1, "hello", T0, T0 + 1)
    assert row.quantiles == expected


def test_prune_drops_seconds_and_rollups_before_their_limits(store: Store) -> None:
    rows = [("hello", "r1", T0 + s, second(1, 20.0)) for s in (0, 1, 3600, 3601)]
    traffic.add_seconds(store, rows)
    traffic.add_loss(store, T0, 3, "udp")
    # seconds: 2 dropped; minutes and hours: the first of each
    removed = history.prune(store, seconds_before=T0 + 3600, rollups_before=T0 + 1)
    assert removed == 2 + 1 + 1
    assert [r.at for r in history.traffic_rows(store, 1, "hello", 0, T0 * 2)] == [
        T0 + 3600,
        T0 + 3601,
    ]
    assert traffic.losses_since(store, 0) == []
