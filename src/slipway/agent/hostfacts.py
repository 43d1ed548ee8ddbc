"""What `slipway doctor` needs to know about a fleet host, read there by its agent: its
clock, free disk, SSH server settings, listening sockets. Standard library only; the
checks themselves run on the control host (doctor/fleet.py)."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

SSHD_KEYS = ("permitrootlogin", "passwordauthentication", "kbdinteractiveauthentication", "usepam")
LISTEN = "0A"  # the state column of /proc/net/tcp


def gather(home: Path) -> dict[str, Any]:
    usage = shutil.disk_usage(home)
    return {
        "time": time.time(),
        "disk": [usage.total, usage.free],
        "sshd": sshd_settings(),
        "listeners": listeners(),
    }


def sshd_settings() -> dict[str, str]:
    """sshd's effective settings (`sshd -T`: defaults, includes and all), or {"error": …}."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    try:
        done = subprocess.run([binary, "-T"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return {"error": f"cannot run sshd -T: {exc}"}
    if done.returncode != 0:
        return {"error": f"sshd -T failed: {done.stderr.strip()[-300:]}"}
    found = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key in SSHD_KEYS:
            found[key] = value.strip()
    return found


def listeners() -> list[list[Any]]:
    """[address, port] of every listening TCP socket in this host's network namespace."""
    found = []
    for name, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN:
                address, port = fields[1].split(":")
                found.append([decode(address, width), int(port, 16)])
    return sorted(found)


def decode(hexed: str, width: int) -> str:
    """/proc/net/tcp's address: IPv4 as one little-endian word, IPv6 as four."""
    raw = bytes.fromhex(hexed)
    words = [raw[i : i + 4][::-1] for i in range(0, len(raw), 4)]
    packed = b"".join(words)
    if width == 8:
        return ".".join(str(b) for b in packed)
    return str(ipaddress.IPv6Address(packed))
