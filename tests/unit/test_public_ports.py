"""HAProxy's public listeners on an lb host, filtered by `[edge] allow` at the firewall."""

from __future__ import annotations

import pytest

from slipway.agent import firewall
from slipway.agent.public_ports import PublicPort, public_ports
from slipway.errors import PreflightError
from slipway.router.config import Backend, EdgeRules, RouterState


def state(*backends: Backend) -> RouterState:
    return RouterState("/run/admin.sock", backends=backends)


def test_a_port_is_filtered_only_when_every_app_on_it_lists_allow() -> None:
    shared_open = state(
        Backend("a", "0.0.0.0", 8080, hosts=("a.example",), edge=EdgeRules(allow=("10.0.0.0/8",))),
        Backend("b", "0.0.0.0", 8080, hosts=("b.example",)),  # open to all: so is the port
    )
    assert public_ports(shared_open) == []
    v6 = EdgeRules(allow=("2001:db8::/32",))
    both = state(
        Backend("a", "0.0.0.0", 8080, hosts=("a.example",), edge=EdgeRules(allow=("10.0.0.0/8",))),
        Backend("b", "0.0.0.0", 8080, hosts=("b.example",), edge=v6),
    )
    assert public_ports(both) == [PublicPort(8080, "0.0.0.0", ("10.0.0.0/8",), ("2001:db8::/32",))]


def test_sources_are_allow_and_the_trusted_proxies_collapsed() -> None:
    edge = EdgeRules(
        allow=("10.0.0.0/8", "10.1.2.3", "192.0.2.10"), trusted_proxies=("198.51.100.1",)
    )
    (public,) = public_ports(state(Backend("a", "0.0.0.0", 8080, edge=edge)))
    # the proxy connects from its own address; 10.1.2.3 is inside 10.0.0.0/8 already
    assert public.v4 == ("10.0.0.0/8", "192.0.2.10/32", "198.51.100.1/32")


def test_an_https_listener_is_filtered_like_the_http_one() -> None:
    edge = EdgeRules(tls_cert="PEM", https_port=8443, allow=("192.0.2.0/24",))
    ports = public_ports(state(Backend("a", "0.0.0.0", 8080, edge=edge)))
    assert [p.port for p in ports] == [8080, 8443]


def test_the_table_drops_other_sources_on_filtered_ports_only() -> None:
    ports = public_ports(
        state(
            Backend("a", "0.0.0.0", 8080, edge=EdgeRules(allow=("192.0.2.0/24",))),
            Backend("c", "10.0.0.5", 9090, edge=EdgeRules(allow=("192.0.2.0/24",))),
            Backend("e", "0.0.0.0", 7070),
        )
    )
    rules = firewall.render(["10.0.0.21"], [41001], ports)
    declared = "set public_8080_0_0_0_0_ip { type ipv4_addr; flags interval; elements = {"
    assert declared + " 192.0.2.0/24 }; }" in rules
    assert "tcp dport 8080 ip saddr != @public_8080_0_0_0_0_ip counter drop" in rules
    # bound to one address: only packets to it (another program may use the port elsewhere)
    assert "ip daddr 10.0.0.5 tcp dport 9090 ip saddr" in rules
    assert "7070" not in rules and "ip6" not in rules  # "0.0.0.0" is IPv4 only in HAProxy


def test_a_value_that_is_no_network_never_reaches_nftables() -> None:
    with pytest.raises(PreflightError, match="not an IP address"):
        public_ports(
            state(Backend("a", "0.0.0.0", 8080, edge=EdgeRules(allow=("1.2.3.4 } ; flush",))))
        )
