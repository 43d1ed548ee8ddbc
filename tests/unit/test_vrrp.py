"""The lb tier's virtual address: the setting's checks, who is preferred, and a keepalived
config that keepalived itself accepts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from slipway.agent import keepalived
from slipway.errors import RouterError, UsageError
from slipway.router import vrrp

CHECK = "/bin/sh -c 'kill -0 $(cat /srv/slipway/haproxy/haproxy.pid)'"


def test_an_address_with_its_prefix_is_the_setting() -> None:
    vip = vrrp.parse(" 10.0.0.100/24 ")
    assert (vip.address, vip.prefix, vip.router_id, vip.advert) == ("10.0.0.100", 24, 51, 0.5)
    assert vrrp.parse("10.0.0.100").prefix == 32
    assert vrrp.Vip.from_dict(vip.to_dict()) == vip
    assert 1.5 < vip.takeover_seconds < 2.0  # 3 adverts and the skew


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("10.0.0.300/24", "not an IPv4 address"),
        ("fe80::1/64", "not an IPv4 address"),
        ("127.0.0.5/8", "cannot be a virtual address"),
        ("10.0.0.100/4", "cannot be a virtual address"),
        ("10.0.0.100/x", "not a number"),
        ("", "not an IPv4 address"),
    ],
)
def test_what_cannot_be_a_virtual_address_is_refused_with_an_example(text: str, said: str) -> None:
    with pytest.raises(UsageError, match=said) as refused:
        vrrp.parse(text)
    assert refused.value.fix and "10.0.0.100/24" in refused.value.fix


def test_router_id_and_advert_are_bounded() -> None:
    with pytest.raises(UsageError, match="router id"):
        vrrp.parse("10.0.0.100/24", router_id=0)
    with pytest.raises(UsageError, match="out of range"):
        vrrp.parse("10.0.0.100/24", advert=0.01)
    with pytest.raises(UsageError, match="out of range"):
        vrrp.parse("10.0.0.100/24", advert=60)


def test_every_lb_host_must_be_in_the_address_network() -> None:
    vip = vrrp.parse("10.0.0.100/24")
    vrrp.check_same_network(vip, {"lb1": "10.0.0.11", "lb2": "10.0.0.12"})
    with pytest.raises(UsageError, match="lb2 are not in 10.0.0.0/24"):
        vrrp.check_same_network(vip, {"lb1": "10.0.0.11", "lb2": "10.0.1.12"})
    with pytest.raises(UsageError, match="address of lb1"):
        vrrp.check_same_network(vrrp.parse("10.0.0.11/24"), {"lb1": "10.0.0.11"})


def test_priorities_prefer_the_first_lb_host_by_name_and_stay_valid() -> None:
    assert vrrp.priorities(["lb2", "lb1", "lb3"]) == {"lb1": 150, "lb2": 140, "lb3": 130}
    many = vrrp.priorities([f"lb{i:02}" for i in range(40)])
    assert min(many.values()) >= 1 and len(set(many.values())) > 10


def render(interface: str = "eth1") -> str:
    vip = vrrp.parse("10.0.0.100/24", router_id=77, advert=0.2)
    return vrrp.render(vip, "lb1", interface, "10.0.0.11", ["10.0.0.13", "10.0.0.12"], 150, CHECK)


def test_the_config_speaks_unicast_to_the_peers_and_never_takes_the_address_back() -> None:
    config = render()
    for line in (
        "vrrp_version 3",
        "state BACKUP",
        "nopreempt",
        "interface eth1",
        "virtual_router_id 77",
        "priority 150",
        "advert_int 0.2",
        "unicast_src_ip 10.0.0.11",
        "10.0.0.100/24 dev eth1",
        f'script "{CHECK}"',
    ):
        assert line in config, line
    assert config.index("10.0.0.12") < config.index("10.0.0.13")  # sorted: one config, one text


@pytest.mark.skipif(shutil.which("keepalived") is None, reason="keepalived is not installed")
def test_keepalived_accepts_the_config_and_refuses_a_broken_one(tmp_path: Path) -> None:
    real = sorted(n for n in os.listdir("/sys/class/net") if n != "lo")  # keepalived checks it
    if not real:
        pytest.skip("no network interface but lo")
    good = tmp_path / "good.conf"
    good.write_text(render(real[0]))
    keepalived.config_test(keepalived.binary(), good)
    bad = tmp_path / "bad.conf"
    bad.write_text(render(real[0]).replace("advert_int 0.2", "advert_int soon"))
    with pytest.raises(RouterError, match="keepalived refused its config"):
        keepalived.config_test(keepalived.binary(), bad)
