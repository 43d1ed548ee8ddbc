"""A results table and how its numbers are written."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    align: str = ""  # one of "l"/"r" per column; default: the first left, the rest right

    def aligned(self, column: int) -> str:
        if self.align:
            return self.align[column]
        return "l" if column == 0 else "r"


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def secs(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.2f} s"


def lat(value_ms: float) -> str:
    return "n/a" if math.isnan(value_ms) else f"{value_ms:.1f}"


def ratio(a: float, b: float) -> str:
    return "n/a" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}×"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def pct(share: float) -> str:
    return "n/a" if math.isnan(share) else f"{share:.0%}"
