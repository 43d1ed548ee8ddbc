"""The CLI benchmark's table, as text and as Markdown."""

from __future__ import annotations

import time

from bench.cli.run import BASELINE, Results, Timing
from bench.zero_downtime.report import machine

TARGET_MS = 80.0  # issue #13: `slipway status` median on an idle machine


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def rows(results: Results) -> list[list[str]]:
    base = next(t for t in results.timings if t.name == BASELINE)
    out = []
    for t in results.timings:
        extra = "-" if t is base else f"+{(t.median - base.median) * 1000:.1f}"
        out.append([t.name, ms(t.median), ms(t.p90), ms(min(t.seconds)), extra])
    return out


HEADER = ["command", "median ms", "p90 ms", "min ms", "median − python -c pass"]


def status_of(results: Results) -> Timing:
    return next(t for t in results.timings if t.name == "slipway status")


def verdict(results: Results) -> str:
    median = status_of(results).median * 1000
    word = "met" if median <= TARGET_MS else "missed"
    return f"`slipway status` median {median:.1f} ms: target ≤ {TARGET_MS:.0f} ms {word}"


def about(results: Results) -> list[str]:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(results.started))
    load = ", ".join(
        f"{a:.2f}→{b:.2f}" for a, b in zip(results.load_before, results.load_after, strict=True)
    )
    return [
        f"date: {when}; {results.options.runs} runs of each, in turn",
        f"machine: {machine()}",
        f"slipway: {results.source}",
        f"load average (1, 5, 15 min) before→after: {load}",
        f"app deployed: {'hello (2 web instances)' if results.options.app else 'none'}",
    ]


def render_text(results: Results) -> str:
    table = [HEADER, *rows(results)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=False))
        )
        for r in table
    ]
    return "\n".join([*about(results), "", *lines, "", verdict(results)])


def render_markdown(results: Results) -> str:
    lines = [f"- {line}" for line in about(results)]
    lines += ["", "| " + " | ".join(HEADER) + " |", "|" + "---|" + "---:|" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(results)]
    lines += ["", verdict(results), ""]
    return "\n".join(lines)
