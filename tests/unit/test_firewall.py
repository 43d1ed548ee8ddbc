"""A fleet host's firewall for slipway's ports: the table, its checks, reading it back."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_a_starting_instance_port_stays_closed_to_others_until_its_spec_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch refreshes every 2 s from the specs on disk: one that runs between the start's
    refresh and the spec being written must not drop the new port (open to all meanwhile)."""
    import asyncio

    from slipway.paths import Home
    from slipway.runtime.local import LocalRuntime

    applied: list[str] = []
    monkeypatch.setattr(firewall, "nft", lambda args, stdin=None: applied.append(stdin or ""))
    home = Home(tmp_path)
    home.root.mkdir(parents=True, exist_ok=True)
    wall = firewall.Firewall(home, LocalRuntime(home))
    (tmp_path / "firewall.json").write_text(json.dumps({"allowed": ["10.0.0.21"]}))

    async def scenario() -> None:
        await wall.refresh(also=41001)  # the start: before the instance's spec exists
        await wall.refresh()  # the watch, meanwhile
        assert "elements = { 41001 }" in applied[-1]
        wall.starting.discard(41001)  # started: its spec names the port from now on
        await wall.refresh()
        assert "41001" not in applied[-1]  # (no spec here: it is gone)

    asyncio.run(scenario())
