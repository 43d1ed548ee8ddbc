"""`slipway doctor` for the fleet: each host's facts, as its agent read them, to findings.
Pure: the facts are gathered by the daemon (daemon/fleet_doctor.py)."""

from __future__ import annotations

from typing import Any

from slipway.doctor.checks import GIB, Finding

SKEW_WARN = 0.5  # seconds: request timings and canary seconds start to disagree
SKEW_FAIL = 5.0  # the judge's seconds, alerts' windows and audit times go wrong


def check_host(view: dict[str, Any]) -> list[Finding]:
    """One host: {name, error | facts, skew, expected_ports, build}."""
    name = view["name"]
    if view.get("error"):
        return [Finding(name, "fail", f"unreachable: {view['error']}", "see `slipway hosts`")]
    facts = view["facts"]
    return [
        *check_agent(name, facts, view["build"]),
        *check_firewall(name, facts.get("firewall") or {}),
        *check_sshd(name, facts.get("sshd") or {}),
        *check_listeners(name, facts.get("listeners") or [], set(view["expected_ports"])),
        *check_disk(name, facts.get("disk")),
        *check_clock(name, float(view["skew"]), float(view["skew_error"])),
    ]


def check_agent(name: str, facts: dict[str, Any], build: str | None) -> list[Finding]:
    if build and facts.get("build") != build:
        return [
            Finding(
                f"{name} agent",
                "fail",
                f"runs another build than this control plane ({str(facts.get('build'))[:12]})",
                f"slipway hosts upgrade {name}",
            )
        ]
    return [Finding(f"{name} agent", "ok", "this control plane's build")]


def check_firewall(name: str, firewall: dict[str, Any]) -> list[Finding]:
    if firewall.get("ok"):
        ports = len(firewall.get("ports", []))
        text = f"{ports} instance port(s) open to {', '.join(firewall.get('allowed', []))} only"
        return [Finding(f"{name} firewall", "ok", text)]
    problem = firewall.get("problem") or "not verified"
    fix = "install nftables there (apt-get install nftables); slipway applies it again at start"
    return [Finding(f"{name} firewall", "fail", problem, fix)]


def check_sshd(name: str, sshd: dict[str, str]) -> list[Finding]:
    if "error" in sshd:
        return [Finding(f"{name} ssh", "warn", sshd["error"], "run the agent as root")]
    found = []
    if sshd.get("permitrootlogin") == "yes":
        found.append(
            Finding(
                f"{name} ssh",
                "fail",
                "root can log in with a password (PermitRootLogin yes)",
                "PermitRootLogin prohibit-password in its sshd_config, then reload sshd",
            )
        )
    if sshd.get("passwordauthentication") == "yes" or (
        sshd.get("usepam") == "yes" and sshd.get("kbdinteractiveauthentication") == "yes"
    ):
        found.append(
            Finding(
                f"{name} ssh",
                "fail",
                "SSH accepts passwords",
                "PasswordAuthentication no and KbdInteractiveAuthentication no in its "
                "sshd_config, then reload sshd",
            )
        )
    return found or [Finding(f"{name} ssh", "ok", "keys only, no root password login")]


def check_listeners(name: str, listeners: list[list[Any]], expected: set[int]) -> list[Finding]:
    public = [(a, int(p)) for a, p in listeners if not str(a).startswith(("127.", "::1"))]
    strangers = sorted({p for _, p in public if p not in expected})
    if strangers:
        text = f"port(s) {', '.join(map(str, strangers))} listen beyond loopback: not slipway's"
        fix = "close them, or bind them to 127.0.0.1 if they should not be reachable"
        return [Finding(f"{name} ports", "warn", text, fix)]
    return [Finding(f"{name} ports", "ok", f"{len(public)} public listener(s), all expected")]


def check_disk(name: str, disk: list[int] | None) -> list[Finding]:
    if not disk:
        return [Finding(f"{name} disk", "warn", "free space unknown")]
    total, free = disk
    share = free / total if total else 0.0
    text = f"{free / GIB:.1f} GiB free of {total / GIB:.1f} GiB ({share:.0%})"
    fix = "free space there (old releases: lower [deploy] keep_releases)"
    if share < 0.10 or free < GIB:
        return [Finding(f"{name} disk", "fail", text, fix)]
    if share < 0.20:
        return [Finding(f"{name} disk", "warn", text, fix)]
    return [Finding(f"{name} disk", "ok", text)]


def check_clock(name: str, skew: float, error: float) -> list[Finding]:
    """The host's clock against the control host's, give or take half the round trip."""
    text = f"{skew:+.3f}s from the control host (±{error:.3f}s)"
    fix = "run NTP there (chrony or systemd-timesyncd)"
    if abs(skew) - error > SKEW_FAIL:
        return [Finding(f"{name} clock", "fail", text, fix)]
    if abs(skew) - error > SKEW_WARN:
        return [Finding(f"{name} clock", "warn", text, fix)]
    return [Finding(f"{name} clock", "ok", text)]
