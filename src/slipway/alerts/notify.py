"""Format one alert notice for one notifier and deliver it, once (the caller retries).

What each notifier type receives:

- **webhook**: a JSON object POSTed to `url`::

      version "1", source "slipway", fingerprint, status ("firing" | "resolved"),
      app, rule, severity, metric, value (null if unknown or not finite), threshold,
      summary, release, dashboard_url,
      started_at, resolved_at           unix seconds (float; resolved_at null while firing)
      started_at_iso, resolved_at_iso   the same instants in ISO 8601 UTC,
                                        "2024-05-01T12:00:00.000Z" (null when the time is)

- **slack**: a Slack incoming-webhook body (`text` plus one attachment with a colour and
  fields), which Mattermost and Rocket.Chat accept too.
- **alertmanager**: a list of one alert POSTed to `{url}/api/v2/alerts`. A firing alert
  ends `FIRING_HOLD` seconds from now, so Alertmanager resolves it by itself if slipway stops
  re-sending it; a resolved one ends at `resolved_at`.
- **email**: a plain-text message through SMTP (STARTTLS and login as configured), sent in a
  thread. Its Message-ID for a firing notice is derived from the fingerprint and start time,
  and the resolved notice refers to it, so mail clients thread the pair.

`deliver` raises `DeliveryError` on any failure: a non-2xx answer, a transport error, a
timeout, an SMTP error. It never retries and never puts the SMTP password in a message.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import os
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from slipway.config.alerts import Notifier, address_kind, local_address_phrase
from slipway.errors import SlipwayError

FIRING_HOLD = 300.0  # how far ahead of now a firing alert sent to Alertmanager ends
ANSWER_CHARS = 200  # how much of a failed answer a DeliveryError quotes
USER_AGENT = "slipway-alerts/1"
SLACK_COLORS = {"critical": "danger", "warning": "warning", "info": "#439FE0"}
SLACK_MARKS = {"critical": ":red_circle:", "warning": ":warning:", "info": ":information_source:"}
RESOLVED_MARK = ":white_check_mark:"


@dataclass(frozen=True)
class Notice:
    """One state change of one alert rule of one app."""

    app: str
    rule: str
    severity: str  # "critical" | "warning" | "info"
    state: str  # "firing" | "resolved"
    metric: str
    value: float | None  # the metric's value when the state changed
    threshold: float
    summary: str  # one human line
    started_at: float  # unix time the alert started firing
    resolved_at: float | None = None
    release: str | None = None
    dashboard_url: str | None = None

    @property
    def fingerprint(self) -> str:
        """Stable id of (app, rule), the same across processes, restarts and versions: the
        first 16 hex digits of sha256 of "{app}\\0{rule}"."""
        return hashlib.sha256(f"{self.app}\0{self.rule}".encode()).hexdigest()[:16]


class DeliveryError(SlipwayError):
    """Why a delivery failed, fit to show a user: names the notifier (label) and the cause
    (HTTP status and the first 200 chars of the answer, or the connection error). Never
    contains a password."""

    kind = "alert_delivery"
    http_status = 502


def wants(notifier: Notifier, notice: Notice) -> bool:
    """Whether this notifier is to be told about this notice."""
    return notice.severity in notifier.severities and (
        notice.state == "firing" or notifier.send_resolved
    )


def safe_label(notifier: Notifier) -> str:
    """The notifier's label with secrets a URL may carry masked: a password in the URL, the
    query string, and the token that ends a Slack-style hook URL."""
    if notifier.name or notifier.url is None:
        return notifier.label
    parts = urlsplit(notifier.url)
    netloc = parts.netloc.rpartition("@")[2]  # host[:port], brackets of IPv6 kept
    if parts.username is not None:
        netloc = f"{parts.username}{':***' if parts.password is not None else ''}@{netloc}"
    path = parts.path
    if notifier.type == "slack" and path.rstrip("/").count("/") > 1:
        path = path.rstrip("/").rsplit("/", 1)[0] + "/…"
    return urlunsplit((parts.scheme, netloc, path, "…" if parts.query else "", ""))


def webhook_payload(notice: Notice) -> dict[str, Any]:
    return {
        "version": "1",
        "source": "slipway",
        "fingerprint": notice.fingerprint,
        "status": notice.state,
        "app": notice.app,
        "rule": notice.rule,
        "severity": notice.severity,
        "metric": notice.metric,
        "value": _finite(notice.value),
        "threshold": _finite(notice.threshold),
        "summary": notice.summary,
        "release": notice.release,
        "started_at": notice.started_at,
        "started_at_iso": _iso(notice.started_at),
        "resolved_at": notice.resolved_at,
        "resolved_at_iso": _iso(notice.resolved_at),
        "dashboard_url": notice.dashboard_url,
    }


def slack_payload(notice: Notice) -> dict[str, Any]:
    firing = notice.state == "firing"
    mark = SLACK_MARKS.get(notice.severity, ":red_circle:") if firing else RESOLVED_MARK
    text = f"{mark} {_title(notice)} — {notice.summary}"
    fields = [
        ("App", notice.app),
        ("Rule", notice.rule),
        ("Severity", notice.severity),
        ("Status", notice.state),
        ("Metric", notice.metric),
        ("Value", _human(notice.value)),
        ("Threshold", _human(notice.threshold)),
        ("Release", notice.release),
        ("Started", _human_time(notice.started_at)),
        ("Resolved", None if firing else _human_time(notice.resolved_at)),
    ]
    attachment: dict[str, Any] = {
        "fallback": text,
        "color": SLACK_COLORS.get(notice.severity, "danger") if firing else "good",
        "title": f"{notice.app}: {notice.rule}",
        "text": notice.summary,
        "fields": [{"title": t, "value": v, "short": True} for t, v in fields if v is not None],
        "footer": f"slipway · {notice.fingerprint}",
        "ts": int(notice.resolved_at or notice.started_at),
    }
    if notice.dashboard_url:
        attachment["title_link"] = notice.dashboard_url
    return {"text": text, "attachments": [attachment]}


def alertmanager_payload(notice: Notice, now: float) -> list[dict[str, Any]]:
    """Alertmanager API v2 `postableAlerts` with the one alert. `release` should stay the
    one the alert started under: it is a label, so it is part of the alert's identity."""
    labels = {
        "alertname": notice.rule,
        "app": notice.app,
        "severity": notice.severity,
        "source": "slipway",
    }
    if notice.release:
        labels["release"] = notice.release
    annotations = {
        "summary": notice.summary,
        "metric": notice.metric,
        "value": _human(notice.value),
        "threshold": _human(notice.threshold),
    }
    if notice.state == "firing":
        ends = now + FIRING_HOLD
    else:
        ends = notice.resolved_at if notice.resolved_at is not None else now
    alert: dict[str, Any] = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(notice.started_at),
        # Alertmanager refuses an alert that ends before it starts (clock skew).
        "endsAt": _iso(max(ends, notice.started_at)),
    }
    if notice.dashboard_url:
        annotations["dashboard_url"] = notice.dashboard_url
        alert["generatorURL"] = notice.dashboard_url
    return [alert]


def email_message(notifier: Notifier, notice: Notice) -> EmailMessage:
    sender = notifier.from_ or "slipway@localhost"
    domain = sender.rpartition("@")[2] or "localhost"
    thread_id = f"<alert.{notice.fingerprint}.{int(notice.started_at)}@{domain}>"
    message = EmailMessage()
    message["Subject"] = " ".join(_title(notice).split())  # no line breaks in a header
    message["From"] = sender
    message["To"] = ", ".join(notifier.to)
    message["Date"] = format_datetime(datetime.now(UTC))
    if notice.state == "firing":
        message["Message-ID"] = thread_id
    else:
        message["Message-ID"] = make_msgid("alert", domain=domain)
        message["In-Reply-To"] = thread_id
        message["References"] = thread_id
    message["X-Slipway-Fingerprint"] = notice.fingerprint
    message["X-Slipway-Status"] = notice.state
    message.set_content(_email_body(notice))
    return message


async def deliver(notifier: Notifier, notice: Notice, client: httpx.AsyncClient) -> None:
    """Send one notice to one notifier, within `notifier.timeout`; DeliveryError if not."""
    if notifier.type == "email":
        await _send_email(notifier, notice)
        return
    url = notifier.url or ""
    body: Any
    if notifier.type == "alertmanager":
        url = f"{url.rstrip('/')}/api/v2/alerts"
        body = alertmanager_payload(notice, time.time())
    elif notifier.type == "slack":
        body = slack_payload(notice)
    else:
        body = webhook_payload(notice)
    await check_destination(notifier, url)
    await _post(notifier, url, body, client)


async def check_destination(notifier: Notifier, url: str) -> None:
    """Refuse a URL whose host resolves to a loopback or link-local address unless the
    notifier opts in: the config check sees IP literals only, and DNS can point any name at
    169.254.169.254 (cloud metadata) or at this host."""
    if notifier.allow_loopback_and_link_local:
        return
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise _failure(notifier, f"bad url: {exc}") from None
    try:
        async with asyncio.timeout(notifier.timeout):
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (TimeoutError, OSError) as exc:
        raise _failure(notifier, f"could not resolve {host}: {_describe(exc)}") from None
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        kind = address_kind(address)
        if kind is not None:
            raise _failure(
                notifier,
                f"{host} resolves to {address}, {local_address_phrase(kind)}: not sent",
                fix="point the url at the receiver's own address, or set "
                "allow_loopback_and_link_local = true in this notifier if it is meant",
            )


async def _post(notifier: Notifier, url: str, body: Any, client: httpx.AsyncClient) -> None:
    try:
        # httpx's timeout bounds each read and write; this bounds the whole exchange.
        async with asyncio.timeout(notifier.timeout):
            response = await client.post(
                url, json=body, headers={"User-Agent": USER_AGENT}, timeout=notifier.timeout
            )
    except (TimeoutError, httpx.TimeoutException):
        raise _failure(notifier, f"no answer within {notifier.timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise _failure(notifier, f"could not reach it: {_describe(exc)}") from None
    if not 200 <= response.status_code < 300:
        answer = " ".join(response.text[:ANSWER_CHARS].split())
        raise _failure(
            notifier,
            f"it answered HTTP {response.status_code} {response.reason_phrase}"
            + (f": {answer}" if answer else " (empty body)"),
            status=response.status_code,
        )


async def _send_email(notifier: Notifier, notice: Notice) -> None:
    password = _smtp_password(notifier)
    message = email_message(notifier, notice)
    server = f"{notifier.smtp_host}:{notifier.smtp_port}"
    try:
        await asyncio.to_thread(_smtp_send, notifier, password, message)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        cause = _describe(exc, secret=password)
        raise _failure(notifier, f"SMTP server {server}: {cause}") from None


def _smtp_send(notifier: Notifier, password: str | None, message: EmailMessage) -> None:
    # local_hostname: smtplib would otherwise ask the resolver for our FQDN on each send.
    with smtplib.SMTP(
        notifier.smtp_host,
        notifier.smtp_port,
        local_hostname=socket.gethostname(),
        timeout=notifier.timeout,
    ) as smtp:
        if notifier.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if notifier.username:
            smtp.login(notifier.username, password or "")
        refused = smtp.send_message(message)
    if refused:
        raise smtplib.SMTPRecipientsRefused(refused)


def _smtp_password(notifier: Notifier) -> str | None:
    if not notifier.username:
        return None
    variable = notifier.password_env
    if variable is None:
        raise _failure(
            notifier,
            f"username {notifier.username!r} is set but password_env is not",
            fix='name the variable that holds the SMTP password: password_env = "SMTP_PASSWORD"',
        )
    password = os.environ.get(variable)
    if password is None:
        raise _failure(
            notifier,
            f"the SMTP password variable {variable} is not set in the daemon's environment",
            fix=f"export {variable}=… in the environment `slipway up` runs in",
        )
    return password


def _failure(
    notifier: Notifier, cause: str, *, status: int | None = None, fix: str | None = None
) -> DeliveryError:
    label = safe_label(notifier)
    return DeliveryError(
        f"alert notifier '{label}' ({notifier.type}): {cause}",
        fix=fix,
        data={"notifier": label, "type": notifier.type, "status": status},
    )


def _describe(exc: BaseException, secret: str | None = None) -> str:
    """The exception in one line; `secret` masked wherever it appears (a server may echo
    what it was given)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"{exc.smtp_code} {_decoded(exc.smtp_error)}"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = exc.recipients.items()
        text = ", ".join(f"{to} ({code} {_decoded(answer)})" for to, (code, answer) in refused)
    else:
        text = str(exc)
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    if secret:
        text = text.replace(" ".join(secret.split()), "***")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _decoded(answer: bytes | str) -> str:
    return answer.decode(errors="replace") if isinstance(answer, bytes) else answer


def _title(notice: Notice) -> str:
    head = f"[FIRING {notice.severity}]" if notice.state == "firing" else "[RESOLVED]"
    return f"{head} {notice.app}: {notice.rule}"


def _email_body(notice: Notice) -> str:
    rows = [
        ("status", notice.state),
        ("app", notice.app),
        ("rule", notice.rule),
        ("severity", notice.severity),
        ("metric", notice.metric),
        ("value", _human(notice.value)),
        ("threshold", _human(notice.threshold)),
        ("release", notice.release or "-"),
        ("started at", _human_time(notice.started_at)),
        ("resolved at", _human_time(notice.resolved_at) if notice.resolved_at else "-"),
        ("dashboard", notice.dashboard_url or "-"),
        ("fingerprint", notice.fingerprint),
    ]
    lines = [_title(notice), "", notice.summary, ""]
    lines += [f"{name + ':':<13} {value}" for name, value in rows]
    return "\n".join([*lines, "", "-- slipway"]) + "\n"


def _finite(number: float | None) -> float | None:
    """JSON has no NaN or infinity: such a value is sent as null."""
    return number if number is not None and math.isfinite(number) else None


def _human(number: float | None) -> str:
    return "unknown" if number is None else f"{number:g}"


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _human_time(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
