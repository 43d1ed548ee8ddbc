"""The checks: pure functions from gathered Facts to findings, each bad one with its fix."""

from __future__ import annotations

import ipaddress
import shlex
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from slipway.doctor.facts import Facts, Listener
from slipway.doctor.sshd import Setting
from slipway.router.haproxy import MIN_VERSION

Level = Literal["ok", "warn", "fail"]
GIB = 1024**3
INSTALL_HAPROXY = "apt-get install haproxy (Debian/Ubuntu; slipway needs 2.6 or newer)"
HOST_SERVICES = {"sshd"}  # public listeners every server is expected to have


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    message: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_modes(facts: Facts) -> list[Finding]:
    """The home and its secrets must not be readable or writable by group or others."""
    if not facts.modes:
        return [Finding("file modes", "ok", f"{facts.home} does not exist yet")]
    found = []
    for item in facts.modes:
        exposed = item.mode & 0o066  # 0711 is fine for the home: others may only traverse
        if not exposed:
            continue
        who = " and ".join(w for w, bits in (("group", 0o060), ("others", 0o006)) if exposed & bits)
        can = "/".join(c for c, bits in (("read", 0o044), ("write", 0o022)) if exposed & bits)
        target = f"{700 if item.is_dir else 600} {shlex.quote(str(item.path))}"
        found.append(
            Finding(
                "file modes",
                "fail",
                f"{item.path} has mode {item.mode:04o}: {who} can {can} it",
                f"chmod {target}",
            )
        )
    names = ", ".join("the home" if m.path == facts.home else m.path.name for m in facts.modes)
    return found or [Finding("file modes", "ok", f"private: {names}")]


def check_app_users(facts: Facts) -> list[Finding]:
    as_root: dict[tuple[str, str], list[int]] = defaultdict(list)
    for proc in facts.apps:
        if proc.uid == 0:
            as_root[(proc.app, proc.instance)].append(proc.pid)
    found = [
        Finding(
            "app users",
            "warn",
            f"app {app} instance {instance} runs as root (pid {', '.join(map(str, pids))})",
            f'give {app} a user of its own: `user = "…"` under `[run]` in its slipway.toml, '
            "then `slipway deploy`",
        )
        for (app, instance), pids in sorted(as_root.items())
    ]
    if found:
        return found
    if not facts.apps:
        return [Finding("app users", "ok", "no app instance is running")]
    return [Finding("app users", "ok", f"{len(facts.apps)} app process(es), none as root")]


def is_loopback(address: str) -> bool:
    host = address.strip("[]").split("%")[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def check_ports(facts: Facts) -> list[Finding]:
    """Public listeners must be slipway's (HAProxy, the daemon) or SSH; apps stay on loopback."""
    app_of = {p.pid: p for p in facts.apps}
    public = [item for item in facts.listeners if not is_loopback(item.address)]
    strangers: dict[tuple[int | None, str | None], list[Listener]] = defaultdict(list)
    found, expected = [], 0
    for item in public:
        if item.pid in facts.slipway_pids or item.name in HOST_SERVICES:
            expected += 1
        elif item.pid in app_of:
            proc = app_of[item.pid]
            found.append(
                Finding(
                    "ports",
                    "warn",
                    f"app {proc.app} instance {proc.instance} listens on "
                    f"{item.address}:{item.port}: reachable around HAProxy",
                    "bind it to 127.0.0.1:$PORT (HAProxy is the way in)",
                )
            )
        else:
            strangers[(item.pid, item.name)].append(item)
    hidden = "not visible here" if facts.as_root else "run doctor as root to see it"
    for (pid, name), items in strangers.items():
        ports = ", ".join(str(port) for port in sorted({i.port for i in items}))
        addresses = ", ".join(sorted({i.address for i in items}))
        owner = f"{name or '?'}, pid {pid}" if pid else f"owner {hidden}"
        text = f"port {ports} ({owner}) listens on {addresses}: not one of slipway's"
        fix = "close it, or bind it to 127.0.0.1 if it should not be public"
        found.append(Finding("ports", "warn", text, fix))
    local = len(facts.listeners) - len(public)
    return found or [
        Finding(
            "ports",
            "ok",
            f"{expected} public listener(s), all slipway's or SSH's; {local} loopback-only",
        )
    ]


def split_url(url: str) -> tuple[str, str]:
    """("http", host) from "http://HOST:PORT/", with or without [] around an IPv6 host."""
    scheme, _, rest = url.partition("://")
    hostport = rest.split("/")[0]
    host = hostport.rpartition(":")[0] if ":" in hostport else hostport
    return scheme.lower(), host.strip("[]")


def check_api(facts: Facts) -> list[Finding]:
    if not facts.http_url:
        return [Finding("api", "ok", "the daemon serves no HTTP API (or is not running)")]
    scheme, host = split_url(facts.http_url)
    if scheme == "http" and not is_loopback(host):
        return [
            Finding(
                "api",
                "fail",
                f"the dashboard and API are served without TLS on {facts.http_url}",
                "serve it on 127.0.0.1, or give it TLS "
                "(`slipway up --http ADDR --tls-cert … --tls-key …`)",
            )
        ]
    return [Finding("api", "ok", f"the dashboard and API are on {facts.http_url}")]


def set_sshd(line: str, setting: Setting | None, config: Path) -> str:
    """The fix: where to write `line` so that sshd, which keeps the first value, uses it."""
    if setting is not None:
        return f"change it to `{line}` at {setting.where}, then `systemctl reload ssh`"
    return f"add `{line}` at the top of {config}, then `systemctl reload ssh`"


def check_ssh(facts: Facts) -> list[Finding]:
    ssh = facts.ssh
    if not ssh.found:
        return [Finding("ssh", "ok", f"no SSH server configured (no {ssh.path})")]
    found = [Finding("ssh", "warn", text, "run `slipway doctor` as root") for text in ssh.problems]
    root, where = ssh.effective("permitrootlogin")
    if root == "yes":
        text = (
            f"root can log in over SSH (PermitRootLogin yes, {where.where if where else ssh.path})"
        )
        fix = set_sshd("PermitRootLogin prohibit-password", where, ssh.path)
        found.append(Finding("ssh", "fail", text, fix))
    password, where = ssh.effective("passwordauthentication")
    if password != "no":
        origin = where.where if where else "OpenSSH's default"
        text = f"SSH accepts passwords (PasswordAuthentication {password}, {origin})"
        fix = set_sshd("PasswordAuthentication no", where, ssh.path)
        found.append(Finding("ssh", "fail" if where else "warn", text, fix))
    kbd, where = ssh.effective("kbdinteractiveauthentication")
    if ssh.effective("usepam")[0] == "yes" and kbd != "no":
        origin = where.where if where else "OpenSSH's default"
        text = (
            f"PAM can ask for passwords (UsePAM yes, KbdInteractiveAuthentication {kbd}, {origin})"
        )
        fix = set_sshd("KbdInteractiveAuthentication no", where, ssh.path)
        found.append(Finding("ssh", "warn", text, fix))
    for keyword, setting in ssh.in_match:
        if keyword in ("permitrootlogin", "passwordauthentication") and setting.value == "yes":
            name = "root login" if keyword == "permitrootlogin" else "password login"
            text = f"`{setting.match}` allows {name} for what it matches ({setting.where})"
            found.append(Finding("ssh", "warn", text, "check that it is meant to: keys are safer"))
    return found or [Finding("ssh", "ok", "neither root nor password login is allowed")]


def check_haproxy(facts: Facts) -> list[Finding]:
    version = facts.haproxy_version
    if version is None:
        return [
            Finding("haproxy", "fail", facts.haproxy_error or "HAProxy not found", INSTALL_HAPROXY)
        ]
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) < MIN_VERSION:
        return [
            Finding(
                "haproxy",
                "fail",
                f"HAProxy {version} is too old: slipway needs 2.6+",
                INSTALL_HAPROXY,
            )
        ]
    return [Finding("haproxy", "ok", f"HAProxy {version}")]


def check_disk(facts: Facts) -> list[Finding]:
    if facts.disk is None:
        return [Finding("disk", "warn", f"cannot measure free space for {facts.home}", None)]
    total, free = facts.disk
    share = free / total if total else 0.0
    message = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB ({share:.0%}) for {facts.home}"
    fix = "free space on that disk (old releases: lower [deploy] keep_releases)"
    if share < 0.10 or free < GIB:
        return [Finding("disk", "fail", message, fix)]
    if share < 0.20:
        return [Finding("disk", "warn", message, fix)]
    return [Finding("disk", "ok", message)]


CHECKS: list[Callable[[Facts], list[Finding]]] = [
    check_modes,
    check_app_users,
    check_ports,
    check_api,
    check_ssh,
    check_haproxy,
    check_disk,
]


def run_checks(facts: Facts) -> list[Finding]:
    return [finding for check in CHECKS for finding in check(facts)]
