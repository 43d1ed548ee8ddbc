"""Reading instance logs for `slipway logs`: the last lines across instances, then following."""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import re2

from slipway.api.schemas import LogLine
from slipway.runtime import logfile
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
    def __init__(self, store: Store, instance_dir: Callable[[str, str], Path]) -> None:
        self.store = store
        self.instance_dir = instance_dir

    def dir_of(self, instance: Instance) -> Path:
        return self.instance_dir(instance.app, instance.id)

    def selected(self, selection: LogFilter) -> list[Instance]:
        instances = self.store.instances(selection.app, live_only=False)
        return [i for i in instances if selection.matches(i) and self.dir_of(i).is_dir()]

    async def last(self, selection: LogFilter, count: int) -> tuple[list[LogLine], dict[str, int]]:
        """The newest `count` lines across instances, and where each live file ends now.
        The files are read in a thread: with a filter every line of every file is read."""
        instances = self.selected(selection)  # the store is the event loop's
        return await asyncio.to_thread(self._last, instances, selection, count)

    def _last(
        self, instances: list[Instance], selection: LogFilter, count: int
    ) -> tuple[list[LogLine], dict[str, int]]:
        lines: list[LogLine] = []
        offsets: dict[str, int] = {}
        for instance in instances:
            directory = self.dir_of(instance)
            offsets[instance.id] = _size(directory / logfile.LOG_NAME)
            if selection.by_content:  # the last `count` that match: read it all
                matching = (_line(instance, r) for r in logfile.read_lines(directory))
                lines.extend(deque((ln for ln in matching if selection.keeps(ln)), maxlen=count))
            else:
                lines.extend(_line(instance, r) for r in logfile.tail(directory, count))
        lines.sort(key=lambda ln: ln.time)
        return lines[-count:] if count else [], offsets

    async def follow(
        self, selection: LogFilter, offsets: dict[str, int], poll: float = 0.25
    ) -> AsyncIterator[list[LogLine]]:
        """New lines as they are written, also from instances started while following."""
        while True:
            instances = self.selected(selection)
            yield await asyncio.to_thread(self._new_lines, instances, selection, offsets)
            await asyncio.sleep(poll)

    def _new_lines(
        self, instances: list[Instance], selection: LogFilter, offsets: dict[str, int]
    ) -> list[LogLine]:
        batch: list[LogLine] = []
        for instance in instances:
            path = self.dir_of(instance) / logfile.LOG_NAME
            size = _size(path)
            start = offsets.get(instance.id, 0)
            if size < start:  # rotated: read the new file from its start
                start = 0
            if size > start:
                records, end = logfile.read_from(path, start)
                offsets[instance.id] = end
                batch.extend(ln for r in records if selection.keeps(ln := _line(instance, r)))
            else:
                offsets.setdefault(instance.id, size)
        batch.sort(key=lambda ln: ln.time)
        return batch


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
