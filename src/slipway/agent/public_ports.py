"""Which clients may reach HAProxy's public listeners on an lb host, at the network layer:
`[edge] allow` of the apps served there, applied by the host's firewall before HAProxy sees
a packet (HAProxy still answers 403 to what it lets through and the app denies: the finer
rules, `deny` and allow by forwarded address, stay in HAProxy).

A port is filtered only when every app listening on it lists `allow`: one app open to all
keeps the port open to all (apps may share a port, routed by `Host`). The sources are the
union of those apps' `allow` and `trusted_proxies` (a proxy in front of the app connects
from its own address; `allow` is about the client behind it). Pure: no I/O."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from slipway.errors import PreflightError
from slipway.router.config import RouterState, listeners_of

AnyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PublicPort:
    port: int
    address: str  # the listener's address: "0.0.0.0" or "::" for every one of the host's
    v4: tuple[str, ...]  # the sources allowed, collapsed CIDR ranges
    v6: tuple[str, ...]

    @property
    def families(self) -> list[str]:
        """What HAProxy accepts on it: "0.0.0.0" is IPv4 only, "::" both."""
        if self.address == "::":
            return ["ip", "ip6"]
        return ["ip6" if ":" in self.address else "ip"]

    def set_name(self, family: str) -> str:
        where = self.address.replace(".", "_").replace(":", "_")
        return f"public_{self.port}_{where}_{family}"


def public_ports(state: RouterState) -> list[PublicPort]:
    """The public listeners of `state` that only some clients may reach."""
    groups: dict[tuple[str, int], list[tuple[str, ...]]] = {}
    for listener in listeners_of(state.backends):
        edge = listener.backend.edge
        sources = (*edge.allow, *edge.trusted_proxies) if edge.allow else ()
        groups.setdefault(listener.key, []).append(sources)
    found = []
    for (address, port), allowed in sorted(groups.items()):
        if not all(allowed):  # an app there is open to all
            continue
        networks = [network(s) for group in allowed for s in group]
        v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
        found.append(
            PublicPort(
                port=port,
                address=str(network(address or "0.0.0.0").network_address),
                v4=tuple(str(n) for n in ipaddress.collapse_addresses(v4)),
                v6=tuple(str(n) for n in ipaddress.collapse_addresses(v6)),
            )
        )
    return found


def network(value: str) -> AnyNetwork:
    """An address or CIDR range of `[edge] allow` (validated by the config already; parsed
    again here because the text goes into nftables' input)."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise PreflightError(f'"{value}" is not an IP address or CIDR range') from None


def rules(ports: list[PublicPort]) -> tuple[list[str], list[str]]:
    """nftables set declarations and input-chain rules that drop every other source."""
    sets: list[str] = []
    lines: list[str] = []
    for public in ports:
        wildcard = public.address in ("0.0.0.0", "::")
        for family in public.families:
            kind, members = ("ipv4_addr", public.v4) if family == "ip" else ("ipv6_addr", public.v6)
            name = public.set_name(family)
            elements = f" elements = {{ {', '.join(members)} }};" if members else ""
            sets.append(f"    set {name} {{ type {kind}; flags interval;{elements} }}")
            daddr = "" if wildcard else f"{family} daddr {public.address} "
            lines.append(
                f"        {daddr}tcp dport {public.port} {family} saddr != @{name} counter drop"
            )
    return sets, lines
