"""The baseline: a naive stop-then-start deploy. Its own HAProxy (same defaults and health
checks as slipway's) in front of two hello instances on fixed ports; a deploy SIGTERMs both,
waits for them to exit (SIGKILL after the same grace period slipway is given), starts new ones
on the same ports and waits for /up."""

from __future__ import annotations

import csv
import io
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.zero_downtime.boot import instance_env, start_app, wait_up
from bench.zero_downtime.control import STOP_GRACE_SECONDS
from bench.zero_downtime.procs import Processes, free_port, wait_for

BACKEND = "naive"
INSTANCES = 2
# Like slipway's stop_grace: an old instance still running this long after SIGTERM is killed
# (hello, under load, now and then never acts on its SIGTERM).
STOP_TIMEOUT = STOP_GRACE_SECONDS
STATIC_ANSWER = (
    'http-request return status 200 content-type application/json string "{\\"release\\": '
    '\\"static\\"}"'
)


def haproxy_config(public_port: int, static_port: int, ports: list[int], admin_socket: Path) -> str:
    # The defaults and the server check options are those slipway renders (router/config.py
    # with the benchmark's healthcheck), so the two differ only in how they deploy.
    servers = "\n".join(
        f"    server web{i} 127.0.0.1:{port} weight 100 check inter 500ms fastinter 250ms "
        "downinter 250ms rise 2 fall 3"
        for i, port in enumerate(ports, 1)
    )
    return f"""global
    stats socket {admin_socket} mode 600 level admin
    maxconn 4096

defaults
    mode http
    option dontlognull
    option forwardfor
    option idle-close-on-response
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response junk-response
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 30s

frontend fe_naive
    bind 127.0.0.1:{public_port}
    default_backend {BACKEND}

# The noise floor: HAProxy answers by itself, no app behind it.
frontend fe_static
    bind 127.0.0.1:{static_port}
    {STATIC_ANSWER}

backend {BACKEND}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /up ver HTTP/1.1 hdr Host localhost
    http-check expect status 200-399
    timeout check 1000ms
{servers}
"""


@dataclass(frozen=True)
class NaiveDeploy:
    """Monotonic times of one naive deploy."""

    started: float  # SIGTERM sent
    stopped: float  # the old instances have exited
    answering: float  # the new instances answer /up
    routed: float  # HAProxy has both back UP: the deploy is over for users
    killed: int  # old instances still running STOP_TIMEOUT after SIGTERM, then SIGKILLed

    @property
    def seconds(self) -> float:
        return self.answering - self.started


class NaiveSite:
    def __init__(
        self, procs: Processes, root: Path, venv: Path, app_dir: Path, env: dict[str, str]
    ) -> None:
        self.procs = procs
        self.root = root
        self.venv = venv
        self.app_dir = app_dir
        self.env = env
        self.port = free_port()
        self.static_port = free_port()
        self.ports = [free_port() for _ in range(INSTANCES)]
        self.admin_socket = root / "admin.sock"
        self.instances: list[subprocess.Popen[bytes]] = []
        self.haproxy: subprocess.Popen[bytes] | None = None
        self.release = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def static_url(self) -> str:
        return f"http://127.0.0.1:{self.static_port}/"

    def start(self) -> None:
        self.start_instances()
        config = self.root / "haproxy.cfg"
        config.write_text(
            haproxy_config(self.port, self.static_port, self.ports, self.admin_socket)
        )
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
        log = open(self.root / "haproxy.log", "wb")  # noqa: SIM115 (HAProxy keeps it)
        self.haproxy = self.procs.spawn(
            [binary, "-db", "-f", config], env={}, cwd=self.root, stdout=log
        )
        wait_for(self.all_up, 30, "the baseline HAProxy to see both instances UP")

    def start_instances(self) -> None:
        self.release += 1
        env = instance_env(self.venv, self.env, f"r{self.release}")
        self.instances = [
            start_app(self.procs, self.venv, self.app_dir, port, env) for port in self.ports
        ]

    def deploy(self) -> NaiveDeploy:
        started = time.monotonic()
        for proc in self.instances:
            self.procs.terminate(proc)
        killed = sum(self.procs.reap(proc, STOP_TIMEOUT) for proc in self.instances)
        stopped = time.monotonic()
        self.start_instances()
        for port in self.ports:
            wait_up(port)
        answering = time.monotonic()
        wait_for(self.all_up, 30, "the baseline HAProxy to see both new instances UP", 0.01)
        return NaiveDeploy(started, stopped, answering, time.monotonic(), killed)

    def all_up(self) -> bool:
        statuses = self.server_statuses()
        return len(statuses) == INSTANCES and all(s == "UP" for s in statuses.values())

    def server_statuses(self) -> dict[str, str]:
        try:
            text = self.admin("show stat")
        except OSError:
            return {}
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
        }

    def admin(self, command: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stop(self) -> None:
        for proc in self.instances:
            self.procs.stop(proc)
        if self.haproxy is not None:
            self.procs.stop(self.haproxy)
