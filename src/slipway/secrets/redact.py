"""Hiding secret values in captured output. Standard library only: the shim imports it and
must start fast (no cryptography)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "[redacted]"
MIN_REDACT = 4  # shorter values ("1", "yes", "dev") would blank out ordinary words
MIN_REDACT_LINE = 8  # lines of a multi-line value, e.g. a PEM key logged line by line


def redactor(values: Iterable[str]) -> Callable[[str], str]:
    """Return a function replacing every secret value in a text with "[redacted]".

    Works on str: callers decode bytes first (errors="replace" keeps the secret's ASCII
    and UTF-8 text intact). Values under 4 characters are ignored; each line of a
    multi-line value of 8+ characters is also redacted on its own. Overlapping matches
    are merged so no part of either value shows.
    """
    needles: set[str] = set()
    for value in values:
        if len(value) >= MIN_REDACT:
            needles.add(value)
        if "\n" in value or "\r" in value:
            needles.update(line for line in value.splitlines() if len(line) >= MIN_REDACT_LINE)
    if not needles:
        return lambda text: text
    alternatives = "|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True))
    quick = re.compile(alternatives)
    # The lookahead finds a match at every start position, so overlaps are all seen.
    every = re.compile(f"(?=({alternatives}))")

    def redact(text: str) -> str:
        first = quick.search(text)
        if first is None:  # the common case: one C-level scan, no copy
            return text
        spans: list[list[int]] = []
        for m in every.finditer(text, first.start()):
            start, end = m.start(), m.start() + len(m.group(1))
            if spans and start < spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        out, pos = [], 0
        for start, end in spans:
            out += [text[pos:start], REDACTED]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    return redact
