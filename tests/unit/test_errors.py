"""The error hierarchy: what, where, details and fix survive the trip daemon → CLI."""

from __future__ import annotations

import pytest

from slipway.errors import (
    ERROR_KINDS,
    BuildError,
    ConfigError,
    Conflict,
    DaemonNotRunning,
    DeployError,
    HostUnreachable,
    Interrupted,
    NotFound,
    PreflightError,
    RouterError,
    RuntimeFailure,
    SlipwayError,
    StorageError,
    TooLarge,
    UsageError,
    disk_error,
    error_from_dict,
)

ALL_ERRORS = [
    SlipwayError,
    ConfigError,
    UsageError,
    NotFound,
    TooLarge,
    Conflict,
    BuildError,
    DeployError,
    RouterError,
    RuntimeFailure,
    StorageError,
    Interrupted,
    HostUnreachable,
    DaemonNotRunning,
    PreflightError,
]


@pytest.mark.parametrize("cls", ALL_ERRORS)
def test_round_trip_keeps_kind_class_and_fields(cls: type[SlipwayError]) -> None:
    original = cls(
        "the release failed its health check",
        where="app shop, release r3",
        fix="read the log lines above",
        details=["GET /up -> 500", "3 of 3 checks failed"],
        data={"release": "r3", "checks": [500, 500, 500]},
    )
    payload = original.to_dict()
    assert payload["kind"] == cls.kind
    rebuilt = error_from_dict(payload)
    assert type(rebuilt) is cls
    assert rebuilt.to_dict() == payload
    assert (rebuilt.http_status, rebuilt.exit_code) == (original.http_status, original.exit_code)
    assert str(rebuilt) == str(original)


def test_every_error_class_has_its_own_kind() -> None:
    assert set(ERROR_KINDS.values()) == set(ALL_ERRORS)
    assert len({cls.kind for cls in ALL_ERRORS}) == len(ALL_ERRORS)
    assert all(issubclass(cls, SlipwayError) for cls in ALL_ERRORS)


def test_status_and_exit_codes() -> None:
    assert NotFound("x").http_status == 404
    assert Conflict("x").http_status == 409
    assert RouterError("x").http_status == 500
    assert ConfigError("x").http_status == 400
    assert UsageError("x").exit_code == 2
    assert ConfigError("x").exit_code == 1


def test_unknown_kind_becomes_the_base_error() -> None:
    rebuilt = error_from_dict({"kind": "from_the_future", "message": "new daemon, old CLI"})
    assert type(rebuilt) is SlipwayError
    assert rebuilt.message == "new daemon, old CLI"


def test_minimal_payload_gets_defaults() -> None:
    rebuilt = error_from_dict({})
    assert type(rebuilt) is SlipwayError
    assert rebuilt.message == "unknown error"
    assert (rebuilt.where, rebuilt.fix, rebuilt.details, rebuilt.data) == (None, None, [], {})


def test_str_includes_where_details_and_fix() -> None:
    err = ConfigError(
        "unknown key 'prot'",
        where="slipway.toml:4: listen.prot",
        details=["did you mean 'port'?"],
        fix="remove it or check its spelling",
    )
    assert str(err) == (
        "slipway.toml:4: listen.prot: unknown key 'prot'\n"
        "  did you mean 'port'?\n"
        "fix: remove it or check its spelling"
    )


def test_str_of_bare_error_is_its_message() -> None:
    assert str(DeployError("nothing to deploy")) == "nothing to deploy"


def test_errors_are_exceptions_with_a_readable_message() -> None:
    with pytest.raises(SlipwayError) as info:
        raise NotFound("no app 'shop'", fix="slipway deploy")
    assert info.value.message == "no app 'shop'"
    assert "fix: slipway deploy" in str(info.value)


def test_a_full_disk_is_named_with_the_path_and_the_fix() -> None:
    import errno

    error = disk_error(OSError(errno.ENOSPC, "No space left on device"), "/srv/x", "build r3")
    assert error.message == "build r3: the disk is full"
    assert error.where == "/srv/x"
    assert error.fix is not None and "df -h /srv/x" in error.fix
    assert error.http_status == 507
    other = disk_error(OSError(errno.EACCES, "Permission denied"), "/srv/x", "build r3")
    assert other.message == "build r3: Permission denied"
