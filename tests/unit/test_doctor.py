"""`slipway doctor`: each check from hand-made facts, the gatherers on tmp folders, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from slipway import doctor
from slipway.cli.doctor_cmds import doctor as doctor_command
from slipway.doctor.checks import (
    check_api,
    check_app_users,
    check_disk,
    check_haproxy,
    check_modes,
    check_ports,
    check_ssh,
    is_loopback,
    split_url,
)
from slipway.doctor.facts import (
    AppProcess,
    Facts,
    Listener,
    PathMode,
    gather_modes,
    gather_processes,
    haproxy_version,
    release_app,
)
from slipway.doctor.sshd import SshdConfig, read_sshd_config, split_words
from slipway.paths import Home

HOME = Path("/srv/slipway")
GIB = 1024**3


def levels(findings: list[doctor.Finding]) -> list[str]:
    return [f.level for f in findings]


# file modes ----------------------------------------------------------------------------


def test_private_home_and_files_are_ok() -> None:
    modes = [PathMode(HOME, 0o700, True), PathMode(HOME / "state.db", 0o600)]
    assert levels(check_modes(Facts(HOME, modes=modes))) == ["ok"]
    assert levels(check_modes(Facts(HOME, modes=[PathMode(HOME, 0o711, True)]))) == ["ok"]


def test_exposed_modes_fail_with_chmod() -> None:
    modes = [
        PathMode(HOME, 0o755, True),
        PathMode(HOME / "secrets.key", 0o644),
        PathMode(HOME / "audit.log", 0o620),
        PathMode(HOME / "state.db", 0o600),
    ]
    found = check_modes(Facts(HOME, modes=modes))
    assert levels(found) == ["fail", "fail", "fail"]
    assert found[0].fix == f"chmod 700 {HOME}"
    assert found[1].fix == f"chmod 600 {HOME}/secrets.key"
    assert "group and others can read" in found[1].message
    assert "group can write" in found[2].message


def test_missing_home_is_ok() -> None:
    assert levels(check_modes(Facts(HOME))) == ["ok"]


def test_gather_modes_reads_existing_files_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "haproxy" / "certs").mkdir(parents=True)
    home.chmod(0o750)
    files = (("state.db", 0o644), ("secrets.key", 0o600), ("other.txt", 0o644))
    for name, mode in (*files, ("audit.log.3", 0o640)):  # an archived audit segment
        (home / name).write_text("x")
        (home / name).chmod(mode)
    pem = home / "haproxy" / "certs" / "site.pem"
    pem.write_text("x")
    pem.chmod(0o640)
    modes = {m.path: m for m in gather_modes(home)}
    assert set(modes) == {home, home / "state.db", home / "secrets.key", home / "audit.log.3", pem}
    assert modes[home].is_dir and modes[home].mode == 0o750
    assert modes[home / "state.db"].mode == 0o644
    failed = [f.message for f in check_modes(Facts(home, modes=list(modes.values())))]
    assert len(failed) == 4 and not any("secrets.key" in m for m in failed)
    assert gather_modes(tmp_path / "absent") == []


# apps as root --------------------------------------------------------------------------


def test_apps_as_root_warn_once_per_instance() -> None:
    apps = [
        AppProcess(10, "shop", "r1-web-1", 0),
        AppProcess(11, "shop", "r1-web-1", 0),
        AppProcess(12, "shop", "r1-web-2", 1000),
    ]
    found = check_app_users(Facts(HOME, apps=apps))
    assert levels(found) == ["warn"]
    assert "shop instance r1-web-1 runs as root (pid 10, 11)" in found[0].message
    assert found[0].fix is not None and "under `[run]`" in found[0].fix


def test_apps_not_as_root_are_ok() -> None:
    assert levels(check_app_users(Facts(HOME))) == ["ok"]
    apps = [AppProcess(12, "shop", "r1-web-2", 1000)]
    assert levels(check_app_users(Facts(HOME, apps=apps))) == ["ok"]


def test_release_app_from_cwd() -> None:
    assert release_app(HOME, f"{HOME}/apps/shop/releases/r3") == "shop"
    assert release_app(HOME, f"{HOME}/apps/shop/releases/r3/sub") == "shop"
    assert release_app(HOME, f"{HOME}/apps/shop/builds") is None
    assert release_app(HOME, "/elsewhere") is None
    assert release_app(HOME, None) is None


def test_gather_processes_finds_apps_and_the_daemon(tmp_path: Path) -> None:
    env = os.environ | {"SLIPWAY_APP": "demo", "SLIPWAY_INSTANCE": "r1-web-1"}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=env)
    try:
        (tmp_path / "daemon.pid").write_text(str(child.pid))
        for _ in range(50):  # the environment is readable once the interpreter has started
            apps, ours = gather_processes(tmp_path)
            if any(a.pid == child.pid for a in apps):
                break
            time.sleep(0.1)
        assert AppProcess(child.pid, "demo", "r1-web-1", os.geteuid()) in apps
        assert ours[child.pid] == "slipway daemon"
    finally:
        child.kill()
        child.wait()


# ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("fe80::1%eth0", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_slipways_ssh_and_loopback_listeners_are_ok() -> None:
    facts = Facts(
        HOME,
        slipway_pids={100: "HAProxy", 200: "slipway daemon"},
        listeners=[
            Listener("0.0.0.0", 80, 100, "haproxy"),
            Listener("::", 443, 100, "haproxy"),
            Listener("0.0.0.0", 22, 50, "sshd"),
            Listener("127.0.0.1", 5432, 300, "postgres"),
            Listener("::1", 6379, 301, "redis-server"),
        ],
    )
    found = check_ports(facts)
    assert levels(found) == ["ok"]
    assert "3 public" in found[0].message and "2 loopback-only" in found[0].message


def test_strangers_on_public_addresses_warn_grouped_by_process() -> None:
    facts = Facts(
        HOME,
        listeners=[
            Listener("0.0.0.0", 5432, 300, "postgres"),
            Listener("::", 5432, 300, "postgres"),
            Listener("0.0.0.0", 9000, None),
        ],
    )
    found = check_ports(facts)
    assert levels(found) == ["warn", "warn"]
    assert found[0].message.startswith("port 5432 (postgres, pid 300) listens on 0.0.0.0, ::")
    assert found[0].fix is not None and "127.0.0.1" in found[0].fix
    assert "run doctor as root" in found[1].message
    assert (
        "not visible"
        in check_ports(Facts(HOME, listeners=facts.listeners, as_root=True))[1].message
    )


def test_an_app_on_a_public_address_warns() -> None:
    facts = Facts(
        HOME,
        apps=[AppProcess(400, "shop", "r1-web-1", 1000)],
        listeners=[Listener("0.0.0.0", 8080, 400, "python")],
    )
    found = check_ports(facts)
    assert levels(found) == ["warn"]
    assert "shop instance r1-web-1" in found[0].message


# the API -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "level"),
    [
        (None, "ok"),
        ("http://127.0.0.1:7870/", "ok"),
        ("http://[::1]:7870/", "ok"),
        ("http://::1:7870/", "ok"),  # how the daemon writes an IPv6 host
        ("https://0.0.0.0:7870/", "ok"),
        ("http://0.0.0.0:7870/", "fail"),
        ("http://:::7870/", "fail"),
        ("http://10.0.0.5:7870/", "fail"),
    ],
)
def test_api_without_tls_off_loopback_fails(url: str | None, level: str) -> None:
    found = check_api(Facts(HOME, http_url=url))
    assert levels(found) == [level]
    if level == "fail":
        assert found[0].fix is not None and "--tls-cert" in found[0].fix


def test_split_url() -> None:
    assert split_url("http://127.0.0.1:7870/") == ("http", "127.0.0.1")
    assert split_url("HTTPS://[::]:7870/") == ("https", "::")


# SSH -----------------------------------------------------------------------------------


def ssh_findings(tmp_path: Path, text: str, **files: str) -> list[doctor.Finding]:
    for name, content in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (tmp_path / "sshd_config").write_text(text)
    return check_ssh(Facts(HOME, ssh=read_sshd_config(tmp_path / "sshd_config")))


def test_no_sshd_config_is_ok(tmp_path: Path) -> None:
    found = check_ssh(Facts(HOME, ssh=read_sshd_config(tmp_path / "missing")))
    assert levels(found) == ["ok"] and "no SSH server" in found[0].message


def test_hardened_config_is_ok(tmp_path: Path) -> None:
    text = "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
    assert levels(ssh_findings(tmp_path, text)) == ["ok"]


def test_defaults_warn_about_passwords_only(tmp_path: Path) -> None:
    found = ssh_findings(tmp_path, "# PermitRootLogin yes\n\nPort 22\n")
    assert levels(found) == ["warn"]  # root: prohibit-password by default; passwords: yes
    assert "OpenSSH's default" in found[0].message
    assert found[0].fix is not None and "PasswordAuthentication no" in found[0].fix


def test_case_equals_and_comments(tmp_path: Path) -> None:
    text = 'permitrootlogin=YES   # old habit\n  PASSWORDAUTHENTICATION  "no"\n'
    found = ssh_findings(tmp_path, text)
    assert levels(found) == ["fail"]
    assert "PermitRootLogin yes" in found[0].message and "sshd_config:1" in found[0].message


def test_first_value_wins_across_includes(tmp_path: Path) -> None:
    # the cloud-init gotcha: a drop-in read first turns passwords back on
    text = "Include sshd_config.d/*.conf\nPasswordAuthentication no\nPermitRootLogin no\n"
    found = ssh_findings(
        tmp_path,
        text,
        **{
            "sshd_config.d__50-cloud-init.conf": "PasswordAuthentication yes\n",
            "sshd_config.d__10-keys.conf": "PermitRootLogin yes\n",
        },
    )
    assert levels(found) == ["fail", "fail"]
    assert "10-keys.conf:1" in found[0].message
    assert found[1].fix is not None and "50-cloud-init.conf:1" in found[1].fix


def test_includes_are_read_in_sorted_order(tmp_path: Path) -> None:
    files = {
        "d__20-b.conf": "PasswordAuthentication yes\n",
        "d__10-a.conf": "PasswordAuthentication no\n",
    }
    assert levels(ssh_findings(tmp_path, f"Include {tmp_path}/d/*.conf\n", **files)) == ["ok"]


def test_match_blocks_are_notes_not_global(tmp_path: Path) -> None:
    text = (
        "PasswordAuthentication no\n"
        "Match Address 10.0.0.0/8\n"
        "    PasswordAuthentication yes\n"
        "    PermitRootLogin yes\n"
    )
    found = ssh_findings(tmp_path, text)
    assert levels(found) == ["warn", "warn"]
    assert "`Match Address 10.0.0.0/8` allows password login" in found[0].message
    assert "root login" in found[1].message


def test_match_in_an_included_file_ends_with_that_file(tmp_path: Path) -> None:
    files = {"inc.conf": "Match User deploy\nPermitRootLogin yes\n"}
    found = ssh_findings(tmp_path, "Include inc.conf\nPasswordAuthentication no\n", **files)
    assert levels(found) == ["warn"]  # the Match note only: the main file's line is global


def test_include_inside_a_match_is_conditional(tmp_path: Path) -> None:
    files = {"inc.conf": "PasswordAuthentication yes\n"}
    text = "PasswordAuthentication no\nMatch Group admins\nInclude inc.conf\n"
    found = ssh_findings(tmp_path, text, **files)
    assert levels(found) == ["warn"] and "Match Group admins" in found[0].message


def test_match_all_overrides_the_global_value(tmp_path: Path) -> None:
    text = "PasswordAuthentication no\nMatch all\nPasswordAuthentication yes\n"
    found = ssh_findings(tmp_path, text)
    assert levels(found) == ["fail"] and "sshd_config:3" in found[0].message


def test_pam_keyboard_interactive_can_ask_for_passwords(tmp_path: Path) -> None:
    base = "PasswordAuthentication no\nUsePAM yes\n"
    assert levels(ssh_findings(tmp_path, base)) == ["warn"]
    assert levels(ssh_findings(tmp_path, base + "ChallengeResponseAuthentication no\n")) == ["ok"]
    assert levels(ssh_findings(tmp_path, base + "KbdInteractiveAuthentication no\n")) == ["ok"]


def test_include_loops_stop(tmp_path: Path) -> None:
    (tmp_path / "sshd_config").write_text("Include sshd_config\nPasswordAuthentication no\n")
    config = read_sshd_config(tmp_path / "sshd_config")
    assert config.problems and config.settings["passwordauthentication"].value == "no"


def test_split_words() -> None:
    assert split_words("yes # comment") == ["yes"]
    assert split_words('"a b" c#d') == ["a b", "c#d"]


# HAProxy and disk ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "level"), [("2.6.12", "ok"), ("3.0", "ok"), ("2.4.22", "fail"), (None, "fail")]
)
def test_haproxy_version(version: str | None, level: str) -> None:
    found = check_haproxy(Facts(HOME, haproxy_version=version, haproxy_error="no haproxy"))
    assert levels(found) == [level]
    if level == "fail":
        assert found[0].fix is not None and "apt-get install haproxy" in found[0].fix


def test_haproxy_version_runs_the_binary(tmp_path: Path) -> None:
    fake = tmp_path / "haproxy"
    fake.write_text(
        "#!/bin/sh\necho 'HA-Proxy version 2.4.1-1 2021/06/01 - https://haproxy.org/'\n"
    )
    fake.chmod(0o755)
    assert haproxy_version(str(fake)) == ("2.4.1", None)
    version, error = haproxy_version(str(tmp_path / "nothing"))
    assert version is None and error is not None and "not installed" in error


@pytest.mark.parametrize(
    ("disk", "level"),
    [
        ((100 * GIB, 50 * GIB), "ok"),
        ((100 * GIB, 15 * GIB), "warn"),
        ((100 * GIB, 5 * GIB), "fail"),
        ((2 * GIB, GIB // 2), "fail"),  # 25% but under 1 GiB
        (None, "warn"),
    ],
)
def test_disk(disk: tuple[int, int] | None, level: str) -> None:
    assert levels(check_disk(Facts(HOME, disk=disk))) == [level]


# the command ---------------------------------------------------------------------------


def healthy(home: Path) -> Facts:
    return Facts(
        home,
        modes=[PathMode(home, 0o700, True)],
        ssh=SshdConfig(home / "no-sshd"),
        haproxy_version="2.8.3",
        disk=(100 * GIB, 60 * GIB),
    )


def run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(doctor_command, list(args), obj=Home.resolve(home))
    return result.exit_code, result.output


def test_cli_exits_0_on_warnings_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = healthy(tmp_path)
    facts.listeners = [Listener("0.0.0.0", 5432, 300, "postgres")]
    monkeypatch.setattr(doctor, "gather", lambda *args: facts)
    code, output = run(tmp_path)
    assert code == 0, output
    assert "✓" in output and "! ports" in output and "fix: close it" in output
    assert "0 failed, 1 warning(s)" in output


def test_cli_exits_1_on_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facts = healthy(tmp_path)
    facts.haproxy_version, facts.haproxy_error = None, "HAProxy is not installed"
    monkeypatch.setattr(doctor, "gather", lambda *args: facts)
    code, output = run(tmp_path)
    assert code == 1
    assert "✗ haproxy" in output and "apt-get install haproxy" in output
    code, output = run(tmp_path, "--json")
    data = json.loads(output)
    assert code == 1 and data["summary"]["fail"] == 1
    assert [f["check"] for f in data["findings"] if f["level"] == "fail"] == ["haproxy"]


def test_cli_on_a_real_tmp_home_without_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "secrets.key").write_text("k")
    (home / "secrets.key").chmod(0o644)
    sshd = tmp_path / "sshd_config"
    sshd.write_text("PermitRootLogin no\nPasswordAuthentication no\n")
    code, output = run(home, "--json", "--sshd-config", str(sshd))
    data = json.loads(output)
    assert code == 1  # the exposed secrets.key
    assert data["summary"]["fail"] >= 1
    by_check = {f["check"]: f for f in data["findings"]}
    assert by_check["ssh"]["level"] == "ok"
    assert by_check["file modes"]["fix"] == f"chmod 600 {home}/secrets.key"
    assert by_check["api"]["level"] == "ok"  # no http.url: no daemon
