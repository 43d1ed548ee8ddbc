"""`slipway scale PROCESS=COUNT...` argument parsing."""

from __future__ import annotations

import click
import pytest

from slipway.cli.app_cmds import parse_counts


def test_valid_pairs() -> None:
    assert parse_counts(("web=3", "worker=0")) == {"web": 3, "worker": 0}


def test_spaces_around_parts_are_ignored() -> None:
    assert parse_counts((" web = 2 ",)) == {"web": 2}


def test_later_pair_for_the_same_process_wins() -> None:
    assert parse_counts(("web=1", "web=4")) == {"web": 4}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("web=-1", "cannot be negative"),
        ("web", "is not PROCESS=COUNT"),
        ("=3", "is not PROCESS=COUNT"),
        (" =3", "is not PROCESS=COUNT"),
        ("web=x", "is not PROCESS=COUNT"),
        ("web=", "is not PROCESS=COUNT"),
        ("web=1.5", "is not PROCESS=COUNT"),
        ("web=3=4", "is not PROCESS=COUNT"),
    ],
)
def test_bad_pairs_are_rejected_naming_the_pair(pair: str, message: str) -> None:
    with pytest.raises(click.BadParameter) as info:
        parse_counts(("worker=1", pair))
    assert message in info.value.message
    assert f"'{pair}'" in info.value.message


def test_no_pairs_is_an_error_with_an_example() -> None:
    with pytest.raises(click.BadParameter, match="web=3"):
        parse_counts(())
