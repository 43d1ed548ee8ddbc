"""Test hooks that kill the daemon inside a "record, then act" window, to prove that a
restarted daemon finds everything it had started and finishes or undoes what was in flight.

SLIPWAY_FAULT=crash-after-commit:STATE  right after a deployment's state is recorded
SLIPWAY_FAULT=crash-at:POINT            at a named point inside a step (see `crash_at` calls)

Unset (always, in production) each hook costs one environment lookup."""

from __future__ import annotations

import os
import signal


def _crash_if(wanted: str) -> None:
    if os.environ.get("SLIPWAY_FAULT", "") == wanted:
        os.kill(os.getpid(), signal.SIGKILL)


def crash_after_commit(state: str) -> None:
    _crash_if(f"crash-after-commit:{state}")


def crash_at(point: str) -> None:
    _crash_if(f"crash-at:{point}")
