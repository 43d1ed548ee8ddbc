"""An lb host's switch of weights: the raises in one admin-socket request, then the lowers
in one more, and the lowers only once HAProxy has every raised server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from slipway.errors import RouterError
from slipway.paths import Home
from slipway.router.haproxy import HAProxyRouter, answers_of, request_chunks

# HAProxy 2.6.12's answer to one request of six `set server` commands, the 3rd and 4th
# naming a server it does not have: every answer ends with an empty line.
REAL = "\n\nNo such server.\n\nNo such server.\n\n\n\n"
# Its answer to `set map` for a key the map does not have (an app without [edge.cache]): one
# more empty line than other answers.
NOT_CACHED = "entry not found.\n\n\n"


class FakeAdmin(HAProxyRouter):
    """HAProxy's admin socket for `set server` and `set map` lines: the requests sent, the
    weights and cache epochs set."""

    def __init__(self, tmp: Path, servers: dict[str, int], cached: bool = False) -> None:
        super().__init__(Home(tmp), "haproxy")
        self.weights = dict(servers)
        self.requests: list[str] = []
        self.cached = cached
        self.new_epochs: list[str] = []

    async def command(self, line: str) -> str:
        self.requests.append(line)
        out = ""
        for command in line.split("; "):
            epoch = re.fullmatch(rf"set map {re.escape(str(self.epochs))} app_web (\w+)", command)
            if epoch:
                if self.cached:
                    self.new_epochs.append(epoch.group(1))
                out += "\n" if self.cached else NOT_CACHED
                continue
            match = re.fullmatch(r"set server app_web/(\S+) (state ready|weight (\d+))", command)
            assert match, command
            name, weight = match.group(1), match.group(3)
            if name not in self.weights:
                out += "No such server.\n\n"
                continue
            if weight is not None:
                self.weights[name] = int(weight)
            out += "\n"
        return out


def test_answers_are_split_at_the_empty_lines_haproxy_ends_each_with() -> None:
    assert answers_of(REAL) == ["", "", "No such server.", "No such server.", "", ""]
    assert answers_of("\n") == [""]


def test_a_switch_is_two_requests_raises_first(tmp_path: Path) -> None:
    admin = FakeAdmin(tmp_path, {"old-1": 100, "old-2": 100, "new-1": 0, "new-2": 0})
    weights = {"new-1": 100, "new-2": 100, "old-1": 0, "old-2": 0}
    asyncio.run(admin.set_weights("web", weights))
    assert admin.weights == weights
    assert len(admin.requests) == 2
    assert "new-1" in admin.requests[0] and "new-2" in admin.requests[0]
    assert "old-1" in admin.requests[1] and "old-2" in admin.requests[1]


def test_a_raise_haproxy_cannot_make_leaves_every_server_serving(tmp_path: Path) -> None:
    admin = FakeAdmin(tmp_path, {"old-1": 100, "new-1": 0})
    with pytest.raises(RouterError, match="no server new-2"):
        asyncio.run(admin.set_weights("web", {"new-1": 100, "new-2": 100, "old-1": 0}))
    assert admin.weights == {"old-1": 100, "new-1": 100}  # nothing lowered
    assert len(admin.requests) == 1


def test_lowering_a_server_that_is_gone_is_done(tmp_path: Path) -> None:
    admin = FakeAdmin(tmp_path, {"new-1": 0})
    asyncio.run(admin.set_weights("web", {"new-1": 100, "gone": 0}))
    assert admin.weights == {"new-1": 100}


def test_many_servers_are_sent_in_requests_that_fit_haproxys_buffer(tmp_path: Path) -> None:
    names = [f"r12-web-{i}" for i in range(100)]
    chunks = request_chunks(names)
    assert len(chunks) > 1 and [n for c in chunks for n in c] == names
    admin = FakeAdmin(tmp_path, dict.fromkeys(names, 0))
    asyncio.run(admin.set_weights("web", dict.fromkeys(names, 100)))
    assert set(admin.weights.values()) == {100}
    assert max(len(r) for r in admin.requests) < 16384


def test_a_switch_ends_with_a_new_cache_epoch_after_the_lowers(tmp_path: Path) -> None:
    """The epoch changes in the request of the last weight change, after it: a lookup that
    sees the new epoch is load-balanced after the switch (router/cache.py)."""
    admin = FakeAdmin(tmp_path, {"old-1": 100, "new-1": 0}, cached=True)
    asyncio.run(admin.set_weights("web", {"new-1": 100, "old-1": 0}))
    assert len(admin.requests) == 2 and len(admin.new_epochs) == 1
    assert "set map" not in admin.requests[0]
    last = admin.requests[1].split("; ")
    assert last[-1].startswith("set map") and "old-1 weight 0" in last[-2]
    asyncio.run(admin.set_weights("web", {"old-1": 100, "new-1": 0}))  # a rollback
    assert len(admin.new_epochs) == 2 and admin.new_epochs[0] != admin.new_epochs[1]


def test_only_raises_still_end_with_a_new_epoch(tmp_path: Path) -> None:
    admin = FakeAdmin(tmp_path, {"new-1": 0}, cached=True)
    asyncio.run(admin.set_weights("web", {"new-1": 100}))
    assert len(admin.requests) == 1 and len(admin.new_epochs) == 1


def test_an_app_without_a_cache_switches_as_before(tmp_path: Path) -> None:
    admin = FakeAdmin(tmp_path, {"old-1": 100, "new-1": 0}, cached=False)
    asyncio.run(admin.set_weights("web", {"new-1": 100, "old-1": 0}))
    assert admin.weights == {"old-1": 0, "new-1": 100}


def test_purge_is_a_new_epoch_and_says_whether_the_app_has_a_cache(tmp_path: Path) -> None:
    assert asyncio.run(FakeAdmin(tmp_path, {}, cached=True).purge_cache("web")) is True
    assert asyncio.run(FakeAdmin(tmp_path, {}, cached=False).purge_cache("web")) is False
