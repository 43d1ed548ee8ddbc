"""Field types shared by the slipway.toml models. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from slipway.config.durations import format_duration, parse_duration, parse_size

DAY = 86400.0
# Beyond these a value is a typo (or an attack on the daemon), never a plan: a year-long
# duration or a terabyte-sized limit would only overflow a timer or a counter somewhere.
MAX_DURATION = 365 * DAY
MAX_SIZE = 1024**4


def within(low: float, high: float, *, above: bool = False) -> AfterValidator:
    """A bound on a duration: at least `low` (or more than it, with `above`), at most `high`."""

    def check(value: float) -> float:
        if value < low or (above and value == low) or value > high:
            floor = "more than" if above else "at least"
            raise ValueError(
                f"must be {floor} {_seconds(low)} and at most {_seconds(high)}, "
                f"got {_seconds(value)}"
            )
        return value

    return AfterValidator(check)


def _seconds(value: float) -> str:
    if value == 0:
        return "0s"
    if value >= 2 * DAY:
        return f"{value / DAY:g}d"
    return format_duration(value)


def _size_at_most(high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value > high:
            raise ValueError(f"must be at most {high // 1024**3}GB, got {value} bytes")
        return value

    return check


# Any duration: 0 up to a year. Fields that need more (a timeout above 0) add `within`.
Duration = Annotated[float, BeforeValidator(parse_duration), within(0, MAX_DURATION)]
# How long something may run before it is stopped: above 0 (0 would fail at once), at most a day.
Timeout = Annotated[float, BeforeValidator(parse_duration), within(0, DAY, above=True)]
Size = Annotated[int, BeforeValidator(parse_size), AfterValidator(_size_at_most(MAX_SIZE))]


class Strict(BaseModel):
    """Unknown keys are errors (a typo never silently does nothing); configs never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str | None, example: str) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f'"{value}" is not an http(s) URL, e.g. "{example}"')
    return value
