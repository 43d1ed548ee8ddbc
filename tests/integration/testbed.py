"""Hosts for the fleet tests, on this machine: each a network namespace with its own address
on a bridge and its own sshd (Debian's OpenSSH), reached from the root namespace, where the
control plane runs. What the namespaces share (the filesystem, pids) is kept apart by giving
each host its own folder. Everything made is removed by `down()`: processes inside the
namespaces (by pid), the namespaces, the bridge, the folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=check)


@dataclass(frozen=True)
class BedHost:
    name: str
    address: str
    netns: str
    root: Path  # its own folder: the agent's home lives in it
    veth: str  # its link's end in the root namespace (down: the host is cut off)

    @property
    def home(self) -> Path:
        return self.root / "home"


@dataclass
class Bed:
    folder: Path
    subnet: str = "10.207.0"
    prefix: str = "swft-"
    bridge: str = "swft0"
    hosts: dict[str, BedHost] = field(default_factory=dict)

    @property
    def key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def gateway(self) -> str:
        return f"{self.subnet}.1"

    def up(self, names: list[str]) -> None:
        self.down_leftovers()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        run("ip", "link", "add", self.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key))
        shutil.copy(f"{self.key}.pub", self.folder / "authorized_keys")
        Path("/run/sshd").mkdir(exist_ok=True, mode=0o755)
        for number, name in enumerate(names, start=11):
            self.hosts[name] = self._host(name, number)

    def _host(self, name: str, number: int) -> BedHost:
        netns, veth = f"{self.prefix}{name}", f"{self.bridge}-{number}"
        host = BedHost(name, f"{self.subnet}.{number}", netns, self.folder / name, veth)
        host.root.mkdir(parents=True)
        host.root.chmod(0o755)
        run("ip", "netns", "add", netns)
        run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
        run("ip", "link", "set", veth, "master", self.bridge, "up")
        run("ip", "-n", netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        run("ip", "-n", netns, "link", "set", "eth0", "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.root / "host_key"))
        self.start_sshd(host)
        return host

    def start_sshd(self, host: BedHost) -> None:
        config = host.root / "sshd_config"
        config.write_text(
            f"Port 22\nHostKey {host.root}/host_key\nPidFile {host.root}/sshd.pid\n"
            f"AuthorizedKeysFile {self.folder}/authorized_keys\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM yes\nUseDNS no\nMaxStartups 100\n"
            "MaxSessions 100\nSetEnv SHLVL=1\nSubsystem sftp /usr/lib/openssh/sftp-server\n"
        )
        (host.root / "sshd.pid").unlink(missing_ok=True)
        run("ip", "netns", "exec", host.netns, SSHD, "-f", str(config), "-E",
            f"{host.root}/sshd.log")  # fmt: skip
        deadline = time.monotonic() + 10
        while not (host.root / "sshd.pid").exists():  # written once it listens
            if time.monotonic() > deadline:
                log = (host.root / "sshd.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"sshd for {host.name} did not start: {log}")
            time.sleep(0.05)

    def fingerprint(self, name: str) -> str:
        out = run("ssh-keygen", "-lf", str(self.hosts[name].root / "host_key.pub")).stdout
        return out.split()[1]

    def cut(self, name: str) -> None:
        """The host's link goes down: it keeps running, nothing reaches it."""
        run("ip", "link", "set", self.hosts[name].veth, "down")

    def mend(self, name: str) -> None:
        run("ip", "link", "set", self.hosts[name].veth, "up")

    def crash(self, name: str) -> None:
        """Every process of the host killed at once (sshd, the agent, supervisors, apps): its
        link stays up, so whoever connects to it is refused at once (RST)."""
        for pid in self.pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reboot(self, name: str) -> None:
        """After `crash`: only sshd comes back, as after a reboot (once nothing of the host
        runs any more: a straggler may still hold its port)."""
        deadline = time.monotonic() + 10
        while self.pids(name) and time.monotonic() < deadline:
            self.crash(name)
            time.sleep(0.1)
        self.start_sshd(self.hosts[name])

    def partition(self, name: str, peer: str) -> None:
        """The host drops every packet from `peer` (e.g. the control plane at the gateway),
        and talks to every other host as before."""
        netns = self.hosts[name].netns
        nft = ("ip", "netns", "exec", netns, "nft")
        run(*nft, "add table inet swpart")
        run(*nft, "add chain inet swpart input { type filter hook input priority 0 ; }")
        run(*nft, f"add rule inet swpart input ip saddr {peer} drop")

    def heal(self, name: str) -> None:
        run("ip", "netns", "exec", self.hosts[name].netns, "nft", "delete table inet swpart")

    def pids(self, name: str) -> list[int]:
        out = run("ip", "netns", "pids", self.hosts[name].netns, check=False).stdout
        return [int(p) for p in out.split()]

    def down(self) -> None:
        for host in self.hosts.values():
            self._stop(host.netns)
        self.hosts.clear()
        self.down_leftovers()
        shutil.rmtree(self.folder, ignore_errors=True)

    def down_leftovers(self) -> None:
        """Whatever a killed run of these tests left: our namespaces, our bridge."""
        listed = run("ip", "netns", "list", check=False).stdout.split("\n")
        for netns in [line.split()[0] for line in listed if line.startswith(self.prefix)]:
            self._stop(netns)
        links = run("ip", "-o", "link", "show", check=False).stdout.splitlines()
        for name in [line.split(":")[1].strip().split("@")[0] for line in links]:
            if name == self.bridge or name.startswith(f"{self.bridge}-"):
                run("ip", "link", "del", name, check=False)  # a namespace freed late keeps it

    def _stop(self, netns: str) -> None:
        pids = run("ip", "netns", "pids", netns, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and run("ip", "netns", "pids", netns, check=False).stdout:
            time.sleep(0.05)
        for pid in run("ip", "netns", "pids", netns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "del", netns, check=False)
