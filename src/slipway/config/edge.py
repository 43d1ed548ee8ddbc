"""`[edge]` in slipway.toml: how HAProxy guards the app (TLS, rate limits, IP rules, size
limits, security headers, the client's real IP) and, in edge_cache, what it caches and
compresses. Pure: no I/O (whether the certificate files exist and match is checked when they
are installed, by slipway.router.certs).

Reference: docs/edge.md."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from slipway.config.durations import parse_duration
from slipway.config.edge_cache import EdgeCache, EdgeCompression
from slipway.config.types import Duration, Size, Strict

DEFAULT_HSTS = 365 * 86400.0
DEFAULT_HTTPS_PORT = 443
DEFAULT_RATE_WINDOW = 10.0
MAX_HEADER_LIMIT = 64 * 1024  # HAProxy's buffers grow to fit it, for every connection


def network(value: str) -> str:
    """An IP address or CIDR range, normalised ("10.1.2.3/8" -> "10.0.0.0/8")."""
    if not isinstance(value, str):
        raise ValueError("expected a string such as 10.0.0.0/8 or 203.0.113.7")
    try:
        net = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(
            f'"{value}" is not an IP address or CIDR range (e.g. "203.0.113.7", "10.0.0.0/8", '
            '"2001:db8::/32")'
        ) from None
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def _hsts(value: object) -> float:
    if value is True:
        return DEFAULT_HSTS
    if value is False:
        return 0.0
    return parse_duration(value)


Network = Annotated[str, AfterValidator(network)]
HstsAge = Annotated[float, BeforeValidator(_hsts)]


class Edge(Strict):
    """Every rule applies to this app's traffic only, even when apps share a port."""

    # Keys that only mean something with another are None when not given (so that one given
    # alone is an error, also when a stored config is read back); see the effective_ ones.
    tls_cert: str | None = None  # PEM: the certificate, then its chain (and the key, if no tls_key)
    tls_key: str | None = None  # PEM: the certificate's private key, unencrypted
    https_port: int | None = Field(default=None, ge=1, le=65535)  # 443 when not given
    hsts: HstsAge | None = None  # Strict-Transport-Security max-age on HTTPS; 0/false: none
    rate_limit: int = Field(default=0, ge=0, le=1_000_000_000)  # per client IP per window
    rate_window: Duration | None = None  # 10s when not given
    allow: list[Network] = Field(default_factory=list)  # set: only these clients
    deny: list[Network] = Field(default_factory=list)  # always refused
    max_body: Size | None = None  # a larger Content-Length is refused with 413
    max_header: Size | None = None  # larger request headers are refused with 431
    security_headers: bool = True
    proxy_protocol: bool = False  # the listeners expect a PROXY protocol header (v1 or v2)
    trusted_proxies: list[Network] = Field(default_factory=list)  # their X-Forwarded-For counts
    cache: EdgeCache | None = None  # [edge.cache]: on when the table is there
    compression: EdgeCompression | None = None  # [edge.compression]: on when the table is there

    @field_validator("tls_cert", "tls_key")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError(
                f'"{value}" must be an absolute path (e.g. "/etc/ssl/shop.pem"): the daemon '
                "reads it, not the folder slipway.toml is in"
            )
        if info.field_name == "tls_key" and info.data.get("tls_cert") is None:
            raise ValueError("tls_key needs tls_cert (the certificate the key belongs to)")
        return value

    @field_validator("https_port", "hsts")
    @classmethod
    def _needs_tls(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None or "tls_cert" not in info.data:  # an invalid tls_cert: reported
            return value
        if info.data["tls_cert"] is None:
            raise ValueError(f"{info.field_name} applies to HTTPS only: set tls_cert as well")
        return value

    @field_validator("rate_window")
    @classmethod
    def _window(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        if not 1.0 <= value <= 86400.0:
            raise ValueError('the rate window is between 1s and 1d, e.g. "10s" or "1m"')
        if info.data.get("rate_limit") == 0:
            raise ValueError("rate_window applies to a rate limit: set rate_limit as well")
        return value

    @field_validator("max_body")
    @classmethod
    def _body(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError('max_body must be at least 1 byte, e.g. "10MB"; leave it out for none')
        return value

    @field_validator("max_header")
    @classmethod
    def _header(cls, value: int | None) -> int | None:
        if value is not None and not 1024 <= value <= MAX_HEADER_LIMIT:
            raise ValueError('max_header is between 1KB and 64KB, e.g. "16KB"')
        return value

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def effective_https_port(self) -> int:
        return DEFAULT_HTTPS_PORT if self.https_port is None else self.https_port

    @property
    def effective_hsts(self) -> float:
        return DEFAULT_HSTS if self.hsts is None else self.hsts

    @property
    def effective_rate_window(self) -> float:
        return DEFAULT_RATE_WINDOW if self.rate_window is None else self.rate_window


def check_ports(edge: Edge, listen_port: int) -> None:
    """Cross-section check for AppConfig: the HTTPS port cannot be the plain HTTP one."""
    port = edge.effective_https_port
    if edge.tls and port == listen_port:
        raise ValueError(
            f"https_port {port} is also [listen] port: HTTPS needs its own port "
            "(e.g. https_port = 443 with [listen] port = 80)"
        )
