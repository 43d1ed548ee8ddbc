"""The lb tier's virtual address: keepalived (VRRP) on every `lb` host holds one address that
clients use, on one lb host at a time; when that host's HAProxy is gone (or the host, or its
link), another takes the address over. Pure: the setting, its checks, keepalived's config.
Standard library only (the agent renders the config on its host)."""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any

from slipway.errors import UsageError

ADVERT_RANGE = (0.1, 10.0)  # seconds between advertisements; VRRPv3 counts centiseconds
TOP_PRIORITY = 150  # the first lb host by name; each next one 10 less (keepalived: 1-254)


@dataclass(frozen=True)
class Vip:
    address: str  # IPv4, e.g. 10.0.0.100
    prefix: int  # of the lb hosts' network, e.g. 24
    router_id: int = 51  # VRRP's virtual router id: unique among VRRP users of that network
    advert: float = 0.5  # seconds: the address moves about 3 adverts after its holder is gone

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vip:
        return check(
            str(data["address"]), int(data["prefix"]), int(data["router_id"]), data["advert"]
        )

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefix}"

    @property
    def takeover_seconds(self) -> float:
        """VRRPv3's master-down interval: 3 adverts and the skew of priority 100."""
        return 3 * self.advert + (256 - 100) / 256 * self.advert


def parse(text: str, router_id: int = 51, advert: float = 0.5) -> Vip:
    """`10.0.0.100/24` (the prefix of the lb hosts' network; /32 if not given)."""
    address, _, prefix = text.strip().partition("/")
    if not prefix.isdigit():
        if prefix:
            raise UsageError(f'"{text}": the prefix after "/" is not a number', fix=EXAMPLE)
        prefix = "32"
    return check(address, int(prefix), router_id, advert)


EXAMPLE = 'e.g. "10.0.0.100/24": a free address in the lb hosts\' network, and its prefix'


def check(address: str, prefix: int, router_id: int, advert: float) -> Vip:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise UsageError(f'"{address}" is not an IPv4 address', fix=EXAMPLE) from None
    if ip.is_loopback or ip.is_multicast or ip.is_unspecified or not 8 <= prefix <= 32:
        raise UsageError(f'"{address}/{prefix}" cannot be a virtual address', fix=EXAMPLE)
    if not 1 <= router_id <= 255:
        raise UsageError(f"router id {router_id} is not 1-255", fix="e.g. --router-id 51")
    if not isinstance(advert, int | float) or not ADVERT_RANGE[0] <= advert <= ADVERT_RANGE[1]:
        raise UsageError(
            f"an advertisement every {advert}s is out of range",
            fix=f"between {ADVERT_RANGE[0]}s and {ADVERT_RANGE[1]}s, e.g. 0.5s",
        )
    return Vip(str(ip), prefix, router_id, round(float(advert), 2))


def priorities(lb_hosts: list[str]) -> dict[str, int]:
    """By name: the first lb host is preferred when all start together. With `nopreempt` a
    host that comes back does not take the address back (one move, not two)."""
    return {name: max(1, TOP_PRIORITY - 10 * i) for i, name in enumerate(sorted(lb_hosts))}


def check_same_network(vip: Vip, lb_addresses: dict[str, str]) -> None:
    """VRRP moves an address within one network: every lb host must be in the VIP's."""
    network = ipaddress.IPv4Network(vip.cidr, strict=False)
    outside = [n for n, a in sorted(lb_addresses.items()) if ipaddress.ip_address(a) not in network]
    if outside:
        raise UsageError(
            f"lb host(s) {', '.join(outside)} are not in {network}, the network of {vip.cidr}",
            fix="give the prefix of the lb hosts' network, e.g. /24, or an address inside it",
        )
    taken = [n for n, a in lb_addresses.items() if a == vip.address]
    if taken:
        raise UsageError(f"{vip.address} is the address of {taken[0]}", fix=EXAMPLE)


def render(
    vip: Vip,
    name: str,
    interface: str,
    me: str,
    peers: list[str],
    priority: int,
    check_command: str,
) -> str:
    """keepalived.conf for one lb host. Unicast to the other lb hosts (clouds drop multicast);
    VRRPv3 for sub-second adverts; every host BACKUP with `nopreempt`, so the highest
    priority starts as holder and no host takes the address back once it moved; the address
    is given away (FAULT) while the check of this host's HAProxy fails."""
    peer_lines = "".join(f"        {p}\n" for p in sorted(peers))
    return (
        "# written by slipway: changes here are overwritten\n"
        "global_defs {\n"
        f"    router_id slipway-{name}\n"
        "    vrrp_version 3\n"
        "    script_user root\n"
        "    enable_script_security\n"
        "    max_auto_priority -1\n"
        "}\n"
        "vrrp_script haproxy {\n"
        f'    script "{check_command}"\n'
        "    interval 1\n"
        "    timeout 1\n"
        "    fall 1\n"
        "    rise 2\n"
        "}\n"
        "vrrp_instance slipway {\n"
        "    state BACKUP\n"
        "    nopreempt\n"
        f"    interface {interface}\n"
        f"    virtual_router_id {vip.router_id}\n"
        f"    priority {priority}\n"
        f"    advert_int {vip.advert}\n"
        f"    unicast_src_ip {me}\n"
        "    unicast_peer {\n"
        f"{peer_lines}"
        "    }\n"
        "    virtual_ipaddress {\n"
        f"        {vip.cidr} dev {interface}\n"
        "    }\n"
        "    track_script {\n"
        "        haproxy\n"
        "    }\n"
        "}\n"
    )
