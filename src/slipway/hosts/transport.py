"""How the control plane calls a host's agent. One small protocol, two implementations: the
control host's own agent in this process (LocalTransport), and a remote agent over one
multiplexed SSH connection (ssh.py); fakes for unit tests implement the same protocol."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any, Protocol

from slipway.agent.core import Agent, error_out
from slipway.errors import HostUnreachable, error_from_dict

__all__ = ["HostUnreachable", "LocalTransport", "Transport"]


class Transport(Protocol):
    host: str

    async def call(self, method: str, _timeout: float = 30.0, **params: Any) -> Any:
        """One request; raises the agent's SlipwayError, or HostUnreachable."""
        ...

    async def put(self, local: Path, remote: str, timeout: float = 300.0) -> None:
        """Copy a file to the host."""
        ...

    async def close(self) -> None: ...


class LocalTransport:
    """The control host's agent, in this process. Requests and answers still go through JSON,
    so the local host takes exactly the remote hosts' path."""

    def __init__(self, agent: Agent, host: str = "local") -> None:
        self.agent = agent
        self.host = host

    async def call(self, method: str, _timeout: float = 30.0, **params: Any) -> Any:
        request = json.loads(json.dumps(params))
        try:
            result = await self.agent.call(method, request)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise error_from_dict(error_out(exc)) from None
        return json.loads(json.dumps(result))

    async def put(self, local: Path, remote: str, timeout: float = 300.0) -> None:
        await asyncio.to_thread(shutil.copyfile, local, remote)

    async def close(self) -> None:
        return None
