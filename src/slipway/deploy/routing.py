"""From recorded state to the router's desired state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipway.config.edge import Edge
from slipway.config.schema import AppConfig
from slipway.hosts.model import LOCAL, LOCAL_ADDRESS
from slipway.router.cache import cache_rules_in, compression_rules_in
from slipway.router.config import Backend, EdgeRules, RouterState, Server
from slipway.store.records import App, Instance


def routing_of(config: AppConfig) -> dict[str, Any] | None:
    """The part of an app's config that HAProxy's structure depends on; None without web."""
    if not config.has_web:
        return None
    check = config.healthcheck
    return {
        "address": config.listen.address,
        "port": config.listen.port,
        "hosts": list(config.listen.hosts),
        "check_path": check.path,
        "check_interval": check.interval,
        "check_timeout": check.timeout,
        "rise": check.healthy_threshold,
        "fall": check.unhealthy_threshold,
        "edge": edge_routing(config.edge),
    }


def edge_routing(edge: Edge) -> dict[str, Any]:
    """[edge] as stored with the app's routing (JSON); `edge_rules` reads it back."""
    return {
        "tls_cert": edge.tls_cert,
        "tls_key": edge.tls_key,
        "https_port": edge.effective_https_port,
        "hsts": round(edge.effective_hsts),
        "rate_limit": edge.rate_limit,
        "rate_window": edge.effective_rate_window,
        "allow": list(edge.allow),
        "deny": list(edge.deny),
        "max_body": edge.max_body,
        "max_header": edge.max_header,
        "security_headers": edge.security_headers,
        "proxy_protocol": edge.proxy_protocol,
        "trusted_proxies": list(edge.trusted_proxies),
        "cache": None
        if edge.cache is None
        else {
            "size_mb": edge.cache.size // (1024 * 1024),
            "max_object": edge.cache.max_object,
            "max_age": round(edge.cache.max_age),
            "paths": list(edge.cache.paths),
            "skip_paths": list(edge.cache.skip_paths),
        },
        "compression": None
        if edge.compression is None
        else {"types": list(edge.compression.types)},
    }


def edge_rules(stored: dict[str, Any] | None) -> EdgeRules:
    """Routing recorded before [edge] existed (no "edge" key) gets the defaults."""
    data = stored or {}
    default = EdgeRules()

    def optional_int(key: str) -> int | None:
        value = data.get(key)
        return None if value is None else int(value)

    return EdgeRules(
        tls_cert=data.get("tls_cert"),
        tls_key=data.get("tls_key"),
        https_port=int(data.get("https_port", default.https_port)),
        hsts=int(data.get("hsts", default.hsts)),
        rate_limit=int(data.get("rate_limit", default.rate_limit)),
        rate_window=float(data.get("rate_window", default.rate_window)),
        allow=tuple(data.get("allow") or ()),
        deny=tuple(data.get("deny") or ()),
        max_body=optional_int("max_body"),
        max_header=optional_int("max_header"),
        security_headers=bool(data.get("security_headers", default.security_headers)),
        proxy_protocol=bool(data.get("proxy_protocol", default.proxy_protocol)),
        trusted_proxies=tuple(data.get("trusted_proxies") or ()),
        cache=cache_rules_in(data.get("cache")),
        compression=compression_rules_in(data.get("compression")),
    )


def backend_for(
    app: str,
    routing: dict[str, Any],
    instances: list[Instance],
    addresses: Mapping[str, str] | None = None,
) -> Backend:
    """`addresses`: each host's private address, where its instances listen."""
    where = addresses or {LOCAL: LOCAL_ADDRESS}
    servers = tuple(
        Server(i.id, i.port, i.weight, where.get(i.host, LOCAL_ADDRESS))
        for i in instances
        if i.is_web and i.live and i.weight is not None and i.port is not None
    )
    return Backend(
        app=app,
        address=routing["address"],
        port=int(routing["port"]),
        hosts=tuple(routing.get("hosts") or ()),
        check_path=routing["check_path"],
        check_interval=float(routing["check_interval"]),
        check_timeout=float(routing["check_timeout"]),
        rise=int(routing["rise"]),
        fall=int(routing["fall"]),
        servers=servers,
        edge=edge_rules(routing.get("edge")),
    )


def router_state(
    admin_socket: str,
    apps: list[App],
    instances: list[Instance],
    override: dict[str, dict[str, Any] | None] | None = None,
    log_target: str | None = None,
    addresses: Mapping[str, str] | None = None,
) -> RouterState:
    """`override` lets a caller check a candidate routing before recording it."""
    overrides = override or {}
    backends = []
    for app in apps:
        routing = overrides.get(app.name, app.routing)
        if routing is None:
            continue
        mine = [i for i in instances if i.app == app.name]
        backends.append(backend_for(app.name, routing, mine, addresses))
    return RouterState(admin_socket=admin_socket, backends=tuple(backends), log_target=log_target)
