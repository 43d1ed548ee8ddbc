"""hello's own tests (standard library only): start app.py on a free port and ask it.

slipway runs them as a gate before a release gets traffic: `[[gates.test]]` in slipway.toml."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import unittest
import urllib.request
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HelloTest(unittest.TestCase):
    def setUp(self) -> None:
        self.port = free_port()
        env = os.environ | {"PORT": str(self.port), "GREETING": "hi from a test"}
        env.pop("FAIL_RATE", None)
        self.proc = subprocess.Popen([sys.executable, str(APP)], env=env)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.get("/up")
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())

    def test_up_answers_for_the_health_check(self) -> None:
        status, body = self.get("/up")
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "up")

    def test_a_post_is_answered_as_a_get(self) -> None:
        url = f"http://127.0.0.1:{self.port}/"
        request = urllib.request.Request(url, data=b"x=1", method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            self.assertEqual(answer.status, 200)
            self.assertEqual(json.loads(answer.read())["greeting"], "hi from a test")

    def test_root_greets(self) -> None:
        status, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(body["greeting"], "hi from a test")


if __name__ == "__main__":
    unittest.main()
