"""The API's input parsing on its own: parameters, --grep patterns, request bodies."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from slipway.api import schemas
from slipway.api.admin import TokenRequest
from slipway.api.params import MAX_ID, flag_param, id_param, int_param
from slipway.daemon import insight
from slipway.errors import UsageError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "whole number"),
        ("1.5", "whole number"),
        ("", "whole number"),
        ("9" * 5000, "whole number"),  # int() refuses over 4300 digits: no ValueError leaks
        ("-1", "between 0 and 10000"),
        ("10001", "between 0 and 10000"),
    ],
)
def test_int_param_names_the_parameter(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        int_param({"lines": text}, "lines", 100, 0, 10_000, "lines=100")
    assert info.value.where == "lines" and message in info.value.message
    assert len(info.value.message) < 120, "a huge value is not echoed whole"


def test_int_param_in_range_and_default() -> None:
    assert int_param({"lines": " 7 "}, "lines", 100, 0, 10, "") == 7
    assert int_param({}, "lines", 100, 0, 10_000, "") == 100


def test_flag_param() -> None:
    assert flag_param({"follow": "1"}, "follow") and flag_param({"follow": "true"}, "follow")
    assert not flag_param({}, "follow") and not flag_param({"follow": "0"}, "follow")
    with pytest.raises(UsageError, match="follow must be 1 or 0"):
        flag_param({"follow": "yes"}, "follow")


def test_id_param_refuses_what_sqlite_cannot_hold() -> None:
    assert id_param({"id": MAX_ID}) == MAX_ID
    with pytest.raises(UsageError) as info:
        id_param({"id": MAX_ID + 1})
    assert info.value.where == "id" and "out of range" in info.value.message


def test_a_pathological_pattern_is_linear_time() -> None:
    compiled = insight.pattern("(x+x+)+y")
    assert compiled is not None
    began = time.monotonic()
    assert all(compiled.search("x" * 40) is None for _ in range(10_000))
    assert time.monotonic() - began < 2  # Python's re: ~2^40 steps for one line


@pytest.mark.parametrize(
    ("text", "feature"),
    [
        (r"(a)\1", "backreferences (\\1)"),
        ("(?P<a>x)(?P=a)", "backreferences (?P=name)"),
        ("a(?=b)", "lookahead (?=…)"),
        ("a(?!b)", "negative lookahead (?!…)"),
        ("(?<=a)b", "lookbehind (?<=…)"),
        ("(?<!a)b", "negative lookbehind (?<!…)"),
        ("(?>a)", "atomic groups"),
        ("a++", "possessive quantifiers"),
    ],
)
def test_unsupported_constructs_are_named(text: str, feature: str) -> None:
    with pytest.raises(UsageError) as info:
        insight.pattern(text)
    assert f"uses {feature}" in info.value.message and info.value.where == "grep"


def test_an_invalid_or_too_long_pattern_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a valid regular expression"):
        insight.pattern("(")
    with pytest.raises(UsageError, match="at most 512"):
        insight.pattern("a" * 513)
    assert insight.pattern("a" * 512) is not None


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (schemas.DeployRequest, '{"app_dir": "/srv/app", "check": "true"}'),
        (schemas.DeployRequest, '{"app_dir": "/srv/app", "force": true}'),
        (schemas.SecretValue, '{"value": 1}'),
        (schemas.RollbackRequest, '{"release": 3}'),
        (schemas.ScaleRequest, '{"counts": {"web": "2"}}'),
        (schemas.ScaleRequest, '{"counts": {"web": true}}'),
        (schemas.ShutdownRequest, '{"all": "yes"}'),
        (schemas.ShutdownRequest, '{"all": 1}'),
        (TokenRequest, '{"name": "ci", "role": "viewer", "expires": 30}'),
    ],
)
def test_request_models_take_exactly_their_json_types(
    model: type[schemas.RequestBody], body: str
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate_json(body)


def test_a_secret_value_is_at_most_64_kib_of_utf8() -> None:
    assert schemas.SecretValue(value="x" * 65536).value
    with pytest.raises(ValidationError, match="at most 65536"):
        schemas.SecretValue(value="é" * 32769)  # 65,538 bytes
