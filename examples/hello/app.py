"""hello: a small real web app for slipway's demo, tests and benchmarks (standard library only).

Knobs, read from the environment:
  FAIL_RATE         share of requests to / that answer 500 (0.0–1.0)
  EXTRA_LATENCY_MS  added to every request to / (milliseconds)
  BOOT_SECONDS      sleep this long before listening (a slow boot)
  CRASH_ON_BOOT     if set to 1, exit with an error before listening
  GREETING          the text it answers with
  QUEUE_DEPTH       the value of the hello_queue_depth gauge on /metrics (for canary checks)
  WORK_MS           CPU work per request to / (milliseconds of this thread's CPU time, a busy loop)
  SLOTS             at most this many requests to / are served at once (a worker pool, like
                    gunicorn's workers); the others wait for a free slot. 0 (the default): no limit.
                    A request holds its slot for its whole service time: EXTRA_LATENCY_MS (a
                    sleep, like waiting on a database) plus WORK_MS (CPU). One instance's capacity
                    is then SLOTS / service time: SLOTS=2 with 20 ms of service is ~100 req/s.
                    /up and /metrics never wait for a slot (health checks must not queue behind
                    the load, or a busy instance would be taken for a dead one).
                    On a machine with few cores, make most of the service time the sleep: N
                    CPU-bound instances on fewer than N cores cannot serve N times what one does.

/edge/<kind> answers with the headers an edge cache and compression judge (see edge_answer).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = os.environ.get("SLIPWAY_RELEASE", "dev")
INSTANCE = os.environ.get("SLIPWAY_INSTANCE", "local")
FAIL_RATE = float(os.environ.get("FAIL_RATE", "0") or 0)
EXTRA_LATENCY = float(os.environ.get("EXTRA_LATENCY_MS", "0") or 0) / 1000
GREETING = os.environ.get("GREETING", "hello")
QUEUE_DEPTH = float(os.environ.get("QUEUE_DEPTH", "0") or 0)
WORK = float(os.environ.get("WORK_MS", "0") or 0) / 1000
SLOTS = int(os.environ.get("SLOTS", "0") or 0)
# The worker pool: a request to / holds one of SLOTS while it is served.
SLOT: contextlib.AbstractContextManager[object] = (
    threading.BoundedSemaphore(SLOTS) if SLOTS > 0 else contextlib.nullcontext()
)
COUNTS: dict[int, int] = {}
COUNTS_LOCK = threading.Lock()


def busy(seconds: float) -> None:
    """Burn this much of this thread's CPU time (it takes longer on a busy machine, as real
    work would)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HAProxy expects
    timeout = 30  # idle keep-alive connections end after this long

    def do_GET(self) -> None:
        server: Server = self.server  # type: ignore[assignment]
        with server.busy_lock:
            server.busy += 1
        try:
            self.route()
        finally:
            with server.busy_lock:
                server.busy -= 1
            if server.stopping.is_set():
                self.close_connection = True

    def do_POST(self) -> None:
        """A request that is not idempotent (the benchmarks' mix): its body is read, and it
        is answered as the same GET would be."""
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def route(self) -> None:
        if self.path == "/up":
            self.reply(200, {"status": "up", "release": RELEASE})
            return
        if self.path == "/metrics":
            self.metrics()
            return
        if self.path.startswith("/edge/"):
            self.edge_answer(self.path.removeprefix("/edge/").partition("?")[0])
            return
        with SLOT:
            if self.path.startswith("/slow"):
                time.sleep(float(self.path.partition("=")[2] or 1))
            if EXTRA_LATENCY:
                time.sleep(EXTRA_LATENCY)
            if WORK:
                busy(WORK)
        if FAIL_RATE and random.random() < FAIL_RATE:
            self.reply(500, {"error": "injected failure", "release": RELEASE})
            return
        self.reply(
            200,
            {"greeting": GREETING, "release": RELEASE, "instance": INSTANCE, "pid": os.getpid()},
        )

    def metrics(self) -> None:
        """Prometheus text format, labelled with the release (as apps usually do)."""
        labels = f'release="{RELEASE}",instance_id="{INSTANCE}"'
        with COUNTS_LOCK:
            counts = dict(COUNTS)
        lines = ["# TYPE hello_requests_total counter"]
        lines += [f'hello_requests_total{{{labels},code="{c}"}} {n}' for c, n in counts.items()]
        lines += ["# TYPE hello_queue_depth gauge", f"hello_queue_depth{{{labels}}} {QUEUE_DEPTH}"]
        data = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def edge_answer(self, kind: str) -> None:
        """Answers for the edge cache and compression (the same text body, ~2 KB, naming the
        release): `public` (max-age=60), `expires` (an Expires header), `private`
        (Cache-Control: private), `cookie` (max-age=60 and Set-Cookie), `plain` (no caching
        headers), `encoded` (gzip-encoded by the app), `binary` (application/octet-stream),
        `no-transform` (Cache-Control: no-transform)."""
        text = f"{GREETING} from {RELEASE}\n" + "all work and no play makes a dull app\n" * 50
        data = text.encode()
        headers = {"Content-Type": "text/html; charset=utf-8"}
        if kind == "public":
            headers["Cache-Control"] = "public, max-age=60"
        elif kind == "expires":
            headers["Expires"] = time.strftime(
                "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60)
            )
        elif kind == "private":
            headers["Cache-Control"] = "private, max-age=60"
        elif kind == "cookie":
            headers["Cache-Control"] = "max-age=60"
            headers["Set-Cookie"] = f"session={os.getpid()}; HttpOnly"
        elif kind == "encoded":
            data = gzip.compress(data)
            headers["Content-Encoding"] = "gzip"
        elif kind == "binary":
            headers["Content-Type"] = "application/octet-stream"
        elif kind == "no-transform":
            headers["Cache-Control"] = "no-transform"
        elif kind != "plain":
            self.reply(404, {"error": f"no edge answer {kind!r}"})
            return
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply(self, status: int, body: dict[str, object]) -> None:
        if self.path != "/up":
            with COUNTS_LOCK:
                COUNTS[status] = COUNTS.get(status, 0) + 1
        data = (json.dumps(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.server.stopping.is_set():  # type: ignore[attr-defined]
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        if os.environ.get("ACCESS_LOG"):
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Server(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.stopping = threading.Event()
        self.busy = 0
        self.busy_lock = threading.Lock()
        # $HOST: the address slipway gives it (its host's private address in a fleet)
        super().__init__((os.environ.get("HOST", "127.0.0.1"), port), Handler)

    def server_bind(self) -> None:
        # Without TCP_NODELAY, headers and body go in two sends and Nagle stalls each request.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy's health checks close with a reset; that is not an error worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]

    def finish_in_flight(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            with self.busy_lock:
                if self.busy == 0:
                    return
            time.sleep(0.02)


def main() -> None:
    port = int(os.environ.get("PORT") or (sys.argv[sys.argv.index("--port") + 1]))
    if os.environ.get("CRASH_ON_BOOT") == "1":
        print("CRASH_ON_BOOT=1: failing before listening (as asked)", file=sys.stderr)
        raise SystemExit(3)
    boot = float(os.environ.get("BOOT_SECONDS", "0") or 0)
    if boot:
        print(f"booting for {boot}s", flush=True)
        time.sleep(boot)
    server = Server(port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    print(f"hello {RELEASE} listening on {server.server_address[0]}:{port}", flush=True)
    while not stop.wait(0.5):  # a bare wait() can miss the signal (seen under load)
        pass
    print("SIGTERM: finishing in-flight requests", flush=True)
    server.stopping.set()
    server.shutdown()  # stop accepting
    server.finish_in_flight(time.monotonic() + 25)
    server.server_close()
    print("bye", flush=True)


if __name__ == "__main__":
    main()
