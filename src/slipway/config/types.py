"""Field types shared by the slipway.toml models. Pure: no I/O."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from slipway.config.durations import parse_duration, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


class Strict(BaseModel):
    """Unknown keys are errors (a typo never silently does nothing); configs never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def http_url(value: str | None, example: str) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f'"{value}" is not an http(s) URL, e.g. "{example}"')
    return value
