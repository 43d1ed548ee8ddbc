"""A fleet host's firewall for slipway's ports: the table, its checks, reading it back."""

from __future__ import annotations

import json

import pytest

from slipway.agent import firewall
from slipway.daemon.firewall_ops import allowed_for
from slipway.errors import PreflightError
from slipway.hosts.model import Host, SshTarget, local_host


def test_the_table_drops_only_instance_ports_from_others_and_replaces_itself_whole() -> None:
    rules = firewall.render(["10.0.0.21", "10.0.0.11", "10.0.0.21"], [41002, 41001])
    assert rules.startswith("table inet slipway {}\ndelete table inet slipway\n")
    assert "elements = { 41001, 41002 }" in rules
    assert "elements = { 10.0.0.11, 10.0.0.21 }" in rules  # sorted, once each
    assert "tcp dport @instance_ports ip saddr != @allowed counter drop" in rules
    assert "policy accept" in rules  # nothing but slipway's ports is touched


def test_no_instances_yet_is_a_valid_empty_set() -> None:
    rules = firewall.render(["10.0.0.21"], [])
    assert "set instance_ports { type inet_service; }" in rules


def test_allowed_addresses_are_checked() -> None:
    assert firewall.check_allowed(["10.0.0.2", "10.0.0.1", "10.0.0.2"]) == ["10.0.0.1", "10.0.0.2"]
    with pytest.raises(PreflightError, match="not an IPv4"):
        firewall.check_allowed(["10.0.0.1; flush ruleset"])
    with pytest.raises(PreflightError, match="at most"):
        firewall.check_allowed(["10.0.0.1"] * (firewall.MAX_ALLOWED + 1))


def test_the_sets_are_read_back_from_nft_json() -> None:
    listing = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"table": "slipway", "name": "instance_ports", "elem": [41001]}},
            {"set": {"table": "slipway", "name": "allowed", "elem": ["10.0.0.21"]}},
            {"set": {"table": "other", "name": "allowed", "elem": ["0.0.0.0"]}},
        ]
    }
    sets = firewall.read_sets(json.dumps(listing))
    assert sets == {"instance_ports": [41001], "allowed": ["10.0.0.21"]}


def test_an_app_host_allows_the_lb_hosts_itself_and_the_control_plane() -> None:
    ssh = SshTarget("10.0.0.11", "SHA256:x")
    app1 = Host("app1", "10.0.0.11", frozenset({"app"}), ssh, facts={"client": "10.0.0.1"})
    lb1 = Host("lb1", "10.0.0.21", frozenset({"lb"}), ssh)
    lbs = [lb1, local_host()]  # the control host as an lb reaches them from 10.0.0.1 anyway
    assert allowed_for(app1, lbs) == ["10.0.0.1", "10.0.0.11", "10.0.0.21"]
