"""From recorded state to the router's desired state."""

from __future__ import annotations

from typing import Any

from slipway.config.schema import AppConfig
from slipway.router.config import Backend, RouterState, Server
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
    }


def backend_for(app: str, routing: dict[str, Any], instances: list[Instance]) -> Backend:
    servers = tuple(
        Server(i.id, i.port, i.weight)
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
    )


def router_state(
    admin_socket: str,
    apps: list[App],
    instances: list[Instance],
    override: dict[str, dict[str, Any] | None] | None = None,
    log_target: str | None = None,
) -> RouterState:
    """`override` lets a caller check a candidate routing before recording it."""
    overrides = override or {}
    backends = []
    for app in apps:
        routing = overrides.get(app.name, app.routing)
        if routing is None:
            continue
        backends.append(backend_for(app.name, routing, [i for i in instances if i.app == app.name]))
    return RouterState(admin_socket=admin_socket, backends=tuple(backends), log_target=log_target)
