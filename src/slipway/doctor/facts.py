"""What `slipway doctor` looks at, gathered in one place: the checks never do I/O."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from slipway.doctor.sshd import SshdConfig, read_sshd_config

# the files that hold secrets or state, relative to the home
PRIVATE_FILES = (
    "state.db",
    "state.db-wal",
    "state.db-shm",
    "secrets.key",
    "audit.key",
    "audit.log",
    "audit.head",
)
PRIVATE_GLOBS = ("audit.log.*",)  # the audit log's archived segments


@dataclass(frozen=True)
class PathMode:
    path: Path
    mode: int  # permission bits only
    is_dir: bool = False


@dataclass(frozen=True)
class AppProcess:
    pid: int
    app: str
    instance: str
    uid: int | None  # effective uid; None if unknown


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None  # None when the socket is another user's and we are not root
    name: str | None = None


@dataclass
class Facts:
    home: Path
    modes: list[PathMode] = field(default_factory=list)
    apps: list[AppProcess] = field(default_factory=list)
    slipway_pids: dict[int, str] = field(default_factory=dict)  # pid → "HAProxy", "daemon"
    listeners: list[Listener] = field(default_factory=list)
    http_url: str | None = None
    ssh: SshdConfig = field(default_factory=lambda: SshdConfig(Path("/etc/ssh/sshd_config")))
    haproxy_version: str | None = None
    haproxy_error: str | None = None
    disk: tuple[int, int] | None = None  # (total, free) bytes on the home's disk
    as_root: bool = False  # other users' processes are visible only to root


def gather(
    home: Path, sshd_config: Path = Path("/etc/ssh/sshd_config"), haproxy: str = "haproxy"
) -> Facts:
    apps, slipway_pids = gather_processes(home)
    version, error = haproxy_version(haproxy)
    return Facts(
        home=home,
        modes=gather_modes(home),
        apps=apps,
        slipway_pids=slipway_pids,
        listeners=gather_listeners(),
        http_url=read_text(home / "http.url"),
        ssh=read_sshd_config(sshd_config),
        haproxy_version=version,
        haproxy_error=error,
        disk=disk_usage(home),
        as_root=os.geteuid() == 0,
    )


def gather_modes(home: Path) -> list[PathMode]:
    """Modes of the home, its private files and HAProxy's certificates; missing ones skipped."""
    haproxy_dir = home / "haproxy"
    pems = sorted(haproxy_dir.rglob("*.pem")) if haproxy_dir.is_dir() else []
    archived = sorted(p for pattern in PRIVATE_GLOBS for p in home.glob(pattern))
    modes = []
    for path in [home, *(home / name for name in PRIVATE_FILES), *archived, *pems]:
        try:
            st = path.stat()
        except OSError:
            continue
        modes.append(PathMode(path, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)))
    return modes


def gather_processes(home: Path) -> tuple[list[AppProcess], dict[int, str]]:
    """App instance processes (SLIPWAY_APP in their environment, or running in a release
    folder) and slipway's own processes: the daemon and this home's HAProxy."""
    apps: list[AppProcess] = []
    ours: dict[int, str] = {}
    daemon = read_pid(home / "daemon.pid")
    if daemon is not None and psutil.pid_exists(daemon):
        ours[daemon] = "slipway daemon"
    for pidfile in (home / "haproxy").glob("*.pid"):
        pid = read_pid(pidfile)
        if pid is not None and psutil.pid_exists(pid):
            ours[pid] = "HAProxy"
    attrs = ["pid", "name", "uids", "cwd", "environ", "cmdline"]
    for proc in psutil.process_iter(attrs, ad_value=None):
        info = proc.info
        if info["pid"] == os.getpid():
            continue
        if info["name"] == "haproxy" and any(
            arg.startswith(f"{home}/") for arg in info["cmdline"] or []
        ):
            ours[info["pid"]] = "HAProxy"  # the master and its workers
        env = info["environ"] or {}
        app = env.get("SLIPWAY_APP") or release_app(home, info["cwd"])
        if app:
            instance = env.get("SLIPWAY_INSTANCE") or ("gate" if "SLIPWAY_GATE" in env else "?")
            uid = info["uids"].effective if info["uids"] else None
            apps.append(AppProcess(info["pid"], app, instance, uid))
    return apps, ours


def release_app(home: Path, cwd: str | None) -> str | None:
    """The app whose release folder (home/apps/APP/releases/…) holds cwd."""
    if not cwd:
        return None
    try:
        parts = Path(cwd).relative_to(home / "apps").parts
    except ValueError:
        return None
    return parts[0] if len(parts) >= 3 and parts[1] == "releases" else None


def gather_listeners() -> list[Listener]:
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    seen: set[tuple[str, int, int | None]] = set()
    listeners = []
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        key = (conn.laddr.ip, conn.laddr.port, conn.pid)
        if key not in seen:
            seen.add(key)
            listeners.append(Listener(*key, name=process_name(conn.pid)))
    return sorted(listeners, key=lambda item: (item.port, item.address))


def process_name(pid: int | None) -> str | None:
    if pid is None:
        return None
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None


def haproxy_version(binary: str) -> tuple[str | None, str | None]:
    """(version, None) from `haproxy -v`, or (None, why not)."""
    path = shutil.which(binary)
    if path is None:
        return None, f"HAProxy is not installed (no `{binary}` on PATH)"
    try:
        output = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot run `{path} -v`: {exc}"
    found = re.search(r"version (\d+\.\d+(?:\.\d+)?)", output)
    if not found:
        return None, f"`{path} -v` did not print a version"
    return found.group(1), None


def disk_usage(home: Path) -> tuple[int, int] | None:
    """(total, free) bytes for the disk the home is (or will be) on."""
    path = home
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return usage.total, usage.free


def read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def read_pid(path: Path) -> int | None:
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None
