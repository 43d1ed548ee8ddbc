"""Reading instance logs for `slipway logs`: the last lines across instances (on any host),
then following."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

import re2

from slipway.api.schemas import LogLine
from slipway.errors import SlipwayError
from slipway.runtime.fleet import FleetRuntime
from slipway.store.records import Instance
from slipway.store.store import Store


@dataclass(frozen=True)
class LogFilter:
    app: str
    release: str | None = None
    process: str | None = None
    instance: str | None = None
    since: float | None = None
    grep: re2._Regexp[str] | None = None  # RE2: linear in the text, whatever the pattern

    @property
    def by_content(self) -> bool:
        return self.since is not None or self.grep is not None

    def keeps(self, line: LogLine) -> bool:
        return (self.since is None or line.time >= self.since) and (
            self.grep is None or self.grep.search(line.message) is not None
        )

    def matches(self, instance: Instance) -> bool:
        return (
            (self.release is None or instance.release == self.release)
            and (self.process is None or instance.process == self.process)
            and (self.instance is None or instance.id == self.instance)
        )


def _line(instance: Instance, record: dict[str, object]) -> LogLine:
    return LogLine(
        time=float(str(record.get("t", 0))),
        app=instance.app,
        release=instance.release,
        instance=instance.id,
        process=instance.process,
        stream=str(record.get("s", "out")),
        message=str(record.get("m", "")),
    )


class LogReader:
    """Reads through each instance's host agent (this host's in-process): the same path for
    one host or many. A host that does not answer is said in a line of its own."""

    def __init__(self, store: Store, runtime: FleetRuntime) -> None:
        self.store = store
        self.runtime = runtime

    def selected(self, selection: LogFilter) -> dict[str, list[Instance]]:
        """The selected instances by host."""
        by_host: dict[str, list[Instance]] = {}
        for instance in self.store.instances(selection.app, live_only=False):
            if selection.matches(instance):
                by_host.setdefault(instance.host, []).append(instance)
        return by_host

    async def last(self, selection: LogFilter, count: int) -> tuple[list[LogLine], dict[str, int]]:
        """The newest `count` lines across instances, and where each current file ends now.
        With a filter every line of every file is read (a page at a time)."""
        read = self._matching if selection.by_content else self._newest
        found = await asyncio.gather(
            *(
                read(host, group, selection, count)
                for host, group in self.selected(selection).items()
            )
        )
        lines: list[LogLine] = []
        offsets: dict[str, int] = {}
        for host_lines, host_offsets in found:
            lines.extend(host_lines)
            offsets.update(host_offsets)
        lines.sort(key=lambda ln: ln.time)
        return lines[-count:] if count else [], offsets

    async def _newest(
        self, host: str, group: list[Instance], selection: LogFilter, count: int
    ) -> tuple[list[LogLine], dict[str, int]]:
        try:
            found = await self.runtime.logs_last(host, selection.app, [i.id for i in group], count)
        except SlipwayError as error:
            return [_missing(host, group[0], error)], {}
        lines = [_line(i, record) for i in group for record in found.get(i.id, ([], 0))[0]]
        return lines, {i: end for i, (_, end) in found.items()}

    async def _matching(
        self, host: str, group: list[Instance], selection: LogFilter, count: int
    ) -> tuple[list[LogLine], dict[str, int]]:
        """The last `count` lines of each instance that pass the filter."""
        lines: list[LogLine] = []
        offsets: dict[str, int] = {}
        for instance in group:
            kept: deque[LogLine] = deque(maxlen=count)
            cursor: tuple[int, int] | None = None
            while True:
                try:
                    records, cursor, end = await self.runtime.log_page(
                        instance, cursor, selection.since
                    )
                except SlipwayError as error:
                    return [*lines, _missing(host, instance, error)], offsets
                # RE2 is linear, but a page is a megabyte: off the event loop
                kept.extend(await asyncio.to_thread(_keep, instance, records, selection))
                if cursor is None:
                    offsets[instance.id] = end
                    break
            lines.extend(kept)
        return lines, offsets

    async def follow(
        self, selection: LogFilter, offsets: dict[str, int], poll: float = 0.25
    ) -> AsyncIterator[list[LogLine]]:
        """New lines as they are written, also from instances started while following.
        A host that does not answer is skipped until it does."""
        while True:
            by_host = self.selected(selection)
            found = await asyncio.gather(
                *(self._new_lines(group, selection, offsets) for group in by_host.values())
            )
            batch = [line for lines in found for line in lines]
            batch.sort(key=lambda ln: ln.time)
            yield batch
            await asyncio.sleep(poll)

    async def _new_lines(
        self, group: list[Instance], selection: LogFilter, offsets: dict[str, int]
    ) -> list[LogLine]:
        by_id = {i.id: i for i in group}
        asked = {i: offsets.get(i, 0) for i in by_id}
        try:
            found = await self.runtime.logs_after(group[0].host, selection.app, asked)
        except SlipwayError:
            return []
        lines: list[LogLine] = []
        for instance_id, (records, end) in found.items():
            offsets[instance_id] = end
            if instance_id in by_id:
                lines.extend(_keep(by_id[instance_id], records, selection))
        return lines


def _keep(
    instance: Instance, records: list[dict[str, object]], selection: LogFilter
) -> list[LogLine]:
    return [line for r in records if selection.keeps(line := _line(instance, r))]


def _missing(host: str, instance: Instance, error: SlipwayError) -> LogLine:
    """Said in place of the lines a host could not give."""
    return LogLine(
        time=time.time(),
        app=instance.app,
        release=instance.release,
        instance=instance.id,
        process=instance.process,
        stream="slipway",
        message=f"host {host} did not answer, its instances' logs are missing: {error.message}",
    )
