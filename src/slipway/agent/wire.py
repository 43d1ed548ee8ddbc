"""What crosses between the control plane and an agent: plain JSON. Every call, even to the
control host's own agent in the same process, goes through these encodings, so the local
host and a remote one take exactly the same path.

Standard library only: the agent runs from a zipapp on hosts with nothing but Python."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

from slipway.router.cache import cache_rules_in, compression_rules_in
from slipway.router.config import Backend, EdgeRules, RouterState, Server
from slipway.router.stats import ServerStat
from slipway.runtime.base import Handle, InstanceSpec, Observed


def spec_out(spec: InstanceSpec) -> dict[str, Any]:
    data = dataclasses.asdict(spec)
    data["cwd"] = str(spec.cwd)
    return data


def spec_in(data: dict[str, Any]) -> InstanceSpec:
    return InstanceSpec(**(data | {"cwd": Path(data["cwd"])}))


def handle_out(handle: Handle | None) -> list[float] | None:
    return None if handle is None else [handle.pid, handle.ctime]


def handle_in(data: list[float] | None) -> Handle | None:
    return None if data is None else Handle(int(data[0]), float(data[1]))


def observed_out(observed: Observed) -> dict[str, Any]:
    return dataclasses.asdict(observed)


def observed_in(data: dict[str, Any]) -> Observed:
    return Observed(**data)


def state_out(state: RouterState) -> dict[str, Any]:
    return dataclasses.asdict(state)


def state_in(data: dict[str, Any]) -> RouterState:
    backends = tuple(backend_in(b) for b in data["backends"])
    return RouterState(**(data | {"backends": backends}))


def backend_out(backend: Backend) -> dict[str, Any]:
    return dataclasses.asdict(backend)


def backend_in(data: dict[str, Any]) -> Backend:
    edge = data["edge"]
    return Backend(
        **(
            data
            | {
                "hosts": tuple(data["hosts"]),
                "servers": tuple(Server(**s) for s in data["servers"]),
                "edge": EdgeRules(
                    **(
                        edge
                        | {
                            "allow": tuple(edge["allow"]),
                            "deny": tuple(edge["deny"]),
                            "trusted_proxies": tuple(edge["trusted_proxies"]),
                            "cache": cache_rules_in(edge.get("cache")),
                            "compression": compression_rules_in(edge.get("compression")),
                        }
                    )
                ),
            }
        )
    )


def server_in(data: dict[str, Any]) -> Server:
    return Server(**data)


def stats_out(stats: dict[str, ServerStat]) -> dict[str, Any]:
    return {name: dataclasses.asdict(stat) for name, stat in stats.items()}


def stats_in(data: dict[str, Any]) -> dict[str, ServerStat]:
    return {name: ServerStat(**stat) for name, stat in data.items()}


def blob_out(data: bytes) -> str:
    return base64.b64encode(data).decode()


def blob_in(text: str) -> bytes:
    return base64.b64decode(text)
