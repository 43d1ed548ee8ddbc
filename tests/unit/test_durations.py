"""parse_duration / format_duration: the duration syntax of slipway.toml."""

from __future__ import annotations

import math

import pytest

from slipway.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1h30m", 5400.0),
        ("1m30s", 90.0),
        ("1.5s", 1.5),
        ("0.25m", 15.0),
        ("1s500ms", 1.5),
        (" 10s ", 10.0),
        ("1h 30m", 5400.0),
        ("0s", 0.0),
    ],
)
def test_parse_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("number", "seconds"), [(10, 10.0), (0, 0.0), (0.5, 0.5), (2.25, 2.25)])
def test_parse_duration_numbers_are_seconds(number: float, seconds: float) -> None:
    result = parse_duration(number)
    assert result == seconds
    assert isinstance(result, float)


@pytest.mark.parametrize(
    "text", ["", "   ", "ten seconds", "10x", "s", "10s5", "-5s", "1.5.5s", "10S", "5 mins"]
)
def test_parse_duration_rejects_malformed_strings_with_a_helpful_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert f'invalid duration "{text}"' in message
    assert '"500ms"' in message and '"10s"' in message  # says what to write instead


@pytest.mark.parametrize("value", [-1, -0.5])
def test_parse_duration_rejects_negative_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_booleans(value: bool) -> None:
    # bool is an int subclass: without a special case `true` would mean 1 second
    with pytest.raises(ValueError, match="boolean"):
        parse_duration(value)


@pytest.mark.parametrize(("value", "type_name"), [(None, "NoneType"), ([10], "list"), ({}, "dict")])
def test_parse_duration_rejects_other_types_naming_them(value: object, type_name: str) -> None:
    with pytest.raises(ValueError, match=type_name):
        parse_duration(value)


def test_parse_duration_rejects_nan() -> None:
    with pytest.raises(ValueError):
        parse_duration(math.nan)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "500ms"),
        (0.001, "1ms"),
        (1, "1s"),
        (10, "10s"),
        (1.5, "1.5s"),
        (90, "90s"),
        (119.5, "119.5s"),
        (120, "2m"),
        (300, "5m"),
        (5400, "90m"),
        (7200, "2h"),
        (86400, "24h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [0.25, 1.0, 10.0, 45.5, 90.0, 150.0, 600.0, 5400.0, 9000.0])
def test_format_duration_output_parses_back_to_the_same_value(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "seconds"), [("10", 10.0), ("2.5", 2.5), (" 7 ", 7.0)])
def test_a_quoted_plain_number_is_seconds(text: str, seconds: float) -> None:
    # The error message itself suggests "use seconds (10)", so "10" must be accepted.
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_parse_duration_rejects_infinity(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_duration(value)
