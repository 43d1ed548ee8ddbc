"""`slipway doctor` for the fleet: findings from each host's facts, and reading them there."""

from __future__ import annotations

from typing import Any

from slipway.agent import hostfacts
from slipway.doctor.fleet import check_host

GIB = 1024**3


def view(**changes: Any) -> dict[str, Any]:
    facts = {
        "time": 1000.0,
        "disk": [100 * GIB, 50 * GIB],
        "sshd": {"permitrootlogin": "without-password", "passwordauthentication": "no"},
        "listeners": [["0.0.0.0", 22], ["10.0.0.11", 41001], ["127.0.0.1", 5000]],
        "firewall": {"ok": True, "ports": [41001], "allowed": ["10.0.0.21"]},
        "build": "b1",
    }
    base = {
        "name": "app1",
        "build": "b1",
        "facts": facts | changes.pop("facts", {}),
        "skew": 0.01,
        "skew_error": 0.002,
        "expected_ports": [22, 41001],
    }
    return base | changes


def levels(found: list[Any]) -> dict[str, str]:
    return {f.check: f.level for f in found}


def test_a_healthy_host_is_all_ok() -> None:
    found = check_host(view())
    assert set(levels(found).values()) == {"ok"}, found
    assert {"app1 agent", "app1 firewall", "app1 ssh", "app1 ports", "app1 disk", "app1 clock"} == {
        f.check for f in found
    }


def test_each_problem_is_named_with_its_fix() -> None:
    bad = view(
        build="b2",
        skew=7.0,
        facts={
            "sshd": {"permitrootlogin": "yes", "passwordauthentication": "yes"},
            "listeners": [["0.0.0.0", 22], ["0.0.0.0", 6379]],
            "firewall": {"ok": False, "problem": "instance port(s) open to all: [41001]"},
            "disk": [100 * GIB, 5 * GIB],
        },
    )
    found = {f.check + " " + f.message: f for f in check_host(bad)}
    by_check = levels(check_host(bad))
    assert by_check["app1 agent"] == "fail"
    assert any((f.fix or "") == "slipway hosts upgrade app1" for f in found.values())
    assert by_check["app1 firewall"] == "fail" and by_check["app1 disk"] == "fail"
    assert by_check["app1 clock"] == "fail" and by_check["app1 ports"] == "warn"
    assert any("6379" in key for key in found)
    assert sum(1 for f in check_host(bad) if f.check == "app1 ssh" and f.level == "fail") == 2


def test_a_small_skew_within_the_round_trip_is_not_a_problem() -> None:
    assert levels(check_host(view(skew=0.6, skew_error=0.2)))["app1 clock"] == "ok"
    assert levels(check_host(view(skew=0.9, skew_error=0.2)))["app1 clock"] == "warn"


def test_an_unreachable_host_fails() -> None:
    found = check_host({"name": "app2", "error": "connection refused", "build": "b1"})
    assert [(f.check, f.level) for f in found] == [("app2", "fail")]


def test_proc_net_addresses_are_decoded() -> None:
    assert hostfacts.decode("0100007F", 8) == "127.0.0.1"
    assert hostfacts.decode("0B00000A", 8) == "10.0.0.11"
    assert hostfacts.decode("00000000000000000000000001000000", 32) == "::1"
