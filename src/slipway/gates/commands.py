"""Test gates: the app's own test commands, run in the release's folder and environment.

The exit code decides. A timeout, a crash or a kill fails closed; the output is kept in the
gate's log, and its last lines are the evidence."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from slipway.config.gates import TestGate
from slipway.gates.base import GateContext, GateResult
from slipway.releases.build import tail_lines

PROGRESS_EVERY = 5.0  # seconds between "still running" lines
TAIL_LINES = 20


class CommandGate:
    kind = "test"
    needs_running = False

    def __init__(self, spec: TestGate) -> None:
        self.name = spec.name
        self.spec = spec

    async def run(self, ctx: GateContext) -> GateResult:
        command, timeout = self.spec.command, self.spec.timeout
        reproduce = f"cd {shlex.quote(str(ctx.release_dir))} && . .venv/bin/activate && {command}"
        started = time.monotonic()
        code = await run_logged(
            ["/bin/sh", "-c", command], ctx.release_dir, ctx.env, ctx.log_path, timeout, ctx
        )
        seconds = time.monotonic() - started
        tail = tail_lines(ctx.log_path, TAIL_LINES)
        evidence = {"command": command, "seconds": round(seconds, 2), "output_tail": tail}
        if code is None:
            summary = f"`{command}` timed out after {timeout:g}s and was stopped"
        elif code < 0:
            summary = f"`{command}` was killed by signal {-code} after {seconds:.1f}s"
        elif code != 0:
            summary = f"`{command}` failed with exit code {code} after {seconds:.1f}s"
        else:
            return GateResult("passed", f"`{command}` passed in {seconds:.1f}s", [], evidence)
        evidence["exit_code"] = code
        return GateResult("failed", summary, [], evidence, reproduce)


async def run_logged(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    timeout: float,
    ctx: GateContext,
) -> int | None:
    """Run argv with its output appended to log_path (secret values hidden); the exit code
    (negative: the signal that killed it), or None after a timeout. The process group is
    killed on timeout or when the deployment is aborted, so nothing a test started outlives
    it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        last = [""]  # the newest output line, for the progress lines
        copying = asyncio.create_task(_copy(proc.stdout, log, ctx.redact, last))
        started = time.monotonic()
        deadline = started + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    _kill_group(proc.pid)
                    await proc.wait()
                    return None
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(proc.wait(), min(left, PROGRESS_EVERY))
                    await copying
                    return code
                ctx.progress(f"running for {time.monotonic() - started:.0f}s: {last[0][:100]}")
        except asyncio.CancelledError:
            _kill_group(proc.pid)
            await proc.wait()
            raise
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(copying, 5)  # a grandchild may hold the pipe open


async def _copy(
    stream: asyncio.StreamReader, log: BinaryIO, redact: Callable[[str], str], last: list[str]
) -> None:
    """Output to the log line by line, each line with secret values hidden; `last[0]` is
    the newest line."""
    pending = b""
    while chunk := await stream.read(65536):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            _write(log, redact(line.decode("utf-8", "replace")), last)
        log.flush()
    if pending:
        _write(log, redact(pending.decode("utf-8", "replace")), last)
    log.flush()


def _write(log: BinaryIO, line: str, last: list[str]) -> None:
    log.write(line.encode() + b"\n")
    if line.strip():
        last[0] = line


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
