"""Alert notices: payload shapes per notifier type, who wants what, safe error messages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest

from slipway.alerts.notify import (
    FIRING_HOLD,
    DeliveryError,
    Notice,
    alertmanager_payload,
    check_destination,
    deliver,
    email_message,
    safe_label,
    slack_payload,
    wants,
    webhook_payload,
)
from slipway.config.alerts import Notifier
from slipway.errors import SlipwayError

STARTED = 1714564800.0  # 2024-05-01T12:00:00Z
RESOLVED = STARTED + 90.5

FIRING = Notice(
    app="hello",
    rule="error rate",
    severity="critical",
    state="firing",
    metric="error_rate",
    value=0.072,
    threshold=0.05,
    summary="error rate 7.2% > 5% over 1m (release r4)",
    started_at=STARTED,
    release="r4",
    dashboard_url="http://127.0.0.1:7070/apps/hello",
)
RESOLVED_NOTICE = replace(FIRING, state="resolved", value=0.01, resolved_at=RESOLVED)


def notifier(**keys: Any) -> Notifier:
    # the tests' URLs are on this host: opted in, as a user sending to a local receiver would
    return Notifier.model_validate({"allow_loopback_and_link_local": True} | keys)


EMAIL = notifier(type="email", **{"from": "slipway@example.com"}, to=["ops@example.com"])


# -- fingerprint and wants ---------------------------------------------------------------


def test_fingerprint_is_16_hex_of_app_and_rule_only() -> None:
    # pinned: receivers and the outbox deduplicate on it across versions
    assert FIRING.fingerprint == "d099b080bbb48794"
    assert FIRING.fingerprint == hashlib.sha256(b"hello\0error rate").hexdigest()[:16]
    assert len(FIRING.fingerprint) == 16
    int(FIRING.fingerprint, 16)
    assert RESOLVED_NOTICE.fingerprint == FIRING.fingerprint
    assert replace(FIRING, release="r5", severity="info").fingerprint == FIRING.fingerprint
    assert replace(FIRING, rule="latency p99").fingerprint != FIRING.fingerprint
    assert replace(FIRING, app="shop").fingerprint != FIRING.fingerprint
    # no ambiguity when app and rule names share characters
    a = replace(FIRING, app="a b", rule="c")
    assert a.fingerprint != replace(FIRING, app="a", rule="b c").fingerprint


def test_wants_filters_by_severity_and_resolved() -> None:
    everything = notifier(type="webhook", url="http://127.0.0.1:9/")
    assert wants(everything, FIRING)
    assert wants(everything, RESOLVED_NOTICE)

    critical_only = notifier(type="webhook", url="http://127.0.0.1:9/", severities=["critical"])
    assert wants(critical_only, FIRING)
    assert not wants(critical_only, replace(FIRING, severity="warning"))
    assert not wants(critical_only, replace(RESOLVED_NOTICE, severity="info"))

    no_resolved = notifier(type="webhook", url="http://127.0.0.1:9/", send_resolved=False)
    assert wants(no_resolved, FIRING)
    assert not wants(no_resolved, RESOLVED_NOTICE)


# -- webhook ---------------------------------------------------------------------------


def test_webhook_payload_firing() -> None:
    assert webhook_payload(FIRING) == {
        "version": "1",
        "source": "slipway",
        "fingerprint": FIRING.fingerprint,
        "status": "firing",
        "app": "hello",
        "rule": "error rate",
        "severity": "critical",
        "metric": "error_rate",
        "value": 0.072,
        "threshold": 0.05,
        "summary": "error rate 7.2% > 5% over 1m (release r4)",
        "release": "r4",
        "started_at": STARTED,
        "started_at_iso": "2024-05-01T12:00:00.000Z",
        "resolved_at": None,
        "resolved_at_iso": None,
        "dashboard_url": "http://127.0.0.1:7070/apps/hello",
    }


def test_webhook_payload_resolved_has_both_times() -> None:
    body = webhook_payload(RESOLVED_NOTICE)
    assert body["status"] == "resolved"
    assert body["value"] == 0.01
    assert body["resolved_at"] == RESOLVED
    assert body["resolved_at_iso"] == "2024-05-01T12:01:30.500Z"
    assert body["started_at_iso"] == "2024-05-01T12:00:00.000Z"


@pytest.mark.parametrize("value", [None, float("nan"), float("inf")])
def test_webhook_value_unknown_or_not_finite_is_null_and_valid_json(value: float | None) -> None:
    body = webhook_payload(replace(FIRING, value=value, release=None, dashboard_url=None))
    assert body["value"] is None
    assert body["release"] is None
    assert body["dashboard_url"] is None
    json.dumps(body, allow_nan=False)  # what httpx does; must not raise


# -- slack -----------------------------------------------------------------------------


def test_slack_payload_firing_critical() -> None:
    body = slack_payload(FIRING)
    assert body["text"] == (
        ":red_circle: [FIRING critical] hello: error rate — "
        "error rate 7.2% > 5% over 1m (release r4)"
    )
    [attachment] = body["attachments"]
    assert attachment["color"] == "danger"
    assert attachment["title"] == "hello: error rate"
    assert attachment["title_link"] == "http://127.0.0.1:7070/apps/hello"
    assert attachment["fallback"] == body["text"]
    assert attachment["ts"] == int(STARTED)
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields == {
        "App": "hello",
        "Rule": "error rate",
        "Severity": "critical",
        "Status": "firing",
        "Metric": "error_rate",
        "Value": "0.072",
        "Threshold": "0.05",
        "Release": "r4",
        "Started": "2024-05-01 12:00:00 UTC",
    }
    assert all(isinstance(f["value"], str) and f["short"] for f in attachment["fields"])


def test_slack_payload_colours_by_severity_and_resolved_is_green() -> None:
    assert slack_payload(replace(FIRING, severity="warning"))["attachments"][0]["color"] == (
        "warning"
    )
    assert slack_payload(replace(FIRING, severity="warning"))["text"].startswith(
        ":warning: [FIRING warning] hello: error rate — "
    )
    body = slack_payload(RESOLVED_NOTICE)
    assert body["text"].startswith(":white_check_mark: [RESOLVED] hello: error rate — ")
    [attachment] = body["attachments"]
    assert attachment["color"] == "good"
    assert attachment["ts"] == int(RESOLVED)
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert fields["Resolved"] == "2024-05-01 12:01:30 UTC"
    assert fields["Status"] == "resolved"


def test_slack_payload_without_optional_parts() -> None:
    body = slack_payload(replace(FIRING, value=None, release=None, dashboard_url=None))
    [attachment] = body["attachments"]
    assert "title_link" not in attachment
    fields = {f["title"]: f["value"] for f in attachment["fields"]}
    assert "Release" not in fields
    assert fields["Value"] == "unknown"


# -- alertmanager ----------------------------------------------------------------------


def test_alertmanager_payload_firing_ends_five_minutes_ahead() -> None:
    now = STARTED + 60
    assert FIRING_HOLD == 300
    assert alertmanager_payload(FIRING, now) == [
        {
            "labels": {
                "alertname": "error rate",
                "app": "hello",
                "severity": "critical",
                "release": "r4",
                "source": "slipway",
            },
            "annotations": {
                "summary": "error rate 7.2% > 5% over 1m (release r4)",
                "metric": "error_rate",
                "value": "0.072",
                "threshold": "0.05",
                "dashboard_url": "http://127.0.0.1:7070/apps/hello",
            },
            "startsAt": "2024-05-01T12:00:00.000Z",
            "endsAt": "2024-05-01T12:06:00.000Z",
            "generatorURL": "http://127.0.0.1:7070/apps/hello",
        }
    ]


def test_alertmanager_payload_resolved_ends_at_resolution() -> None:
    [alert] = alertmanager_payload(RESOLVED_NOTICE, now=RESOLVED + 3600)
    assert alert["endsAt"] == "2024-05-01T12:01:30.500Z"
    assert alert["startsAt"] == "2024-05-01T12:00:00.000Z"


def test_alertmanager_payload_without_release_or_dashboard() -> None:
    [alert] = alertmanager_payload(replace(FIRING, release=None, dashboard_url=None), STARTED)
    assert alert["labels"] == {
        "alertname": "error rate",
        "app": "hello",
        "severity": "critical",
        "source": "slipway",
    }
    assert "generatorURL" not in alert
    assert "dashboard_url" not in alert["annotations"]


def test_alertmanager_payload_never_ends_before_it_starts() -> None:
    skewed = replace(RESOLVED_NOTICE, resolved_at=STARTED - 5)
    [alert] = alertmanager_payload(skewed, now=STARTED)
    assert alert["endsAt"] == alert["startsAt"]


# -- email -----------------------------------------------------------------------------


def test_email_message_headers_and_body() -> None:
    two = notifier(
        type="email", **{"from": "slipway@example.com"}, to=["ops@example.com", "b@example.org"]
    )
    message = email_message(two, FIRING)
    assert message["Subject"] == "[FIRING critical] hello: error rate"
    assert message["From"] == "slipway@example.com"
    assert message["To"] == "ops@example.com, b@example.org"
    assert message["Date"]
    assert message["Message-ID"] == f"<alert.{FIRING.fingerprint}.{int(STARTED)}@example.com>"
    assert message["X-Slipway-Fingerprint"] == FIRING.fingerprint
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    for text in (
        "error rate 7.2% > 5% over 1m (release r4)",
        "hello",
        "error rate",
        "critical",
        "firing",
        "error_rate",
        "0.072",
        "0.05",
        "r4",
        "2024-05-01 12:00:00 UTC",
        "http://127.0.0.1:7070/apps/hello",
        FIRING.fingerprint,
    ):
        assert text in body, text
    # it survives a round trip through bytes, as SMTP sends it
    parsed = BytesParser(EmailMessage, policy=policy.default).parsebytes(message.as_bytes())
    assert parsed["Subject"] == "[FIRING critical] hello: error rate"


def test_resolved_email_threads_under_the_firing_one() -> None:
    firing = email_message(EMAIL, FIRING)
    resolved = email_message(EMAIL, RESOLVED_NOTICE)
    assert resolved["Subject"] == "[RESOLVED] hello: error rate"
    assert resolved["In-Reply-To"] == firing["Message-ID"]
    assert resolved["References"] == firing["Message-ID"]
    assert resolved["Message-ID"] != firing["Message-ID"]
    assert "2024-05-01 12:01:30 UTC" in resolved.get_content()


def test_email_subject_never_breaks_the_header() -> None:
    message = email_message(EMAIL, replace(FIRING, rule="two\nlines\r\nrule"))
    assert message["Subject"] == "[FIRING critical] hello: two lines rule"
    message.as_bytes()


# -- errors ----------------------------------------------------------------------------


def email_error(notifier_: Notifier) -> DeliveryError:
    async def attempt() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await deliver(notifier_, FIRING, client)

    with pytest.raises(DeliveryError) as info:
        asyncio.run(attempt())
    return info.value


def test_missing_password_variable_is_named_and_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLIPWAY_TEST_SMTP_PASSWORD", raising=False)
    # port 9 (discard) on 127.0.0.1 is never contacted: the check comes first
    smtp = EMAIL.model_copy(
        update={"username": "alerts", "password_env": "SLIPWAY_TEST_SMTP_PASSWORD", "smtp_port": 9}
    )
    error = email_error(smtp)
    assert "SLIPWAY_TEST_SMTP_PASSWORD" in str(error)
    assert "email to ops@example.com" in str(error)
    assert error.fix and "SLIPWAY_TEST_SMTP_PASSWORD" in error.fix
    assert isinstance(error, SlipwayError)
    assert error.data["notifier"] == "email to ops@example.com"


def test_username_without_password_env_is_an_error() -> None:
    error = email_error(EMAIL.model_copy(update={"username": "alerts", "smtp_port": 9}))
    assert "password_env" in str(error)


def test_labels_in_errors_mask_url_secrets() -> None:
    slack = notifier(type="slack", url="https://hooks.slack.com/services/T000/B000/SECRETTOKEN")
    assert safe_label(slack) == "https://hooks.slack.com/services/T000/B000/…"
    hook = notifier(type="webhook", url="http://bob:hunter2@127.0.0.1:8080/hook?token=abc")
    assert safe_label(hook) == "http://bob:***@127.0.0.1:8080/hook?…"
    plain = notifier(type="alertmanager", url="http://127.0.0.1:9093")
    assert safe_label(plain) == "http://127.0.0.1:9093"
    named = notifier(type="slack", name="ops channel", url="https://chat.example.com/hooks/x")
    assert safe_label(named) == "ops channel"
    assert safe_label(EMAIL) == "email to ops@example.com"


# -- where a notice may go -------------------------------------------------------------


def resolving(monkeypatch: pytest.MonkeyPatch, name: str, address: str) -> None:
    """The resolver answers `address` for `name` (a DNS record an attacker controls)."""
    real = socket.getaddrinfo

    def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(address if host == name else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


async def post_to_local_receiver(hook: Notifier) -> tuple[list[bytes], DeliveryError | None]:
    """Deliver FIRING to `hook` whose url names port 0 of a receiver on 127.0.0.1; returns
    what the receiver got and the delivery error, if any."""
    got: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = (hook.url or "").replace(":0/", f":{port}/")
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            await deliver(hook.model_copy(update={"url": url}), FIRING, client)
    except DeliveryError as exc:
        return got, exc
    finally:
        server.close()
        await server.wait_closed()
    return got, None


def test_a_name_resolving_to_loopback_is_not_sent_to_without_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving(monkeypatch, "alerts.example.test", "127.0.0.1")
    hook = Notifier.model_validate(
        {"type": "webhook", "url": "http://alerts.example.test:0/hook?token=SECRET"}
    )
    got, error = asyncio.run(post_to_local_receiver(hook))
    assert got == [], "the receiver on 127.0.0.1 was contacted"
    assert error is not None
    assert "alerts.example.test resolves to 127.0.0.1, a loopback address" in str(error)
    assert error.fix is not None and "allow_loopback_and_link_local = true" in error.fix
    assert "SECRET" not in str(error)
    # the same name is fine once it resolves elsewhere, or when loopback is meant
    opted = hook.model_copy(update={"allow_loopback_and_link_local": True})
    asyncio.run(check_destination(opted, opted.url or ""))
    resolving(monkeypatch, "alerts.example.test", "10.0.0.5")
    asyncio.run(check_destination(hook, hook.url or ""))


def test_a_name_resolving_to_cloud_metadata_is_not_sent_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolving(monkeypatch, "metadata.example.test", "169.254.169.254")
    hook = Notifier.model_validate({"type": "slack", "url": "http://metadata.example.test/x"})

    async def attempt() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await deliver(hook, FIRING, client)

    with pytest.raises(DeliveryError) as info:
        asyncio.run(attempt())
    assert "resolves to 169.254.169.254, a link-local address" in str(info.value)
