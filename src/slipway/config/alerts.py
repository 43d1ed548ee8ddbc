"""`[[alerts]]` rules and `[alerting]` notifiers in slipway.toml. Pure: no I/O."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator

from slipway.config import types
from slipway.config.types import DAY, Duration, within

Metric = Literal[
    "error_rate",
    "latency",
    "request_rate",
    "instances_down",
    "hosts_down",
    "restarts",
    "disk_free",
    "log_lines_dropped",
    "control_replica_behind",
    "fleet_full",
    "databases_failing",
]
Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# What each metric means, for errors and docs: the unit its threshold is in.
UNITS: dict[str, str] = {
    "error_rate": "a fraction of requests, e.g. 0.05 for 5%",
    "latency": "milliseconds, at `quantile` (default 0.99)",
    "request_rate": "requests per second",
    "instances_down": "instances not running that should be",
    "hosts_down": "hosts down that the app runs on or is routed through",
    "restarts": "crash restarts within `window`",
    "disk_free": "a fraction of the state folder's disk, e.g. 0.1 for 10% free",
    "log_lines_dropped": "instance output lines that could not be written within `window`",
    "control_replica_behind": "seconds since the control plane's replica was last current",
    "fleet_full": "1 when the app's last deployment found no host with room, else 0",
    "databases_failing": "databases the app uses whose newest backup or verification failed, "
    "or did not happen on time",
}


class Strict(types.Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertRule(Strict):
    """A condition on a built-in metric that fires after holding for `for`."""

    name: str = Field(min_length=1, max_length=80)
    metric: Metric
    above: float | None = Field(default=None, allow_inf_nan=False)
    below: float | None = Field(default=None, allow_inf_nan=False)
    quantile: float = Field(default=0.99, gt=0, lt=1)
    window: Annotated[Duration, within(1, DAY)] = 60.0  # the metric is over the last `window`
    for_: Annotated[Duration, within(0, DAY)] = Field(default=0.0, alias="for")
    severity: Severity = "warning"

    @model_validator(mode="after")
    def _one_threshold(self) -> AlertRule:
        if (self.above is None) == (self.below is None):
            raise ValueError(
                f"alert '{self.name}' needs exactly one of `above` or `below` "
                f"(for {self.metric}: {UNITS[self.metric]})"
            )
        return self

    @property
    def threshold(self) -> float:
        return self.above if self.above is not None else float(self.below or 0.0)

    def breached(self, value: float) -> bool:
        return value > self.threshold if self.above is not None else value < self.threshold


def _rule(name: str, metric: str, **keys: object) -> AlertRule:
    return AlertRule.model_validate({"name": name, "metric": metric, **keys})


DEFAULT_RULES: tuple[AlertRule, ...] = (
    _rule("error rate", "error_rate", above=0.05, window=60, severity="critical", for_=60),
    _rule("latency p99", "latency", above=2000, window=300, for_=300),
    _rule("instances down", "instances_down", above=0, severity="critical", for_=30),
    _rule("host down", "hosts_down", above=0, severity="critical"),
    _rule("restart loop", "restarts", above=3, window=300, severity="critical"),
    _rule("disk free", "disk_free", below=0.1, for_=60),
    _rule("logs dropped", "log_lines_dropped", above=0, window=300),
    _rule("control replica behind", "control_replica_behind", above=60, for_=60),
    _rule("fleet full", "fleet_full", above=0, severity="critical"),
    _rule("database backup failing", "databases_failing", above=0, severity="critical"),
)


class Notifier(Strict):
    """Where alert notifications go. `url` for webhook, slack and alertmanager; the smtp
    keys, `from` and `to` for email."""

    type: Literal["webhook", "slack", "email", "alertmanager"]
    name: str | None = None
    url: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None  # the SMTP password is read from this variable
    from_: str | None = Field(default=None, alias="from")
    to: list[str] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=lambda: list(SEVERITIES))
    send_resolved: bool = True
    # A URL on this host or its link (cloud metadata at 169.254.169.254) is refused unless
    # this says it is meant: alert config must not be a way to reach what only the host can.
    allow_loopback_and_link_local: bool = False
    timeout: Annotated[Duration, within(0, 300, above=True)] = 5.0

    @model_validator(mode="after")
    def _complete(self) -> Notifier:
        if self.type == "email":
            if not self.from_ or not self.to:
                raise ValueError('an email notifier needs `from` and `to = ["ops@example.com"]`')
            if self.url is not None:
                raise ValueError("an email notifier takes smtp_host/smtp_port, not `url`")
        elif not _has_host(self.url):
            article = "an" if self.type[0] in "aeiou" else "a"
            raise ValueError(f'{article} {self.type} notifier needs `url = "http(s)://host…"`')
        if self.url is not None and not self.allow_loopback_and_link_local:
            host = urlsplit(self.url).hostname or ""
            kind = local_address_kind(host)
            if kind is not None:
                raise ValueError(
                    f'url "{safe_host(self.url)}" is {local_address_phrase(kind)}; alerts go '
                    "there only with `allow_loopback_and_link_local = true` in this notifier"
                )
        if self.password_env is not None and not ENV_NAME.match(self.password_env):
            raise ValueError(f'password_env "{self.password_env}" is not a variable name')
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.type == "email":
            return f"email to {','.join(self.to)}"
        # the host only: a webhook URL's path or query may hold its token
        return f"{self.type} at {urlsplit(self.url or '').netloc.rpartition('@')[2]}"


def _has_host(url: str | None) -> bool:
    if url is None or not url.startswith(("http://", "https://")):
        return False
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False


def local_address_kind(host: str) -> str | None:
    """ "loopback", "link-local" or "unspecified" (0.0.0.0 reaches this host) when `host` is
    such an address (in any form the resolver takes: "127.1", "2130706433", "::ffff:127.0.0.1")
    or a name that always means this host ("localhost"); else None. Names are resolved at send
    time, not here."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    address = _ip(name)
    return None if address is None else address_kind(address)


def local_address_phrase(kind: str) -> str:
    what = {
        "loopback": "a loopback address (this host)",
        "link-local": "a link-local address (e.g. cloud metadata at 169.254.169.254)",
        "unspecified": "an unspecified address (0.0.0.0 reaches this host)",
    }
    return what.get(kind, f"a {kind} address")


def address_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    return None


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.partition("%")[0])  # "fe80::1%eth0": zone dropped
    except ValueError:
        pass
    try:  # the legacy forms inet_aton (and so the resolver) accepts: "127.1", "0x7f.1"
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def safe_host(url: str) -> str:
    """scheme://host[:port] of a URL: its path or query may hold a token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


class Alerting(Strict):
    defaults: bool = True  # the built-in rules, unless a rule of the same name replaces one
    notify: list[Notifier] = Field(default_factory=list)


def effective_rules(rules: list[AlertRule], alerting: Alerting) -> list[AlertRule]:
    """The app's rules plus the defaults it did not replace by name."""
    names = {r.name for r in rules}
    defaults = [r for r in DEFAULT_RULES if r.name not in names] if alerting.defaults else []
    return [*defaults, *rules]
