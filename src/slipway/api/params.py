"""Query and path parameters: parsed and bounded here, so a bad one is a 400 that names it,
never a ValueError or an OverflowError (SQLite's integers are 64-bit) turned into a 500."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.convertors import Convertor, register_url_convertor

from slipway.errors import UsageError

MAX_ID = 2**63 - 1  # the largest integer SQLite stores
MAX_LINES = 10_000
MAX_LIMIT = 10_000


def int_param(
    params: Mapping[str, str], name: str, default: int, low: int, high: int, example: str
) -> int:
    """`name` as a whole number in low..high (`default` when absent)."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip()) if text.strip().lstrip("-").isdigit() else None
    except ValueError:  # more digits than int() converts
        value = None
    if value is None:
        raise UsageError(
            f"{name} must be a whole number, got {_shown(text)}", where=name, fix=example
        )
    if not low <= value <= high:
        raise UsageError(
            f"{name} must be between {low} and {high}, got {_shown(text)}",
            where=name,
            fix=example,
        )
    return value


def flag_param(params: Mapping[str, str], name: str) -> bool:
    """A yes/no parameter: "1"/"true" or "0"/"false" (absent: no)."""
    text = params.get(name)
    if text is None:
        return False
    if text.lower() in ("1", "true"):
        return True
    if text.lower() in ("0", "false", ""):
        return False
    raise UsageError(f"{name} must be 1 or 0, got {_shown(text)}", where=name, fix=f"e.g. {name}=1")


class IdConvertor(Convertor[int]):
    """`{id:id}` in a route: digits, as an int; one too long to convert (int() refuses over
    4300 digits, with a ValueError while routing) becomes MAX_ID + 1, refused by id_param."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        return int(value) if len(value) <= 19 else MAX_ID + 1

    def to_string(self, value: int) -> str:
        return str(int(value))


register_url_convertor("id", IdConvertor())


def id_param(path_params: Mapping[str, object], what: str = "deployment") -> int:
    """A numeric id from the path: at most what SQLite holds."""
    value = int(str(path_params["id"]))
    if value > MAX_ID:
        raise UsageError(
            f"{what} id is out of range (at most {MAX_ID})",
            where="id",
            fix=f"use the number of an existing {what}, e.g. from `slipway status`",
        )
    return value


def _shown(text: str) -> str:
    """The value as given, cut short: it is echoed back in an error."""
    return repr(text if len(text) <= 40 else text[:40] + "…")
