"""Where slipway keeps its state: everything lives under one home folder."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from slipway.errors import UsageError

# AF_UNIX paths are limited to 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107


def default_home() -> Path:
    env = os.environ.get("SLIPWAY_HOME")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "slipway"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, home: str | Path | None) -> Home:
        root = Path(home) if home else default_home()
        return cls(root.expanduser().absolute())

    @property
    def socket(self) -> Path:
        return self.root / "slipway.sock"

    @property
    def db(self) -> Path:
        return self.root / "state.db"

    @property
    def pidfile(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def http_file(self) -> Path:
        """The URL of the dashboard and /metrics while the daemon serves them."""
        return self.root / "http.url"

    @property
    def secrets_key(self) -> Path:
        return self.root / "secrets.key"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def haproxy_dir(self) -> Path:
        return self.root / "haproxy"

    def app_dir(self, app: str) -> Path:
        return self.root / "apps" / app

    def release_dir(self, app: str, release: str) -> Path:
        return self.app_dir(app) / "releases" / release

    def build_log(self, app: str, release: str) -> Path:
        return self.app_dir(app) / "builds" / f"{release}.log"

    def gate_log(self, app: str, release: str, gate: str) -> Path:
        return self.app_dir(app) / "gates" / release / f"{gate}.log"

    @property
    def prometheus_targets(self) -> Path:
        return self.root / "prometheus"

    def instance_dir(self, app: str, instance: str) -> Path:
        return self.app_dir(app) / "instances" / instance

    def ensure(self) -> None:
        """Create the home with tight modes and check socket paths fit AF_UNIX's limit."""
        for path in (self.socket, self.haproxy_dir / "master.sock"):
            if len(str(path)) > MAX_SOCKET_PATH:
                raise UsageError(
                    f"the slipway home path is too long for a unix socket ({len(str(path))} bytes)",
                    where=str(self.root),
                    fix="use a shorter --home / SLIPWAY_HOME (sockets are limited to 107 bytes)",
                )
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Private, but a traverse bit given to others stays: an app's own user and the
        # postgres user pass through the home to their folders (runtime/users.py,
        # agent/pgrun.py); taking it away at every start broke them until re-granted
        # (archive_command could not read its config after a daemon restart).
        os.chmod(self.root, 0o700 | (self.root.stat().st_mode & stat.S_IXOTH))
        self.haproxy_dir.mkdir(exist_ok=True, mode=0o700)
