"""A host: a machine slipway runs things on. The control host is the host named "local",
reached without SSH; every other one through its agent over SSH. Pure data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LOCAL = "local"
ROLES = ("app", "lb")
LOCAL_ADDRESS = "127.0.0.1"


@dataclass(frozen=True)
class SshTarget:
    """How the control plane reaches a host's agent: OpenSSH-compatible keys only, the host
    key pinned by its fingerprint."""

    address: str
    fingerprint: str  # SHA256:… of the host key, as `ssh-keygen -lf` prints it
    port: int = 22
    user: str = "root"
    key: str | None = None  # a private key file; None: the user's ssh-agent
    home: str = "/var/lib/slipway"  # the agent's home on that host
    python: str = "/usr/bin/python3"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SshTarget:
        return cls(**data)


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # where instances listen and lb hosts reach them
    roles: frozenset[str]
    ssh: SshTarget | None = None  # None: the control host itself
    agent_version: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # cores, memory, python, haproxy, …

    @property
    def local(self) -> bool:
        return self.ssh is None

    def has(self, role: str) -> bool:
        return role in self.roles


def local_host(roles: frozenset[str] = frozenset(ROLES)) -> Host:
    return Host(LOCAL, LOCAL_ADDRESS, roles)
