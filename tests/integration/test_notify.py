"""Alert delivery against real receivers on 127.0.0.1: an HTTP server, an SMTP server
(aiosmtpd, with STARTTLS and AUTH) and a real Alertmanager (Debian's package)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from slipway.alerts.notify import (
    DeliveryError,
    Notice,
    deliver,
    slack_payload,
    webhook_payload,
)
from slipway.config.alerts import Notifier
from tests.integration.conftest import free_port, ready_server, wait_for

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PASSWORD = "s3cret-Pa55word"


def firing_notice(rule: str = "error rate") -> Notice:
    return Notice(
        app="hello",
        rule=rule,
        severity="critical",
        state="firing",
        metric="error_rate",
        value=0.072,
        threshold=0.05,
        summary="error rate 7.2% > 5% over 1m (release r4)",
        started_at=time.time() - 60,
        release="r4",
        dashboard_url="http://127.0.0.1:7070/apps/hello",
    )


def resolved(notice: Notice) -> Notice:
    return replace(notice, state="resolved", value=0.01, resolved_at=time.time())


def send(notifier: Notifier, notice: Notice) -> None:
    async def attempt() -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            await deliver(notifier, notice, client)

    asyncio.run(attempt())


def send_error(notifier: Notifier, notice: Notice) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        send(notifier, notice)
    return info.value


# -- an HTTP receiver ------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    answer: bytes = b"ok"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posted_to(self, path: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP server in a thread that records every POST and answers `status`."""
    port = free_port()
    state = Receiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with state.lock:
                state.requests.append(
                    Received(self.path, dict(self.headers.items()), json.loads(raw))
                )
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.answer)))
            self.end_headers()
            self.wfile.write(state.answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhook_receives_the_payload_exactly(receiver: Receiver) -> None:
    hook = Notifier(allow_loopback_and_link_local=True, type="webhook", url=f"{receiver.url}/hook")
    notice = firing_notice()
    send(hook, notice)
    send(hook, resolved(notice))
    [firing, resolved_body] = receiver.posted_to("/hook")
    assert firing == webhook_payload(notice)
    assert resolved_body["status"] == "resolved"
    assert resolved_body["fingerprint"] == firing["fingerprint"]
    assert receiver.requests[0].headers["Content-Type"] == "application/json"


def test_slack_receives_the_payload_exactly(receiver: Receiver) -> None:
    slack = Notifier(
        allow_loopback_and_link_local=True, type="slack", url=f"{receiver.url}/services/T1/B2/token"
    )
    notice = firing_notice()
    send(slack, notice)
    [body] = receiver.posted_to("/services/T1/B2/token")
    assert body == slack_payload(notice)
    assert body["text"].startswith(":red_circle: [FIRING critical] hello: error rate — ")


def test_an_error_answer_is_a_delivery_error_naming_status_and_answer(
    receiver: Receiver,
) -> None:
    receiver.status = 500
    receiver.answer = b"database on fire " + b"x" * 500
    hook = Notifier(
        allow_loopback_and_link_local=True,
        type="webhook",
        name="ops hook",
        url=f"{receiver.url}/hook",
    )
    error = send_error(hook, firing_notice())
    message = str(error)
    assert "ops hook" in message
    assert "HTTP 500" in message
    assert "database on fire" in message
    assert "x" * 183 in message and "x" * 184 not in message  # the first 200 chars only
    assert error.data["status"] == 500
    assert len(receiver.requests) == 1  # no retry of its own


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.status = 302
    error = send_error(
        Notifier(allow_loopback_and_link_local=True, type="webhook", url=f"{receiver.url}/hook"),
        firing_notice(),
    )
    assert "HTTP 302" in str(error)


def test_a_closed_port_is_a_delivery_error() -> None:
    port = free_port()
    slack = Notifier(
        allow_loopback_and_link_local=True, type="slack", url=f"http://127.0.0.1:{port}/hooks/TOKEN"
    )
    error = send_error(slack, firing_notice())
    assert f"alert notifier 'http://127.0.0.1:{port}/hooks/…' (slack)" in str(error)
    assert "could not reach it: ConnectError" in str(error)
    assert "TOKEN" not in str(error)


def test_a_silent_receiver_times_out_within_the_notifier_timeout() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        hook = Notifier(
            allow_loopback_and_link_local=True,
            type="webhook",
            url=f"http://127.0.0.1:{port}/",
            timeout=0.5,
        )
        began = time.monotonic()
        error = send_error(hook, firing_notice())
        took = time.monotonic() - began
    assert "no answer within 0.5s" in str(error)
    assert took < 3


# -- an SMTP receiver ------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = BytesParser(EmailMessage, policy=policy.default).parsebytes(envelope.content)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        if data.password == PASSWORD.encode():
            return AuthResult(success=True)
        # a careless server that echoes what it was given: slipway must not repeat it
        message = f"535 5.7.8 bad credentials {data.password.decode()}"
        return AuthResult(success=False, handled=False, message=message)


def start_mailbox(**smtp: Any) -> tuple[Mailbox, Controller]:
    box = Mailbox(port=free_port())
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        server_hostname="localhost",  # else it asks the resolver for our FQDN
        authenticator=box.authenticate,
        **smtp,
    )
    controller.start()
    return box, controller


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box, controller = start_mailbox(auth_require_tls=False)
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def tls_mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """An SMTP server offering STARTTLS with a self-signed certificate for 127.0.0.1, which
    this process trusts (SSL_CERT_FILE) so slipway verifies it as it would a real one."""
    folder = Path(tempfile.mkdtemp(prefix="smtp-tls-", dir="/tmp"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-newkey", "ec"),
            *("-pkeyopt", "ec_paramgen_curve:prime256v1", "-keyout", str(key), "-out", str(cert)),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box, controller = start_mailbox(tls_context=context, require_starttls=True)
    try:
        yield box
    finally:
        controller.stop()
        shutil.rmtree(folder, ignore_errors=True)


def email_notifier(port: int, **keys: Any) -> Notifier:
    return Notifier.model_validate(
        {
            "type": "email",
            "smtp_port": port,
            "from": "slipway@example.com",
            "to": ["ops@example.com", "dev@example.com"],
            **keys,
        }
    )


def test_email_firing_then_resolved_both_arrive(mailbox: Mailbox) -> None:
    mail = email_notifier(mailbox.port)
    notice = firing_notice()
    send(mail, notice)
    send(mail, resolved(notice))
    [(envelope, firing), (_, done)] = mailbox.messages
    assert envelope.mail_from == "slipway@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "dev@example.com"]
    assert firing["Subject"] == "[FIRING critical] hello: error rate"
    assert firing["To"] == "ops@example.com, dev@example.com"
    body = firing.get_content()
    assert "error rate 7.2% > 5% over 1m (release r4)" in body
    assert "http://127.0.0.1:7070/apps/hello" in body
    assert done["Subject"] == "[RESOLVED] hello: error rate"
    assert done["In-Reply-To"] == firing["Message-ID"]
    assert mailbox.logins == []  # no username: no login


def test_email_logs_in_with_the_password_from_the_environment(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_TEST_SMTP_PASSWORD", PASSWORD)
    mail = email_notifier(
        mailbox.port, username="alerts", password_env="SLIPWAY_TEST_SMTP_PASSWORD"
    )
    send(mail, firing_notice())
    assert mailbox.logins == [(b"alerts", PASSWORD.encode())]
    assert len(mailbox.messages) == 1


def test_a_refused_login_never_shows_the_password(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + PASSWORD
    monkeypatch.setenv("SLIPWAY_TEST_SMTP_PASSWORD", wrong)
    mail = email_notifier(
        mailbox.port, username="alerts", password_env="SLIPWAY_TEST_SMTP_PASSWORD"
    )
    error = send_error(mail, firing_notice())
    # smtplib tried each mechanism the server offers; the server echoed the password each time
    assert mailbox.logins and set(mailbox.logins) == {(b"alerts", wrong.encode())}
    assert "SMTPAuthenticationError: 535 5.7.8 bad credentials ***" in str(error)
    assert "535" in str(error)
    assert "email to ops@example.com,dev@example.com" in str(error)
    for shown in (str(error), repr(error), json.dumps(error.to_dict())):
        assert wrong not in shown
    assert error.__cause__ is None and error.__suppress_context__
    assert mailbox.messages == []


def test_email_over_starttls_with_login(
    tls_mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_TEST_SMTP_PASSWORD", PASSWORD)
    mail = email_notifier(
        tls_mailbox.port,
        starttls=True,
        username="alerts",
        password_env="SLIPWAY_TEST_SMTP_PASSWORD",
    )
    send(mail, firing_notice())
    assert tls_mailbox.logins == [(b"alerts", PASSWORD.encode())]
    [(_, message)] = tls_mailbox.messages
    assert message["Subject"] == "[FIRING critical] hello: error rate"


def test_starttls_required_but_not_offered_fails_before_any_login(
    mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_TEST_SMTP_PASSWORD", PASSWORD)
    mail = email_notifier(
        mailbox.port, starttls=True, username="alerts", password_env="SLIPWAY_TEST_SMTP_PASSWORD"
    )
    error = send_error(mail, firing_notice())
    assert "STARTTLS" in str(error)
    assert mailbox.logins == []
    assert mailbox.messages == []


def test_smtp_closed_port_is_a_delivery_error() -> None:
    port = free_port()
    error = send_error(email_notifier(port), firing_notice())
    assert f"SMTP server 127.0.0.1:{port}" in str(error)
    assert "refused" in str(error).lower()


# -- a real Alertmanager ---------------------------------------------------------------


@dataclass
class Alertmanager:
    url: str
    process: subprocess.Popen[bytes]

    def alerts(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v2/alerts", timeout=5)
        answer.raise_for_status()
        found: list[dict[str, Any]] = answer.json()
        return found


@pytest.fixture
def alertmanager(receiver: Receiver) -> Iterator[Alertmanager]:
    """Alertmanager routing every alert to `receiver` at /am, flushing groups at once."""
    folder = Path(tempfile.mkdtemp(prefix="am-", dir="/tmp"))
    port = free_port()
    (folder / "alertmanager.yml").write_text(
        "route:\n  receiver: test\n  group_wait: 0s\n  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n  - name: test\n    webhook_configs:\n"
        f"      - url: {receiver.url}/am\n        send_resolved: true\n"
    )
    command = [
        ALERTMANAGER,
        f"--config.file={folder / 'alertmanager.yml'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        f"--storage.path={folder / 'data'}",
    ]
    with ready_server(command, folder, port, "Alertmanager") as (url, process):
        yield Alertmanager(url, process)


def test_alertmanager_receives_routes_and_resolves_the_alert(
    alertmanager: Alertmanager, receiver: Receiver
) -> None:
    am = Notifier(
        allow_loopback_and_link_local=True, type="alertmanager", url=alertmanager.url + "/"
    )
    notice = firing_notice()
    send(am, notice)

    def active() -> dict[str, Any] | None:
        for alert in alertmanager.alerts():
            if alert["labels"].get("alertname") == "error rate":
                return alert if alert["status"]["state"] == "active" else None
        return None

    alert = wait_for(active, 15, "the alert to be active in Alertmanager")
    assert alert["labels"] == {
        "alertname": "error rate",
        "app": "hello",
        "severity": "critical",
        "release": "r4",
        "source": "slipway",
    }
    assert alert["annotations"]["summary"] == notice.summary
    assert alert["generatorURL"] == notice.dashboard_url

    def routed(status: str) -> Any:
        return [
            body
            for body in receiver.posted_to("/am")
            if body["status"] == status
            and any(a["labels"]["alertname"] == "error rate" for a in body["alerts"])
        ]

    wait_for(lambda: routed("firing"), 15, "Alertmanager to route the firing alert")

    send(am, resolved(notice))
    wait_for(
        lambda: not any(
            a["labels"].get("alertname") == "error rate" for a in alertmanager.alerts()
        ),
        15,
        "the alert to be no longer active",
    )
    wait_for(lambda: routed("resolved"), 15, "Alertmanager to route the resolution")


def test_alertmanager_at_a_wrong_path_is_a_delivery_error(alertmanager: Alertmanager) -> None:
    am = Notifier(
        allow_loopback_and_link_local=True,
        type="alertmanager",
        name="team am",
        url=f"{alertmanager.url}/prefix",
    )
    error = send_error(am, firing_notice())
    assert "team am" in str(error)
    assert "HTTP 404" in str(error)
