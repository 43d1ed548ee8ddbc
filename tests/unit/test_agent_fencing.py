"""Two control planes never drive one fleet: an agent refuses a control plane older than
the newest that reached its host (a restored one is one generation newer)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from slipway.agent.core import GENERATION_FILE, Agent
from slipway.errors import Conflict
from slipway.paths import Home


def test_an_older_control_plane_is_refused_whatever_it_asks(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.root.mkdir(parents=True, exist_ok=True)
    agent = Agent(home)
    assert asyncio.run(agent.call("hello", {}, 1))["version"]
    assert asyncio.run(agent.call("hello", {}, 2))["version"]  # restored: newer, recorded
    assert (tmp_path / GENERATION_FILE).read_text() == "2"
    with pytest.raises(Conflict, match="newer control plane .generation 2; this one is 1."):
        asyncio.run(agent.call("hello", {}, 1))
    with pytest.raises(Conflict):
        asyncio.run(agent.call("instance.stop", {"app": "a", "instance": "i", "handle": None,
                                                  "grace": 1.0}, 1))  # fmt: skip
    # restarted, the agent still knows: the generation is on disk
    with pytest.raises(Conflict):
        asyncio.run(Agent(home).call("hello", {}, 1))
    assert asyncio.run(agent.call("hello", {}, 2))["version"]
